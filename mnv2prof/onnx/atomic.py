"""Atomic output files: write to a temporary name in the target's folder, rename when complete.

A reader (or a killed run) never sees half a file: either the old file or the whole new one.
Every writer of outputs (ONNX exports, CSV/JSON/Markdown/LaTeX/XML, figures) goes through here,
and a command's several outputs are written together (`write_all`): all of them, or none. Files
get the mode the user's umask gives a new file (a temporary file is created 0600, which would
leave a CI artifact unreadable to others).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from mnv2prof.errors import UsageError


def check_target(path: Path | str, flag: str) -> None:
    """Refuse, before any work, a path that cannot be written: empty, a folder, in a folder that
    does not exist or cannot be written."""
    text = str(path)
    if not text.strip():
        raise UsageError(f"{flag} needs a file name, got an empty string")
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {path}: folder {folder} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"cannot write {path}: the file is not writable")


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_target(path: Path | str, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on a clean exit rename it onto `path`.

    On an exception the temporary file is removed and `path` is left as it was. The suffix
    matters to writers that infer the format from it (matplotlib's savefig).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: folder {path.parent} does not exist")
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path | str, text: str) -> None:
    """Write `text` (UTF-8) to `path` through `atomic_target`."""
    write_all([(Path(path), text)])


def copy_atomic(source: Path, target: Path) -> None:
    """Copy `source` onto `target` through `atomic_target`."""
    with atomic_target(target, suffix=target.suffix + ".tmp") as tmp:
        shutil.copyfile(source, tmp)


def write_all(files: Sequence[tuple[Path, str | bytes]]) -> None:
    """Write every (path, content) or none: each is staged in a temporary file beside its target
    first, and the renames start only once all are staged. A failure while staging (a full disk,
    a folder that vanished) removes every temporary file and leaves every target as it was."""
    with contextlib.ExitStack() as stack:
        staged = []
        for path, content in files:
            tmp = stack.enter_context(atomic_target(path, suffix=Path(path).suffix + ".tmp"))
            if isinstance(content, bytes):
                tmp.write_bytes(content)
            else:
                tmp.write_text(content, encoding="utf-8", newline="")
            staged.append(tmp)
        # leaving the stack renames them, in reverse order, each onto its target
