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
from mnv2prof.onnx.atomic import check_target, write_all


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def frame_text(frame: pd.DataFrame, path: Path, flag: str = "") -> str:
    """The frame as CSV (`--csv`), JSON records (`--json`), or by `path`'s suffix otherwise."""
    if flag == "json" or (flag != "csv" and Path(path).suffix.lower() == ".json"):
        return frame.to_json(orient="records", indent=2)
    return frame.to_csv(index=False)


class Outputs:
    """The files a command writes, by flag (`csv`, `json`, `markdown_summary`...); None = not
    asked for."""

    def __init__(self, **paths: str | Path | None) -> None:
        for flag, path in paths.items():
            if path is not None:
                check_target(path, _flag(flag))  # the text as given: "" is not "."
        self.paths = {flag: Path(p) for flag, p in paths.items() if p is not None}
        seen: dict[Path, str] = {}
        for flag, path in self.paths.items():
            if path.resolve() in seen:
                raise UsageError(f"{seen[path.resolve()]} and {_flag(flag)} name the same file "
                                 f"{path}: give each output its own")
            seen[path.resolve()] = _flag(flag)

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
        self.write({flag: frame_text(frame, path, flag) for flag, path in self.paths.items()}, what)


def make_folder(name: str | Path, flag: str) -> Path:
    """Create the output folder `name` (and its parents), or refuse in one line."""
    if not str(name).strip():
        raise UsageError(f"{flag} needs a folder name, got an empty string")
    path = Path(name)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {flag} {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write into {flag} {path}: the folder is not writable")
    return path
