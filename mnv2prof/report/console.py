"""Records -> rich table, CSV and JSON. Indirect cost beside direct cost, and where they disagree."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from rich.table import Table

from mnv2prof.errors import UsageError
from mnv2prof.measure.latency import Measurement
from mnv2prof.measure.layers import LayerRow
from mnv2prof.run.records import Record
from mnv2prof.measure.stats import CONFIDENCE, TARGET_CI_REL


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


@dataclass(frozen=True)
class RankAgreement:
    rho: float  # Spearman rank correlation between MACs and median latency
    n: int
    disagreements: tuple[tuple[str, str], ...]  # (more MACs but faster, than this one)

    def sentence(self) -> str:
        if self.n < 3 or math.isnan(self.rho):
            return "Too few rows (or no spread) for a rank correlation between MACs and latency."
        if self.rho >= 0.9:
            verdict = "MACs order the blocks almost as latency does"
        elif self.rho >= 0.5:
            verdict = "MACs only partly predict which block is faster"
        else:
            verdict = "MACs are a poor guide to which block is faster"
        return (
            f"Spearman rank correlation between MACs and latency: rho = {self.rho:.2f} over "
            f"{self.n} blocks (1 = same order, 0 = unrelated): {verdict}."
        )


def rank_agreement(frame: pd.DataFrame, limit: int = 3) -> RankAgreement:
    from scipy.stats import spearmanr

    n = len(frame)
    if n < 3 or frame["macs"].nunique() < 2 or frame["latency_median_ms"].nunique() < 2:
        return RankAgreement(float("nan"), n, ())
    rho = float(spearmanr(frame["macs"], frame["latency_median_ms"]).statistic)
    pairs = []
    rows = list(frame[["variant", "macs", "latency_median_ms"]].itertuples(index=False))
    for a in rows:
        for b in rows:
            if a.macs > b.macs and a.latency_median_ms < b.latency_median_ms:
                # how strongly the pair contradicts MACs: MAC ratio times speed ratio
                strength = (a.macs / b.macs) * (b.latency_median_ms / a.latency_median_ms)
                pairs.append((strength, a.variant, b.variant))
    pairs.sort(reverse=True)
    return RankAgreement(rho, n, tuple((a, b) for _, a, b in pairs[:limit]))


def disagreement_lines(frame: pd.DataFrame, agreement: RankAgreement) -> list[str]:
    by_name = frame.set_index("variant")
    lines = []
    for more, fewer in agreement.disagreements:
        a, b = by_name.loc[more], by_name.loc[fewer]
        lines.append(
            f"{more} has {a['macs'] / b['macs']:.1f}x the MACs of {fewer} yet takes "
            f"{a['latency_median_ms'] / b['latency_median_ms']:.2f}x its latency."
        )
    return lines


def _fmt(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def _optional(value: object, scale: float, digits: int) -> str:
    """A cell for a measurement that may be missing (None / NaN in the frame)."""
    if value is None or pd.isna(value):
        return "-"
    return _fmt(float(value) * scale, digits)


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
            _fmt(row["macs"] / 1e6, 2),
            _fmt(row["elementwise_ops"] / 1e6, 2),
            _fmt(row["peak_act_bytes"] / 1024, 1),
            _optional(row.get("measured_peak_bytes"), 1 / 1024, 1),
            _fmt(row["weight_bytes"] / 1024, 1),
            _fmt(row["bytes_moved"] / 2**20, 2),
            _fmt(row["arith_intensity_flop_per_byte"], 1),
            _fmt(row["latency_median_ms"], 3) + unstable,
            _fmt(100 * row["latency_ci_rel"], 1),
            _fmt(row["latency_iqr_ms"], 3),
            _optional(row.get("eager_median_ms"), 1, 3),
            _fmt(row["gmacs_per_s"], 2),
        ]
        if roofline:
            cells += [_fmt(row["roofline_bound_ms"], 3), _fmt(row["roofline_efficiency_x"], 2)]
        if baseline is not None:
            cells += [_fmt(row["macs_ratio_x"], 2), _fmt(row["latency_ratio_x"], 2)]
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


COST_HEADERS = ("MACs (M)", "bytes moved (KiB)", "intensity (FLOP/B)")
SHARE_HEADERS = ("time share (%)", "MACs share (%)", "time / MACs share (x)")


def cost_cells(row: dict) -> list[str]:
    """COST_HEADERS' cells of a per-layer row (`macs`, `bytes_moved`, intensity)."""
    return [
        _fmt(row["macs"] / 1e6, 2),
        _fmt(row["bytes_moved"] / 1024, 1),
        _fmt(row["arith_intensity_flop_per_byte"], 1),
    ]


def share_cells(row: dict) -> list[str]:
    """SHARE_HEADERS' cells: the row's share of the time and of the MACs, and their ratio."""
    time_share, macs_share = row["time_share_frac"], row["macs_share_frac"]
    return [
        _fmt(100 * time_share, 1),
        _fmt(100 * macs_share, 1),
        _fmt(time_share / macs_share, 2) if macs_share else "-",
    ]


def layers_table(frame: pd.DataFrame, title: str) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for header in ("node", "op", "layer"):
        table.add_column(header, no_wrap=True)
    for header in (*COST_HEADERS, "kernel time (ms)", *SHARE_HEADERS):
        table.add_column(header, justify="right")
    for row in frame.to_dict("records"):
        table.add_row(
            row["node"], row["op_type"], row["layer"], *cost_cells(row),
            _fmt(row["kernel_ms"], 4), *share_cells(row),
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
