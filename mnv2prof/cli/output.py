"""A command's output files: checked before any work, written together, and said where.

`Outputs(csv=path, json=path)` checks every path first (the folder exists and can be written, the
target is not a folder); `write` writes them all or none (onnx.atomic.write_all) and says on
stderr what went where. Tables are CSV, or JSON records when the path ends in .json.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mnv2prof.cli.app import tell
from mnv2prof.errors import UsageError
from mnv2prof.onnx.atomic import write_all


def check_output(path: Path, flag: str) -> None:
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


def frame_text(frame: pd.DataFrame, path: Path) -> str:
    """The frame as CSV, or as JSON records when `path` ends in .json."""
    if Path(path).suffix.lower() == ".json":
        return frame.to_json(orient="records", indent=2)
    return frame.to_csv(index=False)


class Outputs:
    """The files a command writes, by flag (`csv`, `json`, `markdown_summary`...); None = not
    asked for."""

    def __init__(self, **paths: Path | None) -> None:
        self.paths = {flag: Path(p) for flag, p in paths.items() if p is not None}
        for flag, path in self.paths.items():
            check_output(path, "--" + flag.replace("_", "-"))

    def __bool__(self) -> bool:
        return bool(self.paths)

    def write(self, contents: dict[str, str | bytes], what: str) -> None:
        """Write each asked-for output from `contents` (by flag; a frame's text from
        `frame_text`), all or none, and say `wrote {what} to {path}` for each."""
        files = [(path, contents[flag]) for flag, path in self.paths.items()]
        write_all(files)
        for path, _ in files:
            tell(f"wrote {what} to {path}")

    def write_frame(self, frame: pd.DataFrame, what: str | None = None) -> None:
        """Every asked-for output is `frame`, as CSV or JSON by its suffix."""
        what = what or f"{len(frame)} rows"
        self.write({flag: frame_text(frame, path) for flag, path in self.paths.items()}, what)
