"""`gate --against REV|OTHER` (issue 33): the base built from a git revision or another file and
timed beside the change; every git path that cannot work is one line and exit 2."""

from xml.etree import ElementTree

import pytest

from mnv2prof.errors import ExitCode
from tests.helpers import SPEC8, git_repo
from tests.helpers import git as _git

TINY = (*SPEC8, "--budget", "0.2")
BLOCK = ("from torch import nn\n\n\ndef block(in_chs, out_chs):\n"
         "    return nn.Sequential(nn.Conv2d(in_chs, out_chs, 3, padding=1), nn.ReLU())\n")
WIDER = BLOCK.replace("nn.ReLU())", "nn.ReLU(), nn.Conv2d(out_chs, out_chs, 1))")


@pytest.fixture()
def repo(tmp_path):
    """A repository whose blocks.py is BLOCK at HEAD."""
    return git_repo(tmp_path / "repo", {"blocks.py": BLOCK})


def _one_line(result):
    code, out, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == ExitCode.USAGE, out + err
    assert len(lines) == 1 and lines[0].startswith("mnv2prof: error: "), err
    return lines[0]


def test_an_unchanged_revision_passes_and_its_files_say_so(run_cli, repo, tmp_path):
    junit, md = tmp_path / "j.xml", tmp_path / "s.md"
    # 2x: the files are under test; A/A at 0.01 ms and --budget 0.2 was never scored at 10%
    code, out, err = run_cli("gate", "--against", "HEAD", "--variants",
                             f"{repo}/blocks.py:block", *TINY, "--junit", junit,
                             "--markdown-summary", md, "--max-slowdown", "1")
    assert code in (ExitCode.OK,), out + err
    suite = ElementTree.parse(junit).getroot()[0]
    assert suite.get("tests") == "1" and suite.get("failures") == "0"
    assert md.read_text().startswith("### mnv2prof gate against HEAD (")
    assert "| block |" in md.read_text() and "same" in md.read_text()


def test_a_change_of_counted_cost_fails_unless_allowed(run_cli, repo):
    (repo / "blocks.py").write_text(WIDER)
    args = ("gate", "--against", "HEAD", "--allow-dirty", "--variants",
            f"{repo}/blocks.py:block", *TINY)
    code, out, err = run_cli(*args)
    assert code == ExitCode.REGRESSION and "cost changed" in out, out + err
    assert "block: counted cost changed: macs 1.11x" in " ".join(out.split())
    code, out, _ = run_cli(*args, "--allow-cost-change")
    assert "counted cost changed (allowed)" in " ".join(out.split())


@pytest.mark.parametrize("rev, message", [
    ("nope", "--against nope: no revision 'nope' in"),
    ("HEAD~5", "--against HEAD~5: no revision 'HEAD~5' in"),
])
def test_a_missing_revision_is_one_line(run_cli, repo, rev, message):
    line = _one_line(run_cli("gate", "--against", rev, "--variants", f"{repo}/blocks.py:block",
                             *TINY))
    assert message in line


def test_a_dirty_tree_and_a_new_file_are_one_line(run_cli, repo):
    (repo / "blocks.py").write_text(WIDER)
    line = _one_line(run_cli("gate", "--against", "HEAD", "--variants",
                             f"{repo}/blocks.py:block", *TINY))
    assert "uncommitted changes (blocks.py)" in line and "--allow-dirty" in line
    (repo / "new.py").write_text(BLOCK)
    _git(repo, "add", "new.py")
    _git(repo, "commit", "-qm", "new")
    line = _one_line(run_cli("gate", "--against", "HEAD~1", "--allow-dirty", "--variants",
                             f"{repo}/new.py:block", *TINY))
    assert "new.py does not exist at HEAD~1" in line


def test_a_model_that_fails_to_build_at_the_revision_names_it(run_cli, repo):
    (repo / "blocks.py").write_text(BLOCK.replace("def block", "def other"))
    _git(repo, "commit", "-qam", "renamed")
    (repo / "blocks.py").write_text(BLOCK)
    _git(repo, "commit", "-qam", "back")
    line = _one_line(run_cli("gate", "--against", "HEAD~1", "--variants",
                             f"{repo}/blocks.py:block", *TINY))
    assert "block" in line and "mnv2prof-rev-" in line


def test_built_in_blocks_and_both_or_neither_side_are_refused(run_cli, repo, tmp_path):
    line = _one_line(run_cli("gate", "--against", "HEAD", "--variants", "conv", *TINY))
    assert "conv is a built-in block" in line and "--baseline" in line
    assert "one of them" in _one_line(run_cli("gate", *TINY))
    assert "one of them" in _one_line(run_cli("gate", "--against", "HEAD", "--baseline",
                                              tmp_path / "b.csv", *TINY))


def test_another_file_is_the_base_without_git(run_cli, tmp_path):
    (tmp_path / "old.py").write_text(BLOCK)
    (tmp_path / "new.py").write_text(BLOCK)
    code, out, err = run_cli("gate", "--against", f"{tmp_path}/old.py:block", "--variants",
                             f"{tmp_path}/new.py:block", *TINY, "--max-slowdown", "1")
    assert code == ExitCode.OK, out + err
    assert "against" in out and "block" in out


def test_each_side_imports_its_own_revisions_neighbours(run_cli, repo):
    (repo / "helpers.py").write_text("WIDTH = 1\n")
    (repo / "blocks.py").write_text(
        "from torch import nn\nfrom helpers import WIDTH\n\n\ndef block(in_chs, out_chs):\n"
        "    return nn.Conv2d(in_chs, out_chs * WIDTH, 1)\n")
    _git(repo, "add", "helpers.py", "blocks.py")
    _git(repo, "commit", "-qm", "helpers")
    (repo / "helpers.py").write_text("WIDTH = 2\n")  # the change: the neighbour, not blocks.py
    code, out, err = run_cli("gate", "--against", "HEAD", "--allow-dirty", "--variants",
                             f"{repo}/blocks.py:block", *TINY)
    assert code == 1 and "counted cost changed: macs 2.00x" in " ".join(out.split()), out + err
