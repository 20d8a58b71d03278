"""A revision of the user's repository on disk (gate --against REV): each git path that cannot
work is one UsageError line naming the revision."""

import subprocess

import pytest

from mnv2prof.errors import UsageError
from mnv2prof.run.revision import checked_out
from tests.helpers import git as _git
from tests.helpers import git_repo

BLOCK_V1 = "from torch import nn\n\ndef block(in_chs):\n    return nn.Conv2d(in_chs, in_chs, 1)\n"
BLOCK_V2 = BLOCK_V1.replace(", 1)", ", 3, padding=1)")


@pytest.fixture()
def repo(tmp_path):
    """A repository with two commits of blocks.py: v1 at HEAD~1, v2 at HEAD."""
    root = git_repo(tmp_path / "repo", {"blocks.py": BLOCK_V1}, "v1")
    (root / "blocks.py").write_text(BLOCK_V2)
    _git(root, "commit", "-qam", "v2")
    return root


def test_the_revision_is_extracted_and_removed_after(repo):
    with checked_out("HEAD~1", [repo / "blocks.py"]) as checkout:
        assert checkout.path_of(repo / "blocks.py").read_text() == BLOCK_V1
        assert len(checkout.commit) == 40 and checkout.rev == "HEAD~1"
        root = checkout.root
    assert not root.exists()
    assert (repo / "blocks.py").read_text() == BLOCK_V2  # the working tree is untouched


@pytest.mark.parametrize("rev, message", [
    ("nope", "--against nope: no revision 'nope' in"),
    ("-x", "--against -x: '-x' is not a revision"),
])
def test_a_missing_revision_is_one_line(repo, rev, message):
    with pytest.raises(UsageError) as err, checked_out(rev, [repo / "blocks.py"]):
        pass
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_file_that_does_not_exist_at_the_revision(repo):
    (repo / "new.py").write_text(BLOCK_V1)
    _git(repo, "add", "new.py")
    _git(repo, "commit", "-qm", "new")
    with pytest.raises(UsageError, match=r"new.py does not exist at HEAD~1 \([0-9a-f]{10}\)"):
        with checked_out("HEAD~1", [repo / "new.py"]):
            pass


def test_a_dirty_tree_is_refused_unless_allowed(repo):
    (repo / "blocks.py").write_text(BLOCK_V2 + "# edited\n")
    with pytest.raises(UsageError, match="uncommitted changes \\(blocks.py\\): commit them, or "
                       "pass --allow-dirty"):
        with checked_out("HEAD~1", [repo / "blocks.py"]):
            pass
    with checked_out("HEAD~1", [repo / "blocks.py"], allow_dirty=True) as checkout:
        assert checkout.path_of(repo / "blocks.py").read_text() == BLOCK_V1


def test_a_shallow_clone_without_the_revision_says_to_fetch_it(repo, tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)],
                   check=True, capture_output=True)
    with pytest.raises(UsageError, match="is not in this shallow clone .* fetch-depth: 0"):
        with checked_out("HEAD~1", [clone / "blocks.py"]):
            pass


def test_a_file_outside_any_repository(tmp_path):
    (tmp_path / "loose.py").write_text(BLOCK_V1)
    with pytest.raises(UsageError, match="loose.py is not in a git repository"):
        with checked_out("HEAD", [tmp_path / "loose.py"]):
            pass


def test_without_git_on_the_path(repo, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UsageError, match="--against HEAD needs git"):
        with checked_out("HEAD", [repo / "blocks.py"]):
            pass


def test_built_in_blocks_have_no_revision():
    with pytest.raises(UsageError, match="built-in blocks have no revision: gate them with "
                       "--baseline"):
        with checked_out("HEAD", []):
            pass
