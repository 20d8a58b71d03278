"""Baseline rows edited as a measurement would have written them: every statistic restated from
the samples (a baseline's rows must agree with their samples, stored_rows.check_consistent)."""

import numpy as np
import pandas as pd

from mnv2prof.measure.stats import summarize


def restated(rows: pd.DataFrame, number: int, samples, mins) -> pd.DataFrame:
    """`rows` (text cells) with row `number`'s samples and rounds' fastest calls replaced, and
    every statistic the row stores recomputed from them, rounded as `Record.row()` rounds."""
    rows = rows.copy()
    samples = np.round(np.asarray(samples, dtype=float), 5)
    summary = summarize(samples)
    rows.loc[number, ["latency_samples_ms", "latency_mins_ms", "latency_min_ms", "latency_n"]] = [
        " ".join(f"{v:.5f}" for v in samples), " ".join(f"{v:.6f}" for v in mins),
        f"{min(mins):.6f}", str(len(samples))]
    for key in ("median", "q1", "q3", "iqr", "p95", "ci_low", "ci_high"):
        value = getattr(summary, key)
        rows.loc[number, f"latency_{key}_ms"] = "" if np.isnan(value) else f"{value:.6f}"
    gmacs = int(rows.loc[number, "macs"]) / summary.median / 1e6
    rows.loc[number, "gmacs_per_s"] = str(round(gmacs, 4))
    return rows


def slower(rows: pd.DataFrame, factor: float) -> pd.DataFrame:
    """`rows` as if every call had taken `factor` times as long."""
    for number, row in rows.iterrows():
        rows = restated(rows, number, [float(v) * factor for v in row["latency_samples_ms"].split()],
                        [float(v) * factor for v in row["latency_mins_ms"].split()])
    return rows
