"""Result CSV -> figures (matplotlib, Agg backend: no display needed).

- `macs-latency`: MACs against the headline latency (the fastest call, its spread as an error
  bar; the median and its CI for a CSV without fastest calls), log-log, every point named by a
  label that overlaps nothing and stays inside the axes (labels.py: offsets with leader lines,
  else a number listed beside the axes), on dashed diagonals of constant GMAC/s: if MACs
  predicted latency the points would lie on one diagonal; a point below its peers' runs faster
  than its MACs say. `families` colours the points by family (mbv2-*: mbv2) with a legend.
- `ratio`: latency ratio against MACs ratio to a baseline row (conv, else the first), log-log,
  with the ratio's interval; on the diagonal y = x MACs predict the latency exactly.
- `sweep`: latency and MACs against a swept column (e.g. `exp_ratio`), each normalised to its
  value at the first swept value, one colour per variant (solid: latency, dashed: MACs). Where
  the two curves of a variant part, MACs mislead about what the change costs.
- `roofline`: arithmetic intensity (FLOP/B) against achieved GFLOP/s, log-log, under the
  machine's roofline min(peak, bandwidth x intensity) from `mnv2prof calibrate`. A point's
  distance below the roof is its roofline efficiency.
"""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pandas as pd

from mnv2prof.errors import UsageError
from mnv2prof.report.paper import HOST_COLUMN, hosts, varying_keys
from mnv2prof.run.frame import headline_column

KINDS = ("macs-latency", "ratio", "sweep", "roofline")
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


FIG_SIZE = (7.5, 5.5)
MARGINS = {"left": 0.12, "right": 0.97, "bottom": 0.1, "top": 0.9}
LIST_RIGHT = 0.72  # the axes' right edge when labels are numbered and listed beside them
PAD_DECADES = 0.3  # room around the points on log axes, for their labels
MAX_LABELLED = 40  # past this many points the labels would hide them; the legend remains


def headline(frame: pd.DataFrame) -> tuple[pd.Series, list[pd.Series] | None, str]:
    """The latency every view leads with, its error bars (below, above) and the axis label: the
    fastest call ± its spread, or for a CSV without fastest calls the median and its 95% CI
    (else its IQR)."""
    if {"latency_min_ms", "latency_min_spread_rel"} <= set(frame.columns) \
            and frame["latency_min_ms"].notna().all():
        value = frame["latency_min_ms"]
        half = (value * frame["latency_min_spread_rel"]).where(
            np.isfinite(frame["latency_min_spread_rel"]), 0.0)
        return value, [half.clip(upper=value * 0.999), half], \
            "latency, fastest call (ms); bars: ± its spread"
    value = frame["latency_median_ms"]
    low, high, what = "latency_ci_low_ms", "latency_ci_high_ms", "95% CI of the median"
    if not {low, high} <= set(frame.columns):
        low, high, what = "latency_q1_ms", "latency_q3_ms", "IQR"
    if not {low, high} <= set(frame.columns):
        return value, None, "latency, median (ms)"
    return value, [value - frame[low], frame[high] - value], f"latency, median (ms); bars: {what}"


def family(variant: str) -> str:
    """A variant's family: its name up to the first '-' or '_' (mbv2-noskip, mbv2-streamed:
    mbv2; uib_ib, uib_convnext: uib)."""
    return re.split(r"[-_]", str(variant), maxsplit=1)[0]


def _styles(frame: pd.DataFrame, families: bool):
    """(colour per row, marker per row, legend entries (name, colour, marker)): one colour per
    family with `families`, else per variant when a variant has several rows (a sweep), else
    one colour (each point is labelled with its name); one marker per host when several hosts
    measured the rows, each in the legend."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    groups = frame["variant"].map(family) if families else frame["variant"].astype(str)
    names = hosts(frame)
    entries: list[tuple[str, object, str]] = []
    if not families and groups.is_unique:
        colours = ["tab:blue"] * len(frame)
    else:
        order = list(dict.fromkeys(groups))
        colour = {name: cmap(i % 10) for i, name in enumerate(order)}
        colours = [colour[g] for g in groups]
        entries += [(name, colour[name], "o") for name in order]
    markers = ["o"] * len(frame)
    if len(names) > 1:
        marker = {host: MARKERS[j % len(MARKERS)] for j, host in enumerate(names)}
        markers = [marker[h] for h in frame[HOST_COLUMN].astype(str)]
        entries += [(f"@ {host}", "0.4", marker[host]) for host in names]
    return colours, markers, entries


def _point_labels(frame: pd.DataFrame, families: bool, legend: bool) -> list[str]:
    """Each point's label: its variant (its row label), with the varying spec values when the
    colours already name the variant."""
    keys = [k for k in varying_keys(frame) if k != HOST_COLUMN]
    labels = []
    for _, row in frame.iterrows():
        spec = " ".join(f"{k}={row[k]}" for k in keys)
        name = str(row["variant"]) if families or not legend else ""
        labels.append(" ".join(p for p in (name, spec) if p) or str(row["variant"]))
    return labels


def _plain_log_axes(ax) -> None:
    """Log axes whose ticks read as numbers (0.02, 5), 1-2-5 values labelled."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    def text(value: float, _position=None) -> str:
        lead = round(value / 10 ** math.floor(math.log10(value))) if value > 0 else 0
        return f"{value:g}" if lead in (1, 2, 5) else ""

    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(text))
        axis.set_minor_formatter(FuncFormatter(lambda v, p: ""))


