"""The frame beside the records: one row per `Record` with the CSV's columns, and the ratio
columns against a baseline row. The API returns it, the gate decides on it, report/ renders it.

One ratio rule: `latency_ratio_x` is a ratio of the headline latency (`headline_column`: the
fastest call, or the median for rows that have none), named in `latency_ratio_estimator`, with the
interval `measure.stats.ratio_interval` gives.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from mnv2prof.errors import UsageError
from mnv2prof.run.records import Record


def headline_column(frame: pd.DataFrame) -> str:
    """The latency the contrast is told in: the fastest call (`latency_min_ms`), or the median
    for rows that have no minima (a CSV from before them)."""
    if "latency_min_ms" in frame and frame["latency_min_ms"].notna().all():
        return "latency_min_ms"
    return "latency_median_ms"


def records_frame(records: Sequence[Record], baseline: str | None = None) -> pd.DataFrame:
    """One row per record; with `baseline` (a row's label, or a variant name) adds
    `macs_ratio_x` and `latency_ratio_x`, multiples of the baseline row's, the latter a ratio of
    minima (`add_ratios`) with its interval (`latency_ratio_ci_low_x`, `_high_x`)."""
    frame = pd.DataFrame([r.row() for r in records])
    if baseline is not None and not frame.empty:
        index = baseline_index(records, baseline)
        add_ratios(frame, frame.iloc[index], index)
    return frame


RATIO_ESTIMATORS = {  # latency_ratio_estimator -> (the latency column, its relative spread)
    "min": ("latency_min_ms", "latency_min_spread_rel"),  # the fastest calls (docs/latency.md)
    "median": ("latency_median_ms", "latency_ci_rel"),  # rows without minima (older CSVs)
}


def add_ratios(frame: pd.DataFrame, base_row, index: int | None = None) -> None:
    """Insert the ratio columns after `gmacs_per_s`, in place: MACs, and latency as the ratio of
    minima (of medians for rows that have none) with the interval `stats.ratio_interval` gives;
    the baseline's own row is exactly 1."""
    from mnv2prof.measure.stats import ratio_interval

    estimator = "min" if headline_column(frame) == "latency_min_ms" else "median"
    column, spread = RATIO_ESTIMATORS[estimator]
    position = frame.columns.get_loc("gmacs_per_s") + 1
    ratio = frame[column] / base_row[column]
    bounds = [ratio_interval(r, s, base_row[spread])
              for r, s in zip(ratio, frame[spread], strict=True)]
    low = pd.Series([b[0] for b in bounds], index=frame.index)
    high = pd.Series([b[1] for b in bounds], index=frame.index)
    if index is not None:  # a row against itself
        low.iloc[index] = high.iloc[index] = 1.0
    frame.insert(position, "macs_ratio_x", (frame["macs"] / base_row["macs"]).round(4))
    frame.insert(position + 1, "latency_ratio_x", ratio.round(4))
    frame.insert(position + 2, "latency_ratio_ci_low_x", low.round(4))
    frame.insert(position + 3, "latency_ratio_ci_high_x", high.round(4))
    frame.insert(position + 4, "latency_ratio_estimator", estimator)


def baseline_index(records: Sequence[Record], baseline: str) -> int:
    """The row `baseline` names: a label (mbv2-streamed/k2) or a variant's first row."""
    for key in ("label", "variant"):
        for i, record in enumerate(records):
            if getattr(record, key) == baseline:
                return i
    labels = ", ".join(r.label for r in records)
    raise UsageError(f"--baseline {baseline!r} is not among the rows ({labels})")


def add_roofline(frame: pd.DataFrame, machine) -> pd.DataFrame:
    """`roofline_bound_ms` and `roofline_efficiency_x` after `gmacs_per_s`, from `machine` (a
    measure.roofline.MachineCeilings, run.machine_file.load_machine's); `frame` itself,
    unchanged, when `machine` is None."""
    if machine is None or frame.empty:
        return frame
    frame = frame.copy()
    bound = [machine.bound_ms(f, b) for f, b in zip(frame["flops"], frame["bytes_moved"])]
    position = frame.columns.get_loc("gmacs_per_s") + 1
    # bounds of a few us and efficiencies of 0.001 keep 4+ significant digits in the CSV
    frame.insert(position, "roofline_bound_ms", pd.Series(bound, index=frame.index).round(9))
    frame.insert(
        position + 1,
        "roofline_efficiency_x",
        (pd.Series(bound, index=frame.index) / frame["latency_median_ms"]).round(6),
    )
    return frame
