"""Atomic output files: write to a temporary name in the target's folder, rename when complete.

A reader (or a killed run) never sees half a file: either the old file or the whole new one.
Every writer of outputs (ONNX exports, CSV/JSON/Markdown/LaTeX/XML, figures) goes through here,
and a command's several outputs are written together (`write_all`): all of them, or none. Files
get the mode the user's umask gives a new file (a temporary file is created 0600, which would
leave a CI artifact unreadable to others).

What an output may never be (issue 25), checked before any work:
- **an input** of the same command (`check_not_input`): the paths are compared resolved, and
  by `os.path.samefile` for a hard link; refused with exit 2, nothing written;
- **a device or a FIFO replaced**: a target that exists and is neither a regular file nor a
  folder (a character or block device such as /dev/null or /dev/full, a FIFO) is written
  through, opened and written in place as `> /dev/null` would, never renamed onto; a device
  that refuses the bytes (ENOSPC on /dev/full) is `WriteError`, exit 3 in one line. A command
  writes such targets before it renames any file onto its target, so that failure leaves its
  other outputs as they were. A socket is refused;
- **a symbolic link replaced**: a link is followed to the end, the file it names is replaced
  atomically as above, and the link stays a link (a dangling link's target is created, when
  its folder exists).

An `OSError` while writing is one line: exit 2 when the path is at fault (a name too long, a
folder that is a file, no permission), `WriteError` (exit 3) otherwise (a full disk, EIO).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from mnv2prof.errors import UsageError, WriteError

# errno values that say the path given is at fault (exit 2), not the machine (exit 3)
PATH_ERRNOS = frozenset({
    errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.ENOENT, errno.EACCES,
    errno.EPERM, errno.EROFS, errno.ENXIO,
})  # fmt: skip

# What a command reads, by what it is called ("--baseline", "CSV"): a path, several, or None.
Inputs = Mapping[str, "str | Path | Sequence[str | Path] | None"]


def path_error(path: Path | str, exc: OSError, doing: str = "write") -> UsageError | WriteError:
    """`exc`, raised on `path`, as one line: a `UsageError` when the path is at fault."""
    line = f"cannot {doing} {path}: {exc.strerror or exc}"
    return UsageError(line) if exc.errno in PATH_ERRNOS else WriteError(line)


def resolved_target(path: Path | str) -> Path:
    """`path`, or the file a symbolic link at `path` names (followed to the end)."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _mode(path: Path) -> int | None:
    """`path`'s st_mode (links followed), None when nothing is there."""
    try:
        return path.stat().st_mode
    except FileNotFoundError:
        return None


def is_special(path: Path | str) -> bool:
    """Whether `path` (a link followed) exists and is neither a regular file nor a folder: a
    device or a FIFO, which an output is written through to, never replaced."""
    try:
        mode = _mode(Path(path))
    except OSError:
        return False
    return mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def check_target(path: Path | str, flag: str) -> None:
    """Refuse, before any work, a path that cannot be written: empty, a folder, a socket, in a
    folder that does not exist or cannot be written. A link is judged by the file it names; a
    device or a FIFO only needs to be writable (it is written through)."""
    text = str(path)
    if not text.strip():
        raise UsageError(f"{flag} needs a file name, got an empty string")
    path = Path(path)
    try:
        target = resolved_target(path)
        mode = _mode(target)
    except OSError as exc:  # ENAMETOOLONG, ENOTDIR (a folder that is a file), ELOOP...
        raise UsageError(f"{flag} {path}: {exc.strerror or exc}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise UsageError(f"{flag} {path} is a folder; give a file name")
    if mode is not None and stat.S_ISSOCK(mode):
        raise UsageError(f"{flag} {path} is a socket; give a file name")
    if mode is not None and not stat.S_ISREG(mode):  # a device or a FIFO: written through
        if not os.access(target, os.W_OK):
            raise UsageError(f"cannot write {path}: permission denied")
        return
    folder = target.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {path}: folder {folder} is not writable")
    if mode is not None and not os.access(target, os.W_OK):
        raise UsageError(f"cannot write {path}: the file is not writable")


def same_file(a: Path | str, b: Path | str) -> bool:
    """Whether `a` and `b` name one file: equal once resolved (links followed), or one inode
    (a hard link)."""
    try:
        if Path(a).resolve() == Path(b).resolve():
            return True
        return os.path.samefile(a, b)
    except (OSError, RuntimeError):  # one of them missing, a name too long, a link loop
        return False


def check_not_input(path: Path | str, flag: str, inputs: Inputs) -> None:
    """Refuse an output `path` that names one of `inputs` (what -> path(s)), before any work:
    an output never replaces what the command reads."""
    for what, given in inputs.items():
        sources = [] if given is None else [given] if isinstance(given, str | Path) else given
        for source in sources:
            if str(source).strip() and same_file(path, source):
                named = "" if str(source) == str(path) else f" ({source})"
                raise UsageError(f"{flag} {path} is the input {what}{named}: an output never "
                                 "replaces an input; write it to another file")


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_through(path: Path, data: bytes) -> None:
    """Write `data` into the device or FIFO at `path` in place (no temporary file, no rename, and
    never a new file: the node must exist); a refusal (ENOSPC) is one line."""
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    except OSError as exc:
        raise path_error(path, exc) from None


@contextlib.contextmanager
def atomic_target(path: Path | str, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on a clean exit rename it onto `path`.

    On an exception the temporary file is removed and `path` is left as it was. The suffix
    matters to writers that infer the format from it (matplotlib's savefig). A link at `path`
    is followed (its target replaced, the link kept); a device or FIFO is written through from
    a temporary file in the system's temporary folder.
    """
    given = Path(path)
    path = resolved_target(given)
    special = is_special(path)
    if not special and not path.parent.is_dir():
        raise UsageError(f"cannot write {given}: folder {path.parent} does not exist")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}."[:64], suffix=suffix,
                                    dir=None if special else path.parent)
    except OSError as exc:
        raise path_error(given, exc) from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if special:
            write_through(path, tmp.read_bytes())
            return
        if tmp.exists():
            os.chmod(tmp, _umask_mode())
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise path_error(given, exc) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path | str, text: str) -> None:
    """Write `text` (UTF-8) to `path` through `atomic_target`."""
    write_all([(Path(path), text)])


def copy_atomic(source: Path, target: Path) -> None:
    """Copy `source` onto `target` through `atomic_target`."""
    with atomic_target(target, suffix=target.suffix + ".tmp") as tmp:
        try:
            shutil.copyfile(source, tmp)
        except OSError as exc:
            raise path_error(target, exc) from None


def write_all(files: Sequence[tuple[Path, str | bytes]]) -> None:
    """Write every (path, content) or none: each is staged in a temporary file beside its target
    first, and the renames start only once all are staged. A failure while staging (a full disk,
    a folder that vanished) removes every temporary file and leaves every target as it was.
    Devices and FIFOs are written through once everything is staged, before any rename."""
    as_bytes = [(Path(p), c.encode("utf-8") if isinstance(c, str) else c) for p, c in files]
    special = [is_special(path) for path, _ in as_bytes]
    with contextlib.ExitStack() as stack:
        for (path, content), through in zip(as_bytes, special, strict=True):
            if through:
                continue
            tmp = stack.enter_context(atomic_target(path, suffix=path.suffix + ".tmp"))
            try:
                tmp.write_bytes(content)
            except OSError as exc:
                raise path_error(path, exc) from None
        for (path, content), through in zip(as_bytes, special, strict=True):
            if through:
                write_through(resolved_target(path), content)
        # leaving the stack renames the staged files, in reverse order, each onto its target