def _log_limits(values: pd.Series) -> tuple[float, float]:
    low, high = float(values[values > 0].min()), float(values.max())
    return low / 10**PAD_DECADES, high * 10**PAD_DECADES


def _scatter(fig, ax, frame, x, y, yerr, families: bool) -> None:
    """The points with their error bars, coloured (`_colours`), then their labels (`labels`),
    numbered and listed beside the axes where they do not fit."""
    from mnv2prof.report.labels import Point, place_labels

    colours, markers, entries = _styles(frame, families)
    for i in range(len(frame)):
        err = None if yerr is None else [[yerr[0].iloc[i]], [yerr[1].iloc[i]]]
        ax.errorbar([x.iloc[i]], [y.iloc[i]], yerr=err, fmt=markers[i], color=colours[i],
                    capsize=2, markersize=4.5, elinewidth=0.8)
    _plain_log_axes(ax)
    ax.set_xlim(*_log_limits(x))
    ax.set_ylim(*_log_limits(pd.concat([y, y + (0 if yerr is None else yerr[1])])))
    reserved = []
    if entries:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], marker=m, ls="", color=c, label=n) for n, c, m in entries]
        fig.canvas.draw()
        legend = ax.legend(handles=handles, fontsize=7, loc="best")
        fig.canvas.draw()
        reserved.append(legend.get_window_extent(fig.canvas.get_renderer()))
    if len(frame) > MAX_LABELLED:
        return
    named = any(c != "0.4" for _, c, _ in entries)  # the colours name the variants
    points = [Point(xi, yi, t) for xi, yi, t in
              zip(x, y, _point_labels(frame, families, named), strict=True)]
    numbered = place_labels(ax, points, reserved)
    if numbered:  # again with room beside the axes for the list
        for text in list(ax.texts):
            text.remove()
        fig.subplots_adjust(right=LIST_RIGHT)
        if entries:
            fig.canvas.draw()
            reserved = [ax.get_legend().get_window_extent(fig.canvas.get_renderer())]
        numbered = place_labels(ax, points, reserved)
        listed = "\n".join(f"{n}  {t}" if n else f"-  {t}" for n, t in numbered)
        fig.text(LIST_RIGHT + 0.02, MARGINS["top"], listed, va="top", ha="left", fontsize=6.5)


def _iso_lines(fig, ax, label_unit: str, slope_of, throughputs: pd.Series) -> None:
    """Diagonals of constant throughput (y = x / g), at the 1-2-5 values g within a factor 3 of
    the points' own `throughputs` (the decades alone when that makes more than 4), each
    labelled where its label finds room."""
    from mnv2prof.report.labels import Point, place

    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    lowest = max(x0 / y1, float(throughputs.min()) / 3)
    highest = min(x1 / y0, float(throughputs.max()) * 3)
    values = [m * 10.0**e for e in range(math.floor(math.log10(lowest)),
                                         math.ceil(math.log10(highest)) + 1) for m in (1, 2, 5)]
    values = [g for g in values if lowest < g < highest]
    decades = [g for g in values if math.log10(g).is_integer()]
    if len(values) > 4 and len(decades) >= 2:  # the decades alone, so the lines stay few
        values = decades
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer).shrunk(0.995, 0.995)
    taken = [t.get_window_extent(renderer) for t in ax.texts]
    if ax.get_legend() is not None:
        taken.append(ax.get_legend().get_window_extent(renderer))
    for g in values:
        xs = np.geomspace(x0, x1, 50)
        ax.plot(xs, slope_of(xs, g), color="0.75", lw=0.7, ls="--", zorder=0)
        # the label on the line, three quarters along its visible part
        seen = xs[(slope_of(xs, g) >= y0) & (slope_of(xs, g) <= y1)]
        if len(seen):
            at = seen[int(0.75 * (len(seen) - 1))]
            label = place(ax, Point(at, float(slope_of(np.array([at]), g)[0]), ""),
                          f"{g:g} {label_unit}", taken, inside, renderer, 6.0)
            if label is not None:
                label.set_color("0.45")
                label.arrow_patch and label.arrow_patch.set_visible(False)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)


