"""Every file the tool reads, read defensively: one line naming the file, the row and the column
for anything that is not what it should be, never a traceback and never a guess.

- `input_file`: the path exists, is a file (a folder is said to be one), can be read.
- `read_text`: UTF-8 text (a leading byte-order mark, as spreadsheet programs write, dropped),
  or one line saying where the first byte that is not.
- `read_table`: a CSV whose every row has the header's fields (a row cut off mid-write, the last
  one of a killed run, is named, not read as data with empty cells), whose required columns are
  there, and whose typed columns hold what they must in every row (a number, a positive number,
  a non-empty key), before pandas sees it.
- `check_results`: what a results file (a sweep journal, `compare --csv`, a merged file) must
  hold beyond that, the one verdict of every reader of results (`report`, `plot`, `explain`,
  `merge`, `sweep --resume`): each number column it has of its kind (`RESULT_COLUMNS`), each
  latency's 95% CI around its median, one cache mode, and no row twice (spec_hash, per host):
  files.results decides the last two, for every reader.

Readers never change the file they read.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import stat
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from mnv2prof.errors import UsageError
from mnv2prof.files.nesting import load_json
from mnv2prof.files.results import Place, check_one_cache_mode, check_one_row_per_host, parse_number

# Column kinds for `read_table`.
TEXT = "text"  # any value, may be empty
KEY = "key"  # non-empty text
NUMBER = "number"  # a finite number
POSITIVE = "positive"  # a finite number > 0
NON_NEGATIVE = "non-negative"  # a finite number >= 0
INTEGER = "integer"  # a whole number
COUNT = "count"  # a whole number >= 0

# The columns of a results file checked in every row when the file has them (Record.row()):
# a reader that needs fewer columns (merge) still refuses what another (report) would.
RESULT_COLUMNS = {
    "variant": KEY, "spec_hash": KEY, "threads": COUNT,
    "params": COUNT, "macs": COUNT, "flops": COUNT, "elementwise_ops": COUNT,
    "peak_act_bytes": COUNT, "weight_bytes": COUNT, "bytes_moved": COUNT, "nodes": COUNT,
    "latency_median_ms": POSITIVE, "latency_q1_ms": NON_NEGATIVE, "latency_q3_ms": NON_NEGATIVE,
    "latency_iqr_ms": NON_NEGATIVE, "latency_p95_ms": NON_NEGATIVE,
    "latency_ci_low_ms": NON_NEGATIVE, "latency_ci_high_ms": NON_NEGATIVE,
    "latency_n": COUNT, "gmacs_per_s": NON_NEGATIVE,
}  # fmt: skip
# Measurements whose CI must hold their median, where a row has the three numbers (eager and GPU
# ones are empty when not taken).
CI_PREFIXES = ("latency", "eager", "cuda_eager", "cuda_graph", "cuda_ort")


def input_file(path: Path | str, what: str) -> Path:
    """`path` if it is a readable file; else one line saying what it is instead."""
    path = Path(path)
    if not str(path).strip():
        raise UsageError(f"{what}: an empty path")
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):  # also a file's name used as a folder's
        raise UsageError(f"{what} {path} does not exist") from None
    except OSError as exc:  # a name too long, a folder that is a file, a link loop
        raise UsageError(f"{what} {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{what} {path} is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise UsageError(f"{what} {path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{what} {path} cannot be read (permission denied)")
    return path


def read_text(path: Path, what: str) -> str:
    """The file's text (UTF-8); a binary or unreadable file is one line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")  # a byte-order mark is no part of the first column's name
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{what} {path} is not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x})"
        ) from None


def _json_records_as_csv(text: str, path: Path, what: str) -> str:
    """A JSON list of records (what `--json` writes) as CSV text, every value as text."""
    try:
        records = load_json(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} {path} is not JSON: {exc.msg} at line {exc.lineno}") from None
    except ValueError as exc:  # nested past the limit: json would raise RecursionError
        raise UsageError(f"{what} {path} is not JSON the tool reads: {exc}") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise UsageError(f"{what} {path} is not a JSON list of records (rows)")
    frame = pd.DataFrame(records, dtype=object).map(lambda v: "" if v is None else str(v))
    return frame.to_csv(index=False)


