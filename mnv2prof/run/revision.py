"""A git revision of the user's repository as files on disk, for `gate --against REV`: the base
side of an A/B gate is the user's code as it was at REV, extracted into a temporary folder
(`git archive`, the tracked files alone: no worktree is registered in the user's repository, so
nothing is left behind there) and imported by the worker from that folder.

Every way this can go wrong is one `UsageError` line (exit 2) naming the revision: git missing, a
file outside any repository, a revision that does not exist (in a shallow clone: fetch it), a
file that does not exist at the revision, and uncommitted changes to tracked files (the change
side would not be what the revision's successor holds; `--allow-dirty` gates the working tree as
it is, the usual case on a developer's machine).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mnv2prof.errors import UsageError

GIT_TIMEOUT_S = 120  # a git command on a large repository; past it something is wrong


@dataclass(frozen=True)
class Checkout:
    """A revision extracted: `root` holds the files of `commit` as `repo` tracks them."""

    rev: str  # as the user gave it: origin/main, a SHA, HEAD~1
    commit: str  # its full SHA
    repo: Path  # the repository's top level
    root: Path  # the temporary folder with the revision's files

    @property
    def short(self) -> str:
        return self.commit[:10]

    def path_of(self, path: Path) -> Path:
        """Where `path` (a file of the working tree) lies in the revision's folder."""
        return self.root / Path(path).resolve().relative_to(self.repo)


def git(args: Sequence[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    """`git ARGS` in `cwd`, its output as bytes; git missing or timing out is one line."""
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True,
                              timeout=GIT_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise UsageError(f"{what} needs git, and no git is on the PATH") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"{what}: git {' '.join(args[:2])} did not finish within "
                         f"{GIT_TIMEOUT_S} s") from None


def repository_of(path: Path, what: str) -> Path:
    """The top level of the git repository that holds `path`."""
    done = git(["rev-parse", "--show-toplevel"], Path(path).resolve().parent, what)
    if done.returncode != 0:
        raise UsageError(f"{what}: {path} is not in a git repository")
    return Path(done.stdout.decode().strip()).resolve()


def resolve_commit(repo: Path, rev: str, what: str) -> str:
    """The full SHA `rev` names in `repo`; a revision a shallow clone lacks says to fetch it."""
    if not rev.strip() or rev.startswith("-"):
        raise UsageError(f"{what}: {rev!r} is not a revision")
    done = git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], repo, what)
    if done.returncode == 0:
        return done.stdout.decode().strip()
    shallow = git(["rev-parse", "--is-shallow-repository"], repo, what).stdout.decode().strip()
    if shallow == "true":
        raise UsageError(f"{what}: revision {rev!r} is not in this shallow clone of {repo}: "
                         "fetch it (git fetch --unshallow, or actions/checkout with "
                         "fetch-depth: 0)")
    raise UsageError(f"{what}: no revision {rev!r} in {repo} (git fetch it, or give a SHA, a "
                     "branch or a tag)")


def uncommitted(repo: Path, what: str) -> list[str]:
    """Tracked files with uncommitted changes (staged or not)."""
    done = git(["status", "--porcelain", "--untracked-files=no"], repo, what)
    return [line[3:] for line in done.stdout.decode().splitlines() if line.strip()]


def file_at(repo: Path, commit: str, path: Path) -> bool:
    relative = Path(path).resolve().relative_to(repo).as_posix()
    return git(["cat-file", "-e", f"{commit}:{relative}"], repo, "").returncode == 0


def extract(repo: Path, commit: str, into: Path, what: str) -> None:
    """The tracked files of `commit` into the folder `into` (`git archive`, read as a tar)."""
    done = git(["archive", "--format=tar", commit], repo, what)
    if done.returncode != 0:
        raise UsageError(f"{what}: git archive {commit[:10]} failed: "
                         f"{done.stderr.decode().strip().splitlines()[-1:]}")
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(into, filter="data")  # no links out of the folder, no devices


@contextlib.contextmanager
def checked_out(rev: str, files: Sequence[Path], allow_dirty: bool = False,
                what: str = "--against") -> Iterator[Checkout]:
    """The revision `rev` of the repository holding `files` (the user's code measured now),
    extracted into a temporary folder for the duration; each of `files` must exist there."""
    if not files:
        raise UsageError(f"{what} {rev}: nothing to build at the revision (built-in blocks have "
                         "no revision: gate them with --baseline)")
    what = f"{what} {rev}"
    repo = repository_of(files[0], what)
    outside = [f for f in files if not Path(f).resolve().is_relative_to(repo)]
    if outside:
        raise UsageError(f"{what}: {outside[0]} is not in the repository {repo}")
    commit = resolve_commit(repo, rev, what)
    changed = uncommitted(repo, what)
    if changed and not allow_dirty:
        raise UsageError(f"{what}: the working tree has uncommitted changes ({changed[0]}"
                         f"{' and more' if len(changed) > 1 else ''}): commit them, or pass "
                         "--allow-dirty to gate the working tree as it is")
    missing = [f for f in files if not file_at(repo, commit, f)]
    if missing:
        raise UsageError(f"{what}: {Path(missing[0]).resolve().relative_to(repo)} does not exist "
                         f"at {rev} ({commit[:10]})")
    root = Path(tempfile.mkdtemp(prefix="mnv2prof-rev-"))
    try:
        extract(repo, commit, root, what)
        yield Checkout(rev, commit, repo, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
