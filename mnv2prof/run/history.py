"""The fastest call this machine has given for each row, kept in the export cache: a run spent
wholly in the machine's slow state is said, since nothing inside the run can tell.

The 2-core development machine switches between two speeds for seconds at a time. A run that
sees a moment of the fast one reads the same fastest calls as every other (12 runs: within
0.7%); one that spends all its rounds in the slow one reads every row high and each one alike
within the run, so its spreads stay small and no row is flagged: in one of ten runs, conv's
fastest call read 6% above the others', mbv2's 20% and shufflev2's 27%, and the ratios moved
with them. So `slow_state_note` compares each row's fastest call with the best this machine has
given for the same row (spec_hash, cache mode, CPU, onnxruntime version) and says so when most
rows are well above it; the numbers themselves are never changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

SLOW_REL = 0.03  # a row this far above its best is slow
HISTORY_FILE = "fastest_calls.json"


def _key(row: dict) -> str:
    return "|".join(str(row.get(k, "")) for k in
                    ("spec_hash", "cache_mode", "env_cpu_model", "env_onnxruntime"))


def _store() -> Path:
    from mnv2prof.files.cache import cache_dir

    return cache_dir() / "history" / HISTORY_FILE


def slow_state_note(frame: pd.DataFrame, path: Path | None = None) -> str | None:
    """Record each row's fastest call as its best if it is; return a note when most rows (at
    least 2) read more than SLOW_REL above the best this machine has given for them."""
    if "latency_min_ms" not in frame or frame.empty:
        return None
    path = path or _store()
    try:
        best = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(best, dict):
            best = {}
    except (OSError, ValueError):
        best = {}
    slow, known = [], 0
    for row in frame.to_dict("records"):
        value = row.get("latency_min_ms")
        if value is None or not value > 0:
            continue
        key = _key(row)
        previous = best.get(key)
        if isinstance(previous, (int, float)) and previous > 0:
            known += 1
            if value > previous * (1 + SLOW_REL):
                slow.append(value / previous - 1)
        if not isinstance(previous, (int, float)) or value < previous:
            best[key] = value
    try:
        from mnv2prof.files.atomic import write_atomic

        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(best, indent=0) + "\n")
    except Exception:  # a history that cannot be kept costs this note next time, nothing more
        pass
    if known >= 2 and len(slow) * 2 > known:
        return (f"! {len(slow)} of {known} rows read {100 * min(slow):.0f}-{100 * max(slow):.0f}% "
                "above the fastest calls this machine has given for them: the machine was in a "
                "slow state for the whole run (ratios of memory-bound blocks move most); run "
                "again.")
    return None
