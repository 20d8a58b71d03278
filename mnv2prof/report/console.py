"""Records -> rich table, CSV and JSON. Indirect cost beside direct cost, and where they disagree."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from rich.table import Table

from mnv2prof.errors import UsageError
from mnv2prof.measure.latency import Measurement
from mnv2prof.measure.layers import LayerRow
from mnv2prof.measure.stats import CONFIDENCE, TARGET_CI_REL
from mnv2prof.report.cells import (
    COST_HEADERS,
    SHARE_HEADERS,
    cost_cells,
    disagreement_lines,
    fmt,
    optional,
    rank_agreement,
    share_cells,
)
from mnv2prof.run.records import Record


def records_frame(records: Sequence[Record], baseline: str | None = None) -> pd.DataFrame:
    """One row per record; with `baseline` (a row label) adds `macs_ratio_x`, `latency_ratio_x`."""
    frame = pd.DataFrame([r.row() for r in records])
    if baseline is not None and not frame.empty:
        base = frame.loc[frame["variant"] == baseline]
        if base.empty:
            raise UsageError(f"baseline variant {baseline!r} is not among the measured rows")
        base_row = base.iloc[0]
        position = frame.columns.get_loc("gmacs_per_s") + 1
        frame.insert(position, "macs_ratio_x", (frame["macs"] / base_row["macs"]).round(4))
        frame.insert(
            position + 1,
            "latency_ratio_x",
            (frame["latency_median_ms"] / base_row["latency_median_ms"]).round(4),
        )
    return frame


def compare_table(frame: pd.DataFrame, title: str, baseline: str | None) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("variant", no_wrap=True)
    table.add_column("params", justify="right")
    table.add_column("MACs (M)", justify="right")
    table.add_column("elem ops (M)", justify="right")
    table.add_column("peak act (KiB)", justify="right")
    table.add_column("measured\npeak (KiB)", justify="right")
    table.add_column("weights (KiB)", justify="right")
    table.add_column("bytes moved\n(MiB)", justify="right")
    table.add_column("intensity\n(FLOP/B)", justify="right")
    table.add_column("latency median (ms)", justify="right")
    table.add_column(f"{CONFIDENCE:.0%} CI\n(+-%)", justify="right")
    table.add_column("IQR (ms)", justify="right")
    table.add_column("eager\nmedian (ms)", justify="right")
    table.add_column("GMAC/s", justify="right")
    roofline = "roofline_bound_ms" in frame.columns  # roofline.add_roofline, when calibrated
    if roofline:
        table.add_column("bound (ms)", justify="right")
        table.add_column("efficiency (x)", justify="right")
    if baseline is not None:
        table.add_column(f"MACs / {baseline} (x)", justify="right")
        table.add_column(f"latency / {baseline} (x)", justify="right")
    for row in frame.to_dict("records"):
        unstable = "[yellow] ![/]" if row["latency_unstable"] else ""
        cells = [
            row["variant"],
            f"{row['params']:,}",
            fmt(row["macs"] / 1e6, 2),
            fmt(row["elementwise_ops"] / 1e6, 2),
            fmt(row["peak_act_bytes"] / 1024, 1),
            optional(row.get("measured_peak_bytes"), 1 / 1024, 1),
            fmt(row["weight_bytes"] / 1024, 1),
            fmt(row["bytes_moved"] / 2**20, 2),
            fmt(row["arith_intensity_flop_per_byte"], 1),
            fmt(row["latency_median_ms"], 3) + unstable,
            fmt(100 * row["latency_ci_rel"], 1),
            fmt(row["latency_iqr_ms"], 3),
            optional(row.get("eager_median_ms"), 1, 3),
            fmt(row["gmacs_per_s"], 2),
        ]
        if roofline:
            cells += [fmt(row["roofline_bound_ms"], 3), fmt(row["roofline_efficiency_x"], 2)]
        if baseline is not None:
            cells += [fmt(row["macs_ratio_x"], 2), fmt(row["latency_ratio_x"], 2)]
        table.add_row(*cells)
    return table


def table_notes(frame: pd.DataFrame, harness_floor: Measurement | None = None) -> list[str]:
    """Sentences for under the table: rank agreement, disagreements, noise, harness floor,
    uncounted ops."""
    agreement = rank_agreement(frame)
    notes = [agreement.sentence(), *disagreement_lines(frame, agreement)]
    unstable = frame.loc[frame["latency_unstable"].astype(bool), "variant"].tolist()
    if unstable:
        notes.append(
            f"! unstable timing (the {CONFIDENCE:.0%} CI of the median is wider than "
            f"+-{TARGET_CI_REL:.0%} of it when the budget ran out): "
            f"{', '.join(unstable)}; raise --budget or quiet the machine."
        )
    if harness_floor is not None and harness_floor.n:
        notes.append(
            f"harness floor: {harness_floor.median_ms:.4f} ms (median of {harness_floor.n} runs "
            "of a one-element Identity model, timed the same way: the part of every latency "
            "that is the call itself)."
        )
    uncounted = frame.loc[frame["unhandled_ops"] != "", ["variant", "unhandled_ops"]]
    for variant, ops in uncounted.itertuples(index=False):
        notes.append(f"{variant}: ops without a cost handler (not counted): {ops}")
    return notes


def compare_report(
    frame: pd.DataFrame,
    title: str,
    baseline: str | None,
    harness_floor: Measurement | None,
    notes: Sequence[str] = (),
    machine=None,
    threads: int = 1,
    device: str = "cpu",
) -> list[Table | str]:
    """What `compare` prints, in order: the table, the notes under it (rank agreement,
    disagreements, noise, harness floor, roofline, what was left out), and with a GPU its table
    and notes."""
    from mnv2prof.measure.roofline import roofline_notes

    shown: list[Table | str] = [compare_table(frame, title, baseline)]
    shown += table_notes(frame, harness_floor) + roofline_notes(frame, machine, threads)
    if device != "cuda":
        return shown + list(notes)
    from mnv2prof.report.cuda_report import gpu_notes, gpu_table

    shown.append(gpu_table(frame, title.split(", onnxruntime")[0] + ", GPU", baseline))
    return shown + gpu_notes(frame, tuple(notes))


def layers_frame(rows: Sequence[LayerRow]) -> pd.DataFrame:
    """One row per node onnxruntime runs; `time_share_frac` and `macs_share_frac` are fractions of the
    block's total kernel time and MACs."""
    total_ms = sum(r.kernel_ms for r in rows)
    total_macs = sum(r.macs for r in rows)
    return pd.DataFrame([r.row(total_ms, total_macs) for r in rows])