def _with_ratios(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """`frame` with compare's ratio columns, as `compare --csv` writes them, or made against
    conv (else the first row) of each grid point: of fastest calls with the interval
    `stats.ratio_interval` gives (of medians, without one, for a CSV without fastest calls);
    and the baseline's name."""
    from mnv2prof.measure.stats import ratio_interval

    if {"macs_ratio_x", "latency_ratio_x"} <= set(frame.columns):
        named = frame.loc[frame["latency_ratio_x"] == 1.0, "variant"]
        return frame, str(named.iloc[0]) if len(named) else "baseline"
    latency = headline_column(frame)
    spread = frame.get("latency_min_spread_rel", pd.Series(math.nan, index=frame.index))
    keys = [k for k in varying_keys(frame) if k not in ("variant", HOST_COLUMN)]
    frame = frame.assign(macs_ratio_x=math.nan, latency_ratio_x=math.nan,
                         latency_ratio_ci_low_x=math.nan, latency_ratio_ci_high_x=math.nan)
    names = []
    for _, rows in (frame.groupby(keys, sort=False) if keys else [((), frame)]):
        is_conv = rows["variant"] == "conv"
        base = rows.index[is_conv.argmax()] if is_conv.any() else rows.index[0]
        names.append(str(frame.loc[base, "variant"]))
        for i in rows.index:
            ratio = frame.loc[i, latency] / frame.loc[base, latency]
            low, high = ratio_interval(ratio, spread[i], spread[base])
            frame.loc[i, ["macs_ratio_x", "latency_ratio_x", "latency_ratio_ci_low_x",
                          "latency_ratio_ci_high_x"]] = [
                frame.loc[i, "macs"] / frame.loc[base, "macs"], ratio,
                1.0 if i == base else low, 1.0 if i == base else high]
    names = list(dict.fromkeys(names))
    return frame, names[0] if len(names) == 1 else "each grid point's " + "/".join(names)


def macs_latency_figure(frame: pd.DataFrame, families: bool = False):
    """MACs against the headline latency, log-log, its spread as error bars, each point named
    (`labels`), on diagonals of constant GMAC/s: a point below its peers' diagonal runs faster
    than its MACs say, one above slower."""
    plt = _pyplot()
    value, yerr, ylabel = headline(frame)
    fig, ax = plt.subplots(figsize=FIG_SIZE)
    fig.subplots_adjust(**MARGINS)
    _scatter(fig, ax, frame, frame["macs"] / 1e6, value, yerr, families)
    ax.set_xlabel("MACs (M, 1 MAC = 1 multiply-accumulate)")
    ax.set_ylabel(ylabel)
    ax.set_title("Indirect cost (MACs) against direct cost (latency);\n"
                 "dashed: constant throughput (GMAC/s)", fontsize=10)
    ax.grid(True, which="major", alpha=0.25)
    fig.canvas.draw()
    macs_m = frame["macs"] / 1e6
    _iso_lines(fig, ax, "GMAC/s", lambda xs, g: xs / g, macs_m / value)  # ms = M MACs / GMAC/s
    return fig


def ratio_figure(frame: pd.DataFrame, families: bool = False):
    """Latency ratio against MACs ratio to a baseline row (compare's `*_ratio_x` columns, else
    conv, else the first row, at each grid point), log-log; on the diagonal MACs predict the
    latency exactly, below it a row is faster than its MACs say."""
    plt = _pyplot()
    frame, base = _with_ratios(frame)
    macs_x, latency_x = frame["macs_ratio_x"], frame["latency_ratio_x"]
    yerr = [(latency_x - frame["latency_ratio_ci_low_x"]).fillna(0).clip(lower=0),
            (frame["latency_ratio_ci_high_x"] - latency_x).fillna(0).clip(lower=0)]
    fig, ax = plt.subplots(figsize=FIG_SIZE)
    fig.subplots_adjust(**MARGINS)
    _scatter(fig, ax, frame, macs_x, latency_x, yerr, families)
    ax.set_xlabel(f"MACs (x {base})")
    ax.set_ylabel(f"latency, fastest call (x {base}); bars: its interval")
    ax.set_title("Latency ratio against MACs ratio;\ndashed: as MACs would predict (y = x)",
                 fontsize=10)
    ax.grid(True, which="major", alpha=0.25)
    fig.canvas.draw()
    x0, x1 = ax.get_xlim()
    ax.plot([x0, x1], [x0, x1], color="0.6", lw=0.8, ls="--", zorder=0)
    ax.set_xlim(x0, x1)
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
    if not pd.api.types.is_numeric_dtype(frame[x]):
        numeric = [k for k in swept if pd.api.types.is_numeric_dtype(frame[k])]
        raise UsageError(f"--x {x!r} holds names, not numbers: a sweep's x axis is a swept "
                         f"number ({', '.join(numeric) or 'none varies here'})")
    plt = _pyplot()
    latency = headline_column(frame)
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
        ax.plot(rows[x], rows[latency] / first[latency], "o-",
                color=colour, label=f"{name}: latency")
        ax.plot(rows[x], rows["macs"] / first["macs"], "s--", color=colour, alpha=0.7,
                label=f"{name}: MACs")
    ax.set_xlabel(x)
    ax.set_ylabel(f"relative to {x} = {frame[x].min()} (x)")
    what = "fastest call" if latency == "latency_min_ms" else "median"
    ax.set_title(f"Latency ({what}, solid) and MACs (dashed) as {x} grows")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(groups) > 4 else 1)
    return fig


