"""The fastest call this machine has given for each row, kept in the export cache: a run spent
wholly in the machine's slow state is told, since nothing inside the run can tell.

The 2-core development machine switches between two speeds for seconds at a time. A run that
sees a moment of the fast one reads the same fastest calls as every other (12 runs: within
0.7%); one that spends all its rounds in the slow one reads every row high and each one alike
within the run, so its spreads stay small and no row is flagged: in one of ten runs, conv's
fastest call read 6% above the others', mbv2's 20% and shufflev2's 27%, and the ratios moved
with them. So `record_fastest` compares each row's fastest call with the best this machine has
given for the same row (spec_hash, cache mode, CPU, onnxruntime version) and returns a
`SlowState` when most rows are well above it (report.notes words it); the numbers themselves
are never changed.

The history file is the tool's own (files.cache_json): one that cannot be read is set aside and
started anew, never a failure of the run that has just measured.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mnv2prof.files.cache_json import Unreadable, read_cache_json, set_aside

SLOW_REL = 0.03  # a row this far above its best is slow
HISTORY_FILE = "fastest_calls.json"


@dataclass(frozen=True)
class SlowState:
    """Most rows (at least 2) of a run read above the best this machine has given for them."""

    slow: int  # rows more than SLOW_REL above their best
    known: int  # rows that had a best on record
    low_rel: float  # the least excess among the slow rows, a fraction of the best (0.06: 6%)
    high_rel: float  # the greatest
    rows: int = 0  # rows in the run, known or not


def _key(row: dict) -> str:
    return "|".join(str(row.get(k, "")) for k in
                    ("spec_hash", "cache_mode", "env_cpu_model", "env_onnxruntime"))


def history_path() -> Path:
    """Where the history lives: under the cache root (files.cache.cache_dir)."""
    from mnv2prof.files.cache import cache_dir

    return cache_dir() / "history" / HISTORY_FILE


def _positive(value: object) -> bool:
    """A latency worth comparing with: a finite number above 0 (not a bool)."""
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def read_history(path: Path) -> dict[str, object]:
    """The best fastest call by row key; empty when there is none yet, or when the file is not
    a JSON object as this module writes it (it is then set aside)."""
    try:
        best = read_cache_json(path)
        if best is not None and not isinstance(best, dict):
            raise Unreadable(f"a JSON {type(best).__name__}, not an object")
    except Unreadable:
        set_aside(path)
        return {}
    return best or {}


def record_fastest(frame: pd.DataFrame, path: Path | None = None) -> SlowState | None:
    """Record each row's fastest call as its best if it is; a `SlowState` when most rows (at
    least 2) read more than SLOW_REL above the best this machine has given for them, else None.
    Never raises for the history file: one that cannot be read or kept costs this check only."""
    if "latency_min_ms" not in frame or frame.empty:
        return None
    path = path or history_path()
    best = read_history(path)
    slow, known = [], 0
    for row in frame.to_dict("records"):
        value = row.get("latency_min_ms")
        if not _positive(value):
            continue
        key = _key(row)
        previous = best.get(key)
        if _positive(previous):
            known += 1
            if value > previous * (1 + SLOW_REL):
                slow.append(value / previous - 1)
        if not _positive(previous) or value < previous:
            best[key] = value
    _keep(path, best)
    if known >= 2 and len(slow) * 2 > known:
        return SlowState(len(slow), known, min(slow), max(slow), len(frame))
    return None


def _keep(path: Path, best: dict[str, object]) -> None:
    try:
        from mnv2prof.files.atomic import write_atomic

        if os.path.lexists(path.parent) and not path.parent.is_dir():
            set_aside(path.parent)  # the history folder replaced by a file: start it anew
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(best, indent=0) + "\n")
    except Exception:  # a history that cannot be kept costs the check next time, nothing more
        pass
