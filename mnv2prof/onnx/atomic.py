"""Atomic output files: write to a temporary name in the target's folder, rename when complete.

A reader (or a killed run) never sees half a file: either the old file or the whole new one.
Every writer of outputs (ONNX exports, CSV/JSON/Markdown/LaTeX, figures) goes through here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mnv2prof.errors import UsageError


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
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path | str, text: str) -> None:
    """Write `text` (UTF-8) to `path` through `atomic_target`."""
    with atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
