"""Network profiles and the memory table -> pandas frames (CSV, units in column names) and rich
tables in the paper's shape (Table 2's rows with measured columns; Table 3 beside ours)."""

from __future__ import annotations

import math

import pandas as pd
from rich.table import Table

from mnv2prof.report.views import DEFAULT, Column, view_table
from mnv2prof.run.memory_table import PAPER_MAX_KB
from mnv2prof.run.network_profile import NetworkProfile


def _dash(value: object) -> object:
    return "-" if value is None else value


def stage_frame(profile: NetworkProfile) -> pd.DataFrame:
    """One row per table row (stage), then a `total` row for the whole network."""
    rows = []
    for cost in profile.stages:
        st = cost.stage
        rows.append(
            {
                "stage": st.key,
                "input_size": f"{st.in_resolution}x{st.in_resolution}x{st.in_chs}",
                "operator": st.operator,
                "t": _dash(st.t),
                "c": st.c,
                "n": st.n,
                "s": _dash(st.s),
                "params": cost.params,
                "macs": cost.macs,
                "elementwise_ops": cost.elementwise_ops,
                "peak_act_bytes": cost.peak_act_bytes,
                "latency_median_ms": _ms(cost.latency),
                "latency_share_pct": round(100 * profile.latency_share(cost), 2)
                if cost.latency is not None
                else math.nan,
            }
        )
    rows.append(
        {
            "stage": "total",
            "input_size": f"{profile.spec.resolution}x{profile.spec.resolution}x3",
            "operator": profile.spec.name,
            "t": "-",
            "c": profile.spec.num_classes,
            "n": "-",
            "s": "-",
            "params": profile.params,
            "macs": profile.macs,
            "elementwise_ops": profile.elementwise_ops,
            "peak_act_bytes": profile.peak_act_bytes,
            "latency_median_ms": _ms(profile.latency),
            "latency_share_pct": math.nan,  # shares are of the stage sum, see latency_note
        }
    )
    return pd.DataFrame(rows)


def latency_note(profile: NetworkProfile) -> str | None:
    """How the stages' timings add up against the whole network timed as one session."""
    if profile.latency is None:
        return None
    whole, parts = profile.latency.median_ms, profile.stage_latency_sum_ms
    return (
        f"Stages timed one by one sum to {parts:.3f} ms; the whole network as one session takes "
        f"{whole:.3f} ms ({parts / whole:.2f}x); they differ by one call overhead per stage, the "
        "cache state each stage starts from, and the machine's noise."
    )


def _ms(measurement) -> float:
    return round(measurement.median_ms, 6) if measurement is not None else math.nan


def _cell(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


STAGE_COLUMNS = [
    Column("stage", lambda r: r["stage"], justify="left"),
    Column("input", lambda r: r["input_size"], "table", justify="left"),
    Column("operator", lambda r: r["operator"], justify="left"),
    *(Column(k, lambda r, k=k: str(r[k]), "table") for k in ("t",)),
    Column("c", lambda r: str(r["c"])),
    *(Column(k, lambda r, k=k: str(r[k]), "table") for k in ("n", "s")),
    Column("params", lambda r: f"{r['params']:,}"),
    Column("MACs\n(M)", lambda r: f"{r['macs'] / 1e6:,.2f}"),
    Column("peak act\n(KiB)", lambda r: f"{r['peak_act_bytes'] / 1024:,.1f}"),
    Column("elem ops\n(M)", lambda r: f"{r['elementwise_ops'] / 1e6:,.2f}", "memory"),
    Column("latency\n(ms)", lambda r: _cell(r["latency_median_ms"], 3)),
    Column("share\n(%)", lambda r: _cell(r["latency_share_pct"], 1)),
]


def stage_table(frame: pd.DataFrame, title: str, show: frozenset[str] = frozenset()) -> Table:
    """The stages (rows of the paper's table) and the total; `show`: `table` adds the paper's
    input, t, n, s columns, `memory` the elementwise ops."""
    rows = frame.to_dict("records")
    table = view_table(title, STAGE_COLUMNS, rows[:-1], show)
    table.add_section()
    shown = [c for c in STAGE_COLUMNS if c.group == DEFAULT or c.group in show]
    table.add_row(*(c.cell(rows[-1]) for c in shown))
    return table


def memory_table(frame: pd.DataFrame, title: str) -> Table:
    """Paper Table 3's column beside ours: max channels / kB (1000 B) per spatial size."""
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("size")
    for name in (
        "naive max chs", "naive max tensor (kB)", "naive peak set (kB)",
        "efficient max chs", "efficient max tensor (kB)", "efficient peak set (kB)",
        "paper chs/kB",
    ):  # fmt: skip
        table.add_column(name, justify="right")
    for row in frame.to_dict("records"):
        side = row["side_px"]
        paper = (
            "-"
            if pd.isna(row["paper_max_chs"])
            else f"{int(row['paper_max_chs'])}/{int(row['paper_kb'])}"
        )
        table.add_row(
            f"{side}x{side}",
            str(row["naive_max_chs"]),
            f"{row['naive_max_tensor_kb']:,.1f}",
            f"{row['naive_peak_set_kb']:,.1f}",
            str(row["efficient_max_chs"]),
            f"{row['efficient_max_tensor_kb']:,.1f}",
            f"{row['efficient_peak_set_kb']:,.1f}",
            paper,
        )
    table.add_section()
    table.add_row(
        "max",
        "",
        f"{frame['naive_max_tensor_kb'].max():,.1f}",
        f"{frame['naive_peak_set_kb'].max():,.1f}",
        "",
        f"{frame['efficient_max_tensor_kb'].max():,.1f}",
        f"{frame['efficient_peak_set_kb'].max():,.1f}",
        "-" if frame["paper_kb"].isna().all() else f"{PAPER_MAX_KB[frame['network'].iloc[0]]}K",
    )
    return table


def network_report(
    profile: NetworkProfile, show: frozenset[str] = frozenset()
) -> tuple[pd.DataFrame, list[Table | str]]:
    """`network`'s rows (the stages and the total) and what it prints: the table in the paper's
    shape, the note on the stage sum, ops left uncounted, and the GPU line with --device cuda."""
    frame = stage_frame(profile)
    title = f"{profile.spec.name}: the paper's table rows, onnxruntime CPU, {profile.threads} thread(s)"
    shown: list[Table | str] = [stage_table(frame, title, show)]
    shown.append("1 MAC = 1 multiply-accumulate; peak act at fp32; share = stage median / sum of "
                 "the stage medians.")
    if note := latency_note(profile):
        shown.append(note)
    if profile.unhandled_ops:
        shown.append(f"ops without a cost handler (not counted): {profile.unhandled_ops}")
    if profile.gpu is not None:
        from mnv2prof.report.cuda_report import module_line

        gpu = profile.gpu
        shown.append(module_line(profile.spec.name, gpu.eager, gpu.graph, gpu.peak_bytes,
                                 gpu.env.gpu_name))
    return frame, shown
