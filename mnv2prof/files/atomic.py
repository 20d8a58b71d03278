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
import time
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


def check_folder_outputs(
    folder: Path | str, names: Sequence[str], flag: str, inputs: Inputs
) -> list[Path]:
    """The files `names` an output folder will hold, each checked as a single output is, before
    any work: one that is there already (a file, a link) must be writable and never one of
    `inputs` (a link `d/conv.onnx` to the user's PATH.py would replace the user's source), and
    no two of them may be one file. Returns their paths."""
    folder = Path(folder)
    targets = [folder / name for name in names]
    for number, target in enumerate(targets):
        try:
            there = target.is_symlink() or target.exists()
        except OSError as exc:  # a name too long
            raise UsageError(f"{flag} {target}: {exc.strerror or exc}") from None
        if there:
            check_target(target, flag)
            check_not_input(target, flag, inputs)
        for other in targets[:number]:
            if there and same_file(target, other):
                raise UsageError(f"{flag} {folder}: {other.name} and {target.name} name one file "
                                 f"({resolved_target(target)}); give each output its own")
    return targets


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FIFO_WAIT_S = 10.0  # how long a FIFO output waits for its reader before it is refused
_FIFO_POLL_S = 0.05


def open_through(path: Path) -> int:
    """A file descriptor to write into the device or FIFO at `path`, opened without blocking: a
    FIFO with no reader is retried for `FIFO_WAIT_S` (a signal ends the wait: interrupts.check),
    then refused in one line. The descriptor is made blocking again, so a slow reader is
    waited for while it reads."""
    from mnv2prof import interrupts

    deadline = time.monotonic() + FIFO_WAIT_S
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: a FIFO that no process reads yet
                raise path_error(path, exc) from None
            if time.monotonic() >= deadline:
                raise UsageError(f"cannot write {path}: a FIFO that no process read for "
                                 f"{FIFO_WAIT_S:g} s; start its reader first") from None
        interrupts.check()
        time.sleep(_FIFO_POLL_S)
    os.set_blocking(fd, True)
    return fd


def write_through(path: Path, data: bytes) -> None:
    """Write `data` into the device or FIFO at `path` in place (no temporary file, no rename, and
    never a new file: the node must exist); a refusal (ENOSPC) is one line."""
    fd = open_through(path)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        raise path_error(path, exc) from None
    finally:
        os.close(fd)


TEMP_PREFIX = ".mnv2prof-"  # a long target's temporary name: this, 8 random characters, suffix
_LONGEST_NAME = 64  # bytes of a target's name kept in its temporary name, to say whose it is
_LONGEST_SUFFIX = 24  # bytes of the target's suffix kept in a temporary name (matplotlib reads it)


def _bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def temp_prefix(name: str) -> str:
    """".NAME." for a short target name, else `TEMP_PREFIX`: with `temp_suffix`, a temporary
    name stays far below the file system's NAME_MAX (255 bytes) whatever the target's name."""
    return f".{name}." if _bytes(name) <= _LONGEST_NAME else TEMP_PREFIX


def temp_suffix(suffix: str) -> str:
    """`suffix` when it is short, else ".tmp"."""
    return suffix if _bytes(suffix) <= _LONGEST_SUFFIX else ".tmp"


@contextlib.contextmanager
def atomic_target(path: Path | str, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on a clean exit rename it onto `path`.

    On an exception (an interrupt included) the temporary file is removed and `path` is left as
    it was. Its name is short and random (`temp_prefix`, `temp_suffix`): a target of 255 bytes
    still gets one. The suffix matters to writers that infer the format from it (matplotlib's
    savefig). A link at `path` is followed (its target replaced, the link kept); a device or
    FIFO is written through from a temporary file in the system's temporary folder.
    """
    given = Path(path)
    path = resolved_target(given)
    special = is_special(path)
    if not special and not path.parent.is_dir():
        raise UsageError(f"cannot write {given}: folder {path.parent} does not exist")
    tmp: Path | None = None
    try:
        try:
            fd, name = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=temp_suffix(suffix),
                                        dir=None if special else path.parent)
        except OSError as exc:
            raise path_error(given, exc) from None
        tmp = Path(name)
        os.close(fd)
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
        if tmp is not None:
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