def roofline_figure(frame: pd.DataFrame, machine):
    """`machine`: a roofline.MachineCeilings (peak GFLOP/s and bandwidth GB/s). Achieved
    GFLOP/s are of the median, as the roofline efficiency of `compare` is (the axis says so);
    the points are labelled as in `macs_latency_figure`."""
    from mnv2prof.report.labels import Point, place_labels

    plt = _pyplot()
    keys = varying_keys(frame)
    intensity = frame["flops"] / frame["bytes_moved"]
    achieved = frame["flops"] / (frame["latency_median_ms"] * 1e-3) / 1e9
    fig, ax = plt.subplots(figsize=FIG_SIZE)
    fig.subplots_adjust(**MARGINS)
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
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per byte moved; FLOPs = 2 x MACs)")
    ax.set_ylabel("achieved GFLOP/s (FLOPs / latency median)")
    ax.set_title(f"Roofline, {machine.cpu_model}, {machine.threads} thread(s)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    legend = ax.legend(fontsize=7, loc="lower right")
    if keys and len(frame) <= MAX_LABELLED:
        fig.canvas.draw()
        points = [Point(xi, yi, _row_label(row, keys))
                  for (_, row), xi, yi in zip(frame.iterrows(), intensity, achieved)]
        numbered = place_labels(ax, points, [legend.get_window_extent()])
        listed = "; ".join(f"{n}: {t}" for n, t in numbered)
        if listed:
            fig.text(0.01, 0.005, listed, fontsize=6, va="bottom", wrap=True)
    return fig


def figure(frame: pd.DataFrame, kind: str = "macs-latency", x: str | None = None,
           machine=None, families: bool = False):
    """The matplotlib figure of `kind` (`KINDS`); `roofline` needs `machine`
    (roofline.MachineCeilings); `families` colours macs-latency and ratio by `family`."""
    if kind not in KINDS:
        raise UsageError(f"--kind {kind!r}: choose from {', '.join(KINDS)}")
    if kind == "roofline":
        return roofline_figure(frame, machine)
    if kind == "sweep":
        return sweep_figure(frame, x)
    return (ratio_figure if kind == "ratio" else macs_latency_figure)(frame, families)


def plot(
    frame: pd.DataFrame, suffix: str, kind: str = "macs-latency", x: str | None = None,
    machine=None, families: bool = False,
) -> bytes:
    """Draw `kind` from the result rows: the figure's file content in the format `suffix` names
    (.png, .pdf, .svg); see `figure`."""
    if kind not in KINDS:
        raise UsageError(f"--kind {kind!r}: choose from {', '.join(KINDS)}")
    if suffix.lower() not in FILE_TYPES:
        raise UsageError(f"--out: give a file ending in {', '.join(FILE_TYPES)}")
    fig = figure(frame, kind, x, machine, families)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=suffix.lower().lstrip("."), dpi=150)
    finally:
        _pyplot().close(fig)
    return buffer.getvalue()
