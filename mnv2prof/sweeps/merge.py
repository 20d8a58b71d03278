"""`mnv2prof merge A.csv B.csv ... --out ALL.csv`: join the parts of a sharded sweep (or any
results files written by one version) into one file.

Every input is read defensively (`readers.read_table`, every cell kept as text, so a value is
written back exactly as it was read: "1.20" stays "1.20") and held to what every reader of
results holds it to (`readers.check_results`: numbers, CIs, no row twice in a file), then the
union is checked; each refusal is one UsageError line naming the files:

- the files must have the same columns in the same order (what one version writes; a journal
  is resumed only under its own header, so a merged file can still be resumed by `sweep`);
- no row twice: a row is keyed by its spec_hash, and by (spec_hash, host) when the files have
  a `host` column, so the same spec measured on two hosts is two measurements (kept apart by
  host, as report and gate keep environments apart), while the same row on the same host in
  two parts is a duplicate, as is a file given twice (files.results.check_one_row_per_host);
- one cache mode (`cache_mode`): a results file never mixes warm and cold timings
  (files.results.check_one_cache_mode).

Rows from different environments are not refused: each row carries its own (`env_*`), and
what compares rows (report, gate) keeps environments apart.

One file is accepted (a CI matrix of one shard still merges `parts/*.csv`); none is refused.
The merged rows are in the order given, each file's rows in its own order.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mnv2prof.errors import UsageError
from mnv2prof.files.results import Place, check_one_cache_mode, check_one_row_per_host
from mnv2prof.files.readers import KEY, read_table

WHAT = "merge input"
REQUIRED = {"variant": KEY, "spec_hash": KEY}


def merge_files(paths: Sequence[Path | str]) -> pd.DataFrame:
    """The rows of every file in `paths`, checked (see the module docstring), as text."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise UsageError("merge needs at least one CSV file to read")
    seen: dict[Path, Path] = {}
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            raise UsageError(f"merge: {path} is given twice (as {seen[resolved]} and {path})")
        seen[resolved] = path
    frames = [read_table(path, WHAT, REQUIRED, as_text=True, results=True) for path in paths]
    first, header = paths[0], list(frames[0].columns)
    for path, frame in zip(paths[1:], frames[1:], strict=True):
        _check_columns(first, header, path, list(frame.columns))
    try:
        _check_cache_modes(paths, frames)
        _check_duplicates(paths, frames, "host" in header)
    except UsageError as exc:
        raise UsageError(f"merge: {exc}") from None
    return pd.concat(frames, ignore_index=True)


def merge_text(frame: pd.DataFrame) -> str:
    """The merged rows as CSV text, quoted as the sweep journal quotes (csv's minimal quoting,
    "\\n" line ends), so merging journals gives back their rows byte for byte."""
    text = io.StringIO()
    frame.to_csv(text, index=False, lineterminator="\n")
    return text.getvalue()


def _check_columns(first: Path, header: list[str], path: Path, columns: list[str]) -> None:
    if columns == header:
        return
    missing = [c for c in header if c not in columns]
    extra = [c for c in columns if c not in header]
    if not missing and not extra:
        raise UsageError(
            f"merge: {path} has the columns of {first} in another order: files written by "
            "different versions are not merged"
        )
    raise UsageError(
        f"merge: {path} has other columns than {first} (missing: {', '.join(missing) or 'none'}; "
        f"extra: {', '.join(extra) or 'none'}): files written by different versions are not "
        "merged"
    )


def _check_cache_modes(paths: Sequence[Path], frames: Sequence[pd.DataFrame]) -> None:
    if "cache_mode" in frames[0].columns:
        check_one_cache_mode(
            (str(path), mode) for path, frame in zip(paths, frames, strict=True)
            for mode in frame["cache_mode"]
        )


def _check_duplicates(
    paths: Sequence[Path], frames: Sequence[pd.DataFrame], by_host: bool
) -> None:
    rows = (
        (spec_hash, host, Place(str(path), number))
        for path, frame in zip(paths, frames, strict=True)
        for number, (spec_hash, host) in enumerate(
            zip(frame["spec_hash"], frame["host"] if by_host else [""] * len(frame)), 1)
    )
    check_one_row_per_host(rows, once="merged")
