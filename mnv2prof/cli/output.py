"""A command's output files: checked before any work, written together, and said where.

`Outputs(csv=path, json=path, inputs={"--baseline": path})` checks every path first (the folder
exists and can be written, the target is not a folder, nor one of the command's `inputs`, nor
another output); `write` writes them all or none (files.atomic.write_all: a device is written
through, a link's target replaced) and says on stderr what went where. Tables are CSV, or JSON
records when the path ends in .json.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mnv2prof.cli.app import display_on_stderr, tell
from mnv2prof.errors import UsageError
from mnv2prof.files.atomic import Inputs, check_not_input, check_target, same_file, write_all

if TYPE_CHECKING:  # pandas takes 0.4 s to import: not before a flag is checked
    import pandas as pd


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def frame_text(frame: pd.DataFrame, path: Path, flag: str = "") -> str:
    """The frame as CSV (`--csv`), JSON records (`--json`), or by `path`'s suffix otherwise."""
    if flag == "json" or (flag != "csv" and Path(path).suffix.lower() == ".json"):
        return frame.to_json(orient="records", indent=2)
    return frame.to_csv(index=False)


STDOUT = "-"  # `--csv -`, `--json -`: the rows go to stdout
STDOUT_FLAGS = ("csv", "json")


class Outputs:
    """The files a command writes, by flag (`csv`, `json`, `markdown_summary`...); None = not
    asked for. `--csv -` or `--json -` writes to stdout instead (one of them at most), and then
    the tables go to stderr. `inputs` are the files the command reads (what -> path or paths):
    no output may name one."""

    def __init__(self, inputs: Inputs | None = None, **paths: str | Path | None) -> None:
        piped = [flag for flag, path in paths.items() if path == STDOUT]
        if [flag for flag in piped if flag not in STDOUT_FLAGS]:
            raise UsageError(f"{_flag(piped[0])} -: only --csv and --json can go to stdout")
        if len(piped) > 1:
            raise UsageError("--csv - and --json -: only one output can go to stdout")
        self.stdout_flag = piped[0] if piped else None
        if self.stdout_flag:
            display_on_stderr()
        paths = {flag: path for flag, path in paths.items() if path != STDOUT}
        for flag, path in paths.items():
            if path is not None:
                check_target(path, _flag(flag))  # the text as given: "" is not "."
                check_not_input(path, _flag(flag), inputs or {})
        self.paths = {flag: Path(p) for flag, p in paths.items() if p is not None}
        seen: list[tuple[Path, str]] = []
        for flag, path in self.paths.items():
            for other, other_flag in seen:
                if same_file(path, other):
                    raise UsageError(f"{other_flag} and {_flag(flag)} name the same file "
                                     f"{path}: give each output its own")
            seen.append((path, _flag(flag)))

    def __bool__(self) -> bool:
        return bool(self.paths) or self.stdout_flag is not None

    def write(self, contents: dict[str, str | bytes], what: str) -> None:
        """Write each asked-for output from `contents` (by flag; a frame's text from
        `frame_text`), all or none, and say `wrote {what} to {path}` for each."""
        files = [(path, contents[flag]) for flag, path in self.paths.items()]
        write_all(files)
        for path, _ in files:
            tell(f"wrote {what} to {path}")
        if self.stdout_flag:
            text = contents[self.stdout_flag]
            sys.stdout.write(text if isinstance(text, str) else text.decode())
            sys.stdout.flush()

    def write_frame(self, frame: pd.DataFrame, what: str | None = None) -> None:
        """Every asked-for output is `frame`: CSV for --csv, JSON for --json, else by suffix."""
        what = what or f"{len(frame)} row{'' if len(frame) == 1 else 's'}"
        flags = [*self.paths, *([self.stdout_flag] if self.stdout_flag else [])]
        paths = {**self.paths, **({self.stdout_flag: Path(STDOUT)} if self.stdout_flag else {})}
        self.write({flag: frame_text(frame, paths[flag], flag) for flag in flags}, what)


def check_folder(name: str | Path, flag: str) -> Path:
    """Refuse, before any work and creating nothing, an output folder that cannot be made or
    written: an empty name, a file, a name too long, under a file or a folder not writable."""
    if not str(name).strip():
        raise UsageError(f"{flag} needs a folder name, got an empty string")
    path = Path(name)
    try:
        if path.exists() and not path.is_dir():
            raise UsageError(f"{flag} {path} exists and is not a folder")
        existing = next(p for p in [path, *path.absolute().parents] if p.exists())
    except OSError as exc:
        raise UsageError(f"cannot create {flag} {path}: {exc.strerror or exc}") from None
    if not existing.is_dir():
        raise UsageError(f"cannot create {flag} {path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "the folder" if existing == path else f"folder {existing}"
        raise UsageError(f"cannot write into {flag} {path}: {what} is not writable")
    return path


def make_folder(name: str | Path, flag: str) -> Path:
    """Create the output folder `name` (and its parents), or refuse in one line."""
    path = check_folder(name, flag)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {flag} {path}: {exc.strerror or exc}") from None
    return path