def layers_table(frame: pd.DataFrame, title: str) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for header in ("node", "op", "layer"):
        table.add_column(header, no_wrap=True)
    for header in (*COST_HEADERS, "kernel time (ms)", *SHARE_HEADERS):
        table.add_column(header, justify="right")
    for row in frame.to_dict("records"):
        table.add_row(
            row["node"], row["op_type"], row["layer"], *cost_cells(row),
            fmt(row["kernel_ms"], 4), *share_cells(row),
        )
    return table


def layers_report(
    rows: Sequence, spec, threads: int, runs: int, device: str = "cpu"
) -> tuple[pd.DataFrame, list[Table | str]]:
    """The per-layer frame of `layers` (onnxruntime nodes, or eager layers on the GPU) and what
    it prints: the table and its notes."""
    if device == "cuda":
        from mnv2prof.measure.cuda import gpu_environment
        from mnv2prof.report.cuda_report import (
            eager_layers_frame,
            eager_layers_notes,
            eager_layers_table,
        )

        frame = eager_layers_frame(rows)
        title = (
            f"{spec.name}: layers run eagerly by torch on {gpu_environment().gpu_name}, median "
            f"of {runs} calls; 1 MAC = 1 multiply-accumulate"
        )
        return frame, [eager_layers_table(frame, title), *eager_layers_notes(frame)]
    frame = layers_frame(rows)
    title = (
        f"{spec.name}: nodes onnxruntime runs (CPU, {threads} thread(s)), median of {runs} "
        "profiled runs; 1 MAC = 1 multiply-accumulate"
    )
    return frame, [layers_table(frame, title)]


def baseline_report(
    groups: Sequence[tuple[str, Sequence[Record]]],
) -> tuple[pd.DataFrame, list[Table | str]]:
    """The rows a baseline stores (every group's) and a table per group (a grid point)."""
    frame = records_frame([record for _, records in groups for record in records])
    return frame, [compare_table(records_frame(records), title, None) for title, records in groups]


def model_report(profiled) -> tuple[pd.DataFrame, list[Table | str]]:
    """`profile`'s row (the columns `compare` writes) and what it prints: the summary table, the
    notes from counting, and with --layers the per-node table."""
    from mnv2prof.run.model_profile import summary_title

    count, threads = profiled.count, profiled.timing.threads
    frame = records_frame([profiled.record])
    shown: list[Table | str] = [compare_table(frame, summary_title(count, threads), None)]
    shown += list(count.notes)
    if profiled.layers is not None:
        title = (
            f"{count.path.name}: nodes onnxruntime runs (CPU, {threads} thread(s)), median of "
            f"{profiled.layer_runs} profiled runs; 1 MAC = 1 multiply-accumulate"
        )
        shown.append(layers_table(layers_frame(profiled.layers), title))
    return frame, shown
