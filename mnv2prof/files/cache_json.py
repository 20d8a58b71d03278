"""The tool's own JSON files under the cache root (the history of fastest calls, this machine's
calibration), read so that a damaged one never fails a run.

These files are the tool's, not the user's: one that does not read as the tool wrote it (a
folder, a link, a FIFO, bytes that are not UTF-8 JSON, JSON nested past files.nesting's
limit) is `Unreadable`, and its owner sets it aside (`set_aside`) and starts anew, as the cache
does with an export. Only a regular file is opened: a FIFO would block the read, and a
link could point at a file of the user's that the next write would replace.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from mnv2prof.files.nesting import load_json

MAX_BYTES = 16 * 2**20  # far above any file the tool writes; a bigger one is not its own
SET_ASIDE_SUFFIX = ".unreadable"


class Unreadable(Exception):
    """A cache file that is not what the tool wrote; the message says why."""


def read_cache_json(path: Path) -> object:
    """The JSON value in `path`; None when nothing is there. Raises `Unreadable` for anything
    else that is not a regular file of at most MAX_BYTES of UTF-8 JSON."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:  # a parent that is a file, no permission
        raise Unreadable(exc.strerror or type(exc).__name__) from None
    if not stat.S_ISREG(info.st_mode):
        raise Unreadable("not a regular file")
    if info.st_size > MAX_BYTES:
        raise Unreadable(f"{info.st_size:,} bytes, more than the tool writes")
    try:
        return load_json(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise Unreadable(exc.strerror or type(exc).__name__) from None
    except ValueError as exc:  # not UTF-8, not JSON, nested past the limit
        raise Unreadable(" ".join(str(exc).split()) or type(exc).__name__) from None


def set_aside(path: Path) -> None:
    """Move `path` (a file, a folder, a link) to `path` + SET_ASIDE_SUFFIX, replacing an earlier
    one there, so the next write starts anew; never raises (what cannot be moved stays, and the
    next write's own failure is its owner's to absorb)."""
    aside = Path(str(path) + SET_ASIDE_SUFFIX)
    try:
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside)
        elif os.path.lexists(aside):
            aside.unlink()
        os.replace(path, aside)
    except OSError:
        pass
