"""Result CSV -> figures (matplotlib, Agg backend: no display needed).

- `macs-latency`: MACs against median latency, log-log, one labelled point per row with its IQR
  as an error bar. If MACs predicted latency the points would lie on one line of slope 1.
- `sweep`: latency and MACs against a swept column (e.g. `exp_ratio`), each normalised to its
  value at the first swept value, one colour per variant (solid: latency, dashed: MACs). Where
  the two curves of a variant part, MACs mislead about what the change costs.
- `roofline`: arithmetic intensity (FLOP/B) against achieved GFLOP/s, log-log, under the
  machine's roofline min(peak, bandwidth x intensity) from `mnv2prof calibrate`. A point's
  distance below the roof is its roofline efficiency.
"""

from __future__ import annotations

import io

import pandas as pd

from mnv2prof.errors import UsageError
from mnv2prof.report.paper import HOST_COLUMN, hosts, varying_keys

KINDS = ("macs-latency", "sweep", "roofline")
FILE_TYPES = (".png", ".pdf", ".svg")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


MARKERS = "osD^v<>ph*"


def _row_label(row: pd.Series, keys: list[str]) -> str:
    """The varying spec values (the colour and legend give the variant, the marker the host),
    or the variant alone."""
    return " ".join(f"{k}={row[k]}" for k in keys if k != HOST_COLUMN) or str(row["variant"])


def _series(frame: pd.DataFrame):
    """(legend label, colour index, marker, rows) per variant, and per host within a variant
    when several hosts measured the rows (each host its own marker: never one series)."""
    names = hosts(frame)
    variants = list(dict.fromkeys(frame["variant"]))
    for i, variant in enumerate(variants):
        rows = frame[frame["variant"] == variant]
        if len(names) <= 1:
            yield variant, i, "o", rows
            continue
        for j, host in enumerate(names):
            mine = rows[rows[HOST_COLUMN].astype(str) == host]
            if len(mine):
                yield f"{variant} @ {host}", i, MARKERS[j % len(MARKERS)], mine