def csv_rows(text: str, path: Path, what: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV text: no column named twice, every row with the header's
    number of fields."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise UsageError(f"{what} {path} is not a CSV: {exc}") from None
    rows = [row for row in rows if row]  # blank lines
    if not rows:
        raise UsageError(f"{what} {path} is empty")
    header, body = rows[0], rows[1:]
    twice = [name for number, name in enumerate(header) if name in header[:number]]
    if twice:  # pandas would read the second as `macs.1`, and merge would write it so
        raise UsageError(f"{what} {path}: the header names the column {twice[0]} twice")
    for number, row in enumerate(body, 1):
        if len(row) != len(header):
            cut = " (cut off mid-row?)" if number == len(body) else ""
            raise UsageError(
                f"{what} {path}, row {number}: {len(row)} fields where the header has "
                f"{len(header)}{cut}"
            )
    return header, body


def check_value(value: str, kind: str) -> bool:
    """Whether `value` (a CSV cell) is of `kind`."""
    if kind == TEXT:
        return True
    if kind == KEY:
        return value.strip() != ""
    try:
        number = parse_number(value)  # ASCII digits only: `1_0` and `١٢` are not numbers here
    except ValueError:
        return False
    if not math.isfinite(number):
        return False
    if kind in (INTEGER, COUNT) and number != int(number):
        return False
    if kind == POSITIVE:
        return number > 0
    if kind in (NON_NEGATIVE, COUNT):
        return number >= 0
    return True


_KIND_WORDS = {
    KEY: "a non-empty name", NUMBER: "a number", POSITIVE: "a positive number",
    NON_NEGATIVE: "a number >= 0", INTEGER: "a whole number", COUNT: "a whole number >= 0",
}  # fmt: skip


def check_kinds(
    path: Path, what: str, header: list[str], body: list[list[str]], columns: Mapping[str, str]
) -> None:
    """Every column of `columns` in `header` of its kind in every row of `body`."""
    index = {name: header.index(name) for name in columns if name in header}
    for number, row in enumerate(body, 1):
        for name, column in index.items():
            value = row[column]
            if not check_value(value, columns[name]):
                raise UsageError(
                    f"{what} {path}, row {number}, column {name}: {value!r} is not "
                    f"{_KIND_WORDS[columns[name]]}"
                )


def check_results(path: Path, what: str, header: list[str], body: list[list[str]]) -> None:
    """A results file's rows as every reader of results must find them (the module docstring):
    one line naming the row and the column of the first that is not."""
    check_kinds(path, what, header, body, RESULT_COLUMNS)
    index = {name: i for i, name in enumerate(header)}
    for number, row in enumerate(body, 1):
        for prefix in CI_PREFIXES:
            _check_ci(path, what, number, row, index, prefix)
    check_row_keys(path, what, header, body)


def check_row_keys(path: Path, what: str, header: list[str], body: list[list[str]]) -> None:
    """The results files' rules on whole rows (files.results): one cache mode, and each
    spec_hash once per host."""
    index = {name: i for i, name in enumerate(header)}
    place = f"{what} {path}"
    if "cache_mode" in index:
        check_one_cache_mode((place, row[index["cache_mode"]]) for row in body)
    if "spec_hash" in index:
        host = index.get("host")
        check_one_row_per_host(
            (row[index["spec_hash"]], row[host] if host is not None else "", Place(place, number))
            for number, row in enumerate(body, 1)
        )


def _check_ci(path: Path, what: str, number: int, row: list[str], index: dict[str, int],
              prefix: str) -> None:
    names = [f"{prefix}_{k}_ms" for k in ("ci_low", "median", "ci_high")]
    if not all(name in index for name in names):
        return
    try:
        low, median, high = (parse_number(row[index[name]]) for name in names)
    except ValueError:  # empty: not measured (eager, GPU); text in `latency_*` is refused above
        return
    if low > median:
        raise UsageError(f"{what} {path}, row {number}, column {names[0]}: {low:g} is above the "
                         f"median {median:g} (the CI must hold the median)")
    if high < median:
        raise UsageError(f"{what} {path}, row {number}, column {names[2]}: {high:g} is below the "
                         f"median {median:g} (the CI must hold the median)")


def read_table(
    path: Path | str,
    what: str,
    columns: Mapping[str, str],
    as_text: bool = False,
    hint: str = "",
    error: type[UsageError] = UsageError,
    results: bool = False,
) -> pd.DataFrame:
    """The CSV at `path`, every column of `columns` present and of its kind in every row.

    `as_text`: every cell stays a string (a CSV reader guessing types would turn "1.20" into 1.2);
    otherwise pandas infers the types of the validated text. `hint` follows a missing-column
    message (what the file should have been written by). `results`: the file is a results file,
    held to `check_results` too. Every refusal is `error`, a UsageError.
    """
    try:
        return _read_table(path, what, columns, as_text, hint, results)
    except UsageError as exc:
        if isinstance(exc, error):
            raise
        raise error(str(exc)) from None


def _read_table(
    path: Path | str, what: str, columns: Mapping[str, str], as_text: bool, hint: str,
    results: bool,
) -> pd.DataFrame:
    path = input_file(path, what)
    text = read_text(path, what)
    if path.suffix.lower() == ".json":
        text = _json_records_as_csv(text, path, what)
    header, body = csv_rows(text, path, what)
    missing = [c for c in columns if c not in header]
    if missing:
        raise UsageError(f"{what} {path} lacks the column(s) {', '.join(missing)}{hint}")
    if not body:
        raise UsageError(f"{what} {path} has no rows")
    check_kinds(path, what, header, body, columns)
    if results:
        check_results(path, what, header, body)
    if as_text:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    return pd.read_csv(io.StringIO(text))
