"""The rules every results file keeps (a sweep journal, a `compare --csv`, a merged file, a
baseline), each decided here once, for every reader (files.readers, sweeps.merge, sweeps.sweep,
baseline, gate):

- **one row per key per host** (`check_one_row_per_host`): a row is keyed by its spec_hash (a
  gate matches by `row_key`), and the same key measured on two hosts is two measurements, while
  the same key twice on one host is one row written twice;
- **one cache mode** (`check_one_cache_mode`): warm and cold timings are never mixed, in a file
  or in a comparison;
- **row keys** (`row_key`, `grid_point`, `target_suffix`): what a row is matched by;
- **number syntax** (`parse_number`): ASCII digits as the tool writes them. Python's `float`
  also reads `1_0` and Arabic-Indic digits, which pandas then leaves as text.

Nothing here reads a file: the callers give the cells, and every refusal is one line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mnv2prof.errors import UsageError

MATCH_BY = ("variant", "spec")  # row keys: the variant (compare flags), or spec and threads
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_SPECIAL = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}


def parse_number(text: str) -> float:
    """The number `text` holds as the tool writes numbers (ASCII digits, an optional sign, point
    and exponent; nan, inf), or a `ValueError`: `1_0`, `١٢` and `1 0` are not numbers here."""
    stripped = str(text).strip()
    if _NUMBER.fullmatch(stripped):
        return float(stripped)
    if stripped.lower() in _SPECIAL:
        return _SPECIAL[stripped.lower()]
    raise ValueError(f"not a number: {text!r}")


def parse_integer(text: str) -> int:
    """A whole number as the tool writes it (ASCII digits, an optional sign), or `ValueError`."""
    stripped = str(text).strip()
    if not re.fullmatch(r"[+-]?\d+", stripped, re.ASCII):
        raise ValueError(f"not a whole number: {text!r}")
    return int(stripped)


# --- row keys ----------------------------------------------------------------------------------


def target_suffix(row: Mapping) -> str:
    """" int8 executorch" for a row not in fp32 on onnxruntime, else "" (rows written before
    precisions and runtimes existed are fp32 onnxruntime)."""
    precision = str(row.get("precision") or "fp32")
    runtime = str(row.get("runtime") or "onnxruntime")
    return "" if (precision, runtime) == ("fp32", "onnxruntime") else f" {precision} {runtime}"


def row_key(row: Mapping, match_by: str = "variant") -> str:
    """What a row is matched to a baseline by: its variant, or its spec and threads (and its
    precision and runtime when they are not fp32 onnxruntime)."""
    if match_by == "spec":
        return f"{row['spec']} threads={row['threads']}{target_suffix(row)}"
    if match_by != "variant":
        raise ValueError(f"match_by must be one of {MATCH_BY}, got {match_by!r}")
    return f"{row['variant']}{target_suffix(row)}"


def grid_point(row: Mapping) -> str:
    """The grid point of a profile row: its spec apart from the variant, and its threads.

    The compact spec is ``variant_c.._r..`` (a model's ``NAME_1x3x224x224``); the variant is cut
    off by its length, since a user's NAME may hold underscores.
    """
    spec, variant = str(row["spec"]), str(row["variant"])
    rest = spec[len(variant) + 1:] if spec.startswith(variant + "_") else spec.split("_", 1)[-1]
    return f"{rest} threads={row['threads']}{target_suffix(row)}"


# --- one row per key per host ------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where a row is: the file (as the message names it) and its row number, from 1."""

    file: str
    row: int


def check_one_row_per_host(
    rows: Iterable[tuple[str, str, Place]],
    label: str = "spec_hash",
    once: str = "in a results file",
    error: type[UsageError] = UsageError,
) -> None:
    """(key, host, place) of every row, in order: a key is in the rows once per host (host ""
    when the rows have none), or `error` names the key, the host and both places. `label`: what
    the key is; `once`: where it is once ("merged", for the rows of several files)."""
    first: dict[tuple[str, str], Place] = {}
    for key, host, place in rows:
        seen = first.setdefault((key, host), place)
        if seen is place:
            continue
        on_host = f" on host {host}" if host else ""
        if seen.file == place.file:
            where = f"{place.file}: {label} {key}{on_host} is twice (rows {seen.row} and {place.row})"
        else:
            where = (f"{label} {key}{on_host} is in {seen.file} (row {seen.row}) and {place.file} "
                     f"(row {place.row})")
        raise error(f"{where}: a row is {once} once")


# --- one cache mode ----------------------------------------------------------------------------


def _mode(mode: str) -> str:
    return mode or "none (an older harness)"


def check_one_cache_mode(
    timed: Iterable[tuple[str, str]],
    then: tuple[str, str] | None = None,
    fix: str = "",
    error: type[UsageError] = UsageError,
) -> str | None:
    """(place, cache mode) of every row or file, in order, and `then`: (who, mode) of the
    measurement about to join them ("this sweep", "this run"). One mode for all, returned
    (None for no rows), or `error` names the first two that differ; `fix` ends the line."""
    first: tuple[str, str] | None = None
    for place, mode in timed:
        if first is None:
            first = (place, mode)
        elif mode != first[1]:
            if place == first[0]:
                raise error(f"{place} mixes cache modes ({_mode(first[1])} and {_mode(mode)}): "
                            f"cache modes are never mixed in one file{fix}")
            raise error(f"{first[0]} was timed with cache mode {_mode(first[1])} and {place} "
                        f"with {_mode(mode)}: cache modes are never mixed in one file{fix}")
    if first is not None and then is not None and then[1] != first[1]:
        raise error(f"{first[0]} was timed with cache mode {_mode(first[1])} and {then[0]} "
                    f"with {_mode(then[1])}: cache modes are never mixed{fix}")
    return first[1] if first is not None else None