def macs_latency_figure(frame: pd.DataFrame):
    plt = _pyplot()
    keys = varying_keys(frame)
    fig, ax = plt.subplots(figsize=(7.5, 5.5), layout="constrained")
    colours = plt.get_cmap("tab10")
    for label, i, marker, rows in _series(frame):
        has_quartiles = {"latency_q1_ms", "latency_q3_ms"} <= set(rows.columns)
        yerr = (
            [rows["latency_median_ms"] - rows["latency_q1_ms"],
             rows["latency_q3_ms"] - rows["latency_median_ms"]]
            if has_quartiles else None
        )
        ax.errorbar(rows["macs"] / 1e6, rows["latency_median_ms"], yerr=yerr, fmt=marker,
                    color=colours(i % 10), label=label, capsize=2, markersize=5)
    labelled = len(frame) <= 40  # beyond that the labels hide the points; the legend remains
    if labelled:
        for _, row in frame.iterrows():
            ax.annotate(_row_label(row, keys), (row["macs"] / 1e6, row["latency_median_ms"]),
                        textcoords="offset points", xytext=(4, 3), fontsize=6.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("MACs (M, 1 MAC = 1 multiply-accumulate)")
    ax.set_ylabel("latency, median (ms); bars: IQR")
    ax.set_title("Indirect cost (MACs) against direct cost (latency)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def sweep_figure(frame: pd.DataFrame, x: str | None):
    keys = varying_keys(frame)
    swept = [k for k in keys if k != HOST_COLUMN]  # hosts are series, never the x axis
    if x is None:
        if len(swept) != 1:
            raise UsageError(
                f"--x is needed: the rows vary in {', '.join(swept) or 'no column'}; "
                "give the swept one, e.g. --x exp_ratio"
            )
        x = swept[0]
    if x not in frame.columns:
        raise UsageError(f"--x {x!r}: no such column; varying columns: {', '.join(keys)}")
    plt = _pyplot()
    others = [k for k in keys if k != x]
    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    colours = plt.get_cmap("tab10")
    groups = list(frame.groupby(["variant", *others], sort=False))
    for i, (group, rows) in enumerate(groups):
        group = group if isinstance(group, tuple) else (group,)
        rows = rows.sort_values(x)
        name = " ".join([str(group[0]), *(f"{k}={v}" for k, v in zip(others, group[1:]))])
        first = rows.iloc[0]
        colour = colours(i % 10)
        ax.plot(rows[x], rows["latency_median_ms"] / first["latency_median_ms"], "o-",
                color=colour, label=f"{name}: latency")
        ax.plot(rows[x], rows["macs"] / first["macs"], "s--", color=colour, alpha=0.7,
                label=f"{name}: MACs")
    ax.set_xlabel(x)
    ax.set_ylabel(f"relative to {x} = {frame[x].min()} (x)")
    ax.set_title(f"Latency (solid) and MACs (dashed) as {x} grows")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(groups) > 4 else 1)
    return fig


def roofline_figure(frame: pd.DataFrame, machine):
    """`machine`: a roofline.MachineCeilings (peak GFLOP/s and bandwidth GB/s)."""
    import numpy as np

    plt = _pyplot()
    keys = varying_keys(frame)
    intensity = frame["flops"] / frame["bytes_moved"]
    achieved = frame["flops"] / (frame["latency_median_ms"] * 1e-3) / 1e9
    fig, ax = plt.subplots(figsize=(7.5, 5.5), layout="constrained")
    low = min(intensity.min(), machine.ridge_flop_per_byte) / 4
    high = max(intensity.max(), machine.ridge_flop_per_byte) * 4
    span = np.geomspace(low, high, 200)
    ax.plot(span, np.minimum(machine.peak_gflops, machine.bandwidth_gbs * span), "k-",
            label=f"roofline: {machine.peak_gflops:,.0f} GFLOP/s, "
                  f"{machine.bandwidth_gbs:,.1f} GB/s")
    ax.plot(span, np.minimum(machine.peak_gflops, machine.dram_gbs * span), "k:", alpha=0.6,
            label=f"from memory: {machine.dram_gbs:,.1f} GB/s")
    colours = plt.get_cmap("tab10")
    for label, i, marker, rows in _series(frame):
        ax.plot(intensity[rows.index], achieved[rows.index], marker, color=colours(i % 10),
                label=label)
    if len(frame) <= 40:
        for (_, row), xi, yi in zip(frame.iterrows(), intensity, achieved):
            if keys:
                ax.annotate(_row_label(row, keys), (xi, yi), textcoords="offset points",
                            xytext=(4, 3), fontsize=6.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per byte moved; FLOPs = 2 x MACs)")
    ax.set_ylabel("achieved GFLOP/s (FLOPs / latency median)")
    ax.set_title(f"Roofline, {machine.cpu_model}, {machine.threads} thread(s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def plot(
    frame: pd.DataFrame, suffix: str, kind: str = "macs-latency", x: str | None = None,
    machine=None,
) -> bytes:
    """Draw `kind` from the result rows: the figure's file content in the format `suffix` names
    (.png, .pdf, .svg); `roofline` needs `machine` (roofline.MachineCeilings)."""
    if kind not in KINDS:
        raise UsageError(f"--kind {kind!r}: choose from {', '.join(KINDS)}")
    if suffix.lower() not in FILE_TYPES:
        raise UsageError(f"--out: give a file ending in {', '.join(FILE_TYPES)}")
    if kind == "roofline":
        fig = roofline_figure(frame, machine)
    else:
        fig = macs_latency_figure(frame) if kind == "macs-latency" else sweep_figure(frame, x)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=suffix.lower().lstrip("."), dpi=150)
    finally:
        _pyplot().close(fig)
    return buffer.getvalue()
