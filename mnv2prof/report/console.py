"""Records -> rich table, CSV and JSON. Indirect cost beside direct cost, and where they
disagree."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from mnv2prof.measure.latency import Measurement
from mnv2prof.measure.stats import CONFIDENCE, MIN_RANK, REPRODUCED_REL, TARGET_CI_REL
from mnv2prof.report.cells import (
    cost_cells,
    disagreement_lines,
    fmt,
    ms_text,
    optional,
    rank_agreement,
    row_label,
    share_cells,
    table_digits,
)
from mnv2prof.report.views import Column, View, view_table
from mnv2prof.run.frame import headline_column, records_frame
from mnv2prof.run.records import Record

if TYPE_CHECKING:  # measure.layers imports onnx (0.6 s): not on a compare's path
    from mnv2prof.measure.layers import LayerRow


BASE_NAME_MAX = 10  # a longer baseline is "base" in the x headers (the note under names it)


def compare_columns(baseline: str | None, models: bool = False, digits: int = 3) -> list[Column]:
    """The compare table: the contrast by default (the fastest call, the median beside it, and
    with a baseline both costs as its multiples; params too when a row is a whole model);
    memory, traffic, stats, roofline and eager columns one `--show` away. Latencies in ms take
    `digits` decimals (cells.table_digits)."""

    def ms(key: str) -> Callable[[dict], str]:
        return lambda r: ms_text(r[key], digits=digits)

    params = Column("params", lambda r: f"{r['params']:,}", "default" if models else "memory")
    columns = [
        Column("variant", row_label, justify="left"),
        Column("MACs\n(M)", lambda r: fmt(r["macs"] / 1e6, 2)),
        *([params] if models else []),
        Column("peak act\n(KiB)", lambda r: fmt(r["peak_act_bytes"] / 1024, 1)),
    ]
    if baseline is not None:  # the ratio column carries the headline's interval
        base = baseline if len(baseline) <= BASE_NAME_MAX else "base"
        columns += [
            Column("latency\nmin (ms)", lambda r: _min_cell(r, digits)),
            Column("median\n(ms)", ms("latency_median_ms")),
            Column(f"MACs\n(x {base})", lambda r: fmt(r["macs_ratio_x"], 2)),
            Column(f"latency\n(x {base})", _ratio_cell),
        ]
    else:
        columns += [Column("latency\nmin ± (ms)", lambda r: _min_cell(r, digits, interval=True)),
                    Column("median\n(ms)", ms("latency_median_ms"))]
    return columns + [
        Column("GMAC/s", lambda r: fmt(r["gmacs_per_s"], 2), "traffic"),
        *([] if models else [params]),
        Column("measured\npeak (KiB)",
               lambda r: optional(r.get("measured_peak_bytes"), 1 / 1024, 1), "memory"),
        Column("weights\n(KiB)", lambda r: fmt(r["weight_bytes"] / 1024, 1), "memory"),
        Column("elem ops\n(M)", lambda r: fmt(r["elementwise_ops"] / 1e6, 2), "traffic"),
        Column("bytes moved\n(MiB)", lambda r: fmt(r["bytes_moved"] / 2**20, 2), "traffic"),
        Column("intensity\n(FLOP/B)", lambda r: fmt(r["arith_intensity_flop_per_byte"], 1),
               "traffic"),
        Column(f"median ±\n{CONFIDENCE:.0%} CI (ms)", lambda r: _latency_cell(r, digits), "stats"),
        Column(f"{CONFIDENCE:.0%} CI\n(+-%)", lambda r: fmt(100 * r["latency_ci_rel"], 1), "stats"),
        Column("IQR\n(ms)", ms("latency_iqr_ms"), "stats"),
        Column("p95\n(ms)", ms("latency_p95_ms"), "stats"),
        Column("rounds\n(n)", lambda r: str(r["latency_n"]), "stats"),
        Column("bound\n(ms)", lambda r: optional(r.get("roofline_bound_ms"), 1, 3), "roofline"),
        Column("efficiency\n(x)", lambda r: optional(r.get("roofline_efficiency_x"), 1, 2),
               "roofline"),
        Column("eager\nmedian (ms)", lambda r: optional(r.get("eager_median_ms"), 1, 3), "eager"),
        Column("eager / ort\n(x)", _eager_ratio_cell, "eager"),
        Column("int8\nspeedup (x)", lambda r: optional(r.get("int8_speedup_x"), 1, 2),
               "accuracy"),
        Column("int8 max\nabs err", lambda r: optional(r.get("int8_max_abs_err"), 1, 4),
               "accuracy"),
        Column("int8 SQNR\n(dB)", lambda r: optional(r.get("int8_sqnr_db"), 1, 1), "accuracy"),
    ]


def has_models(frame: pd.DataFrame) -> bool:
    """Whether a row is a whole model (no block spec): its params then show by default."""
    return "in_chs" in frame and bool(frame["in_chs"].isna().any())


def _latency_cell(row: dict, digits: int) -> str:
    median = row["latency_median_ms"]
    half = (row["latency_ci_high_ms"] - row["latency_ci_low_ms"]) / 2
    return ms_text(median, half, digits)


def _min_cell(row: dict, digits: int, interval: bool = False) -> str:
    """The headline, flagged when the run did not reproduce it; with `interval`, ± how far
    another run's fastest call may lie (its spread)."""
    value = row.get("latency_min_ms")
    if value is None or not math.isfinite(value):
        cell = "-"
    elif interval:
        spread = row.get("latency_min_spread_rel")
        finite = spread is not None and math.isfinite(spread)
        cell = ms_text(value, value * spread if finite else math.nan, digits)
    else:
        cell = ms_text(value, digits=digits)
    return cell + (" [yellow]![/]" if row["latency_unstable"] else "  ")


def _ratio_cell(row: dict) -> str:
    """The ratio of minima ± the larger side of its interval (3 decimals below 10x)."""
    ratio, low, high = (row.get(f"latency_ratio{k}_x") for k in ("", "_ci_low", "_ci_high"))
    if ratio is None or not math.isfinite(ratio):
        return "-"
    digits = 3 if ratio < 10 else 1
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return f"{ratio:.{digits}f} ± -"
    return f"{ratio:.{digits}f} ± {max(ratio - low, high - ratio):.{digits}f}"


def _eager_ratio_cell(row: dict) -> str:
    eager = row.get("eager_median_ms")
    if eager is None or pd.isna(eager) or not row["latency_median_ms"] > 0:
        return "-"
    return fmt(eager / row["latency_median_ms"], 2)


def subjects_title(spec_title: str, subjects) -> str:
    """What a run measured, for its title: the blocks' spec (`C=32 56x56 t=6 ...`) when there
    are blocks, and each model by name and input shape (`mobilenet_v3_large 1x3x224x224`)."""
    from mnv2prof.models.variants import BlockSpec

    parts = [spec_title] if any(isinstance(s, BlockSpec) for s in subjects) else []
    parts += [f"{s.variant} {s.shape_text}" for s in subjects if not isinstance(s, BlockSpec)]
    return ", ".join(parts)


def count_text(n: int, noun: str) -> str:
    """`1 row`, `2 rows`: a count and its noun, in the number it takes."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def compare_table(
    frame: pd.DataFrame, title: str, baseline: str | None, show: frozenset[str] = frozenset()
) -> View:
    rows = frame.to_dict("records")
    if baseline is not None and len(rows) < 2:
        baseline = None  # one row: its multiples of itself say nothing
    digits = table_digits(frame[headline_column(frame)]) if len(frame) else 3
    return view_table(title, compare_columns(baseline, has_models(frame), digits), rows, show)


def table_notes(frame: pd.DataFrame, harness_floor: Measurement | None = None,
                budget_s: float | None = None) -> list[str]:
    """Sentences for under the table: rank agreement, disagreements, then `measurement_notes`."""
    agreement = rank_agreement(frame)
    return [agreement.sentence(), *disagreement_lines(frame, agreement),
            *measurement_notes(frame, harness_floor, budget_s)]


def _shortfalls() -> dict:
    """Each reason a fastest call was not reproduced: how the note says it, how each row shows
    it, and what would help."""
    from mnv2prof.measure.stats import Shortfall

    target = f"{REPRODUCED_REL:.0%}"
    return {
        Shortfall.FEW_NEAR: (
            f"fewer than {MIN_RANK} rounds came within {target} of it; the machine was busy",
            lambda v: f"{v.near} of {v.rounds} rounds", _budget_advice),
        Shortfall.FEW_ROUNDS: (
            f"a session had fewer than {MIN_RANK} rounds, too few to know its own",
            lambda v: f"{v.rounds} rounds over {v.trials} sessions", _budget_advice),
        Shortfall.SESSIONS: (
            "across sessions: the slowest of a block's onnxruntime sessions read it more than "
            f"{target} above", lambda v: f"{100 * v.session_spread_rel:.2f}%",
            lambda _: "a longer --budget would not narrow this (each session's buffers lie "
                      "elsewhere in memory), and the interval of the ratio includes it"),
    }


def row_reproduction(row: dict, budget_s: float | None):
    """`stats.reproduction` of a row's round minima (None for a row without them: an older
    CSV's)."""
    from mnv2prof.measure.stats import minimum, reproduction

    mins = [float(x) for x in str(row.get("latency_mins_ms") or "").split()]
    if not mins:
        return None
    trials = row.get("latency_trials")
    trials = int(trials) if trials is not None and not pd.isna(trials) else 1
    return reproduction(minimum(mins, trials=trials), budget_s)


def unstable_notes(frame: pd.DataFrame, budget_s: float | None = None) -> list[str]:
    """The rows whose fastest call the run did not reproduce (the `!`), by reason
    (stats.reproduction: the one verdict), with the budget that would, or why none would."""
    flagged = frame.loc[frame["latency_unstable"].fillna(False).astype(bool)].to_dict("records")
    verdicts = [(row_label(r), row_reproduction(r, budget_s)) for r in flagged]
    notes = []
    if old := [label for label, v in verdicts if v is None]:
        notes.append(f"! unstable timing (the {CONFIDENCE:.0%} CI of the median is wider than "
                     f"+-{TARGET_CI_REL:.0%} of it): {', '.join(old)}; raise --budget.")
    for kind, (reason, detail, advice) in _shortfalls().items():
        rows = [(label, v) for label, v in verdicts if v is not None and v.shortfall is kind]
        if rows:
            listed = ", ".join(f"{label} ({detail(v)})" for label, v in rows)
            notes.append(f"! fastest call not reproduced ({reason}): {listed}; "
                         f"{advice([v for _, v in rows])}.")
    return notes


def _budget_advice(verdicts) -> str:
    """The budget that should reproduce every one of `verdicts` (FEW_NEAR rows), never the
    budget just used; or why none is given."""
    from mnv2prof.measure.stats import BUDGET_ADVICE_MAX_S

    budget = verdicts[0].budget_s
    if not budget:
        return "raise --budget"
    if any(v.too_busy for v in verdicts):
        return (f"enough such rounds would take more than {BUDGET_ADVICE_MAX_S:g} s of --budget "
                "at this rate: time it on a quieter machine")
    advised = max(v.advised_budget_s for v in verdicts)
    them = "it" if len(verdicts) == 1 else "them"
    return (f"--budget {advised:g} should reproduce {them} (estimated from the rate this run "
            f"found such rounds in {budget:g} s)")


def measurement_notes(frame: pd.DataFrame, harness_floor: Measurement | None = None,
                      budget_s: float | None = None) -> list[str]:
    """What every view of measured rows says under its table: noise, harness floor, uncounted
    ops."""
    notes = unstable_notes(frame, budget_s)
    if harness_floor is not None and harness_floor.n:
        notes.append(
            f"harness floor: {harness_floor.median_ms:.4f} ms (median of {harness_floor.n} rounds "
            "of a one-element Identity model, timed the same way: the part of every latency "
            "that is the call itself)."
        )
    for row in frame.loc[frame["unhandled_ops"] != ""].to_dict("records"):
        notes.append(f"{row_label(row)}: ops without a cost handler (not counted): "
                     f"{row['unhandled_ops']}")
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
    show: frozenset[str] = frozenset(),
    chart: bool = True,
    budget_s: float | None = None,
) -> list:
    """What `compare` prints, in order: the table (the default view and the `show` groups), the
    MACs-against-latency chart, the notes under them (rank agreement, disagreements, noise,
    harness floor, roofline, what was left out), and with a GPU its table and notes."""
    from mnv2prof.report.notes import roofline_notes
    from mnv2prof.report.chart import contrast_chart
    from mnv2prof.report.deploy_report import (
        deployment_notes,
        deployment_table,
        is_deployment_frame,
    )

    if is_deployment_frame(frame):  # precisions or runtimes side by side
        title += ", latency = the fastest call, int8 speedups of fastest calls"
        shown = [deployment_table(frame, title, show)]
        if show - {"accuracy"}:  # the other groups: a row per (block, precision, runtime)
            shown.append(compare_table(frame, f"{title}: each row", baseline, show))
        shown += deployment_notes(frame) + measurement_notes(frame, harness_floor, budget_s)
        return _with_gpu(shown, frame, title, baseline, device, notes)
    if "latency_ratio_estimator" in frame and len(frame) > 1:  # the headline, named in the title
        title += f", ratios of {frame['latency_ratio_estimator'].iloc[0]}"
    shown: list = [compare_table(frame, title, baseline, show)]
    shown.append(legend(frame, baseline is not None and len(frame) > 1))
    if baseline is not None and len(frame) > 1:
        shown.append(f"baseline: {baseline} (the x columns are multiples of its MACs and of its "
                     "fastest call, with the 95% interval of the ratio; --baseline picks another "
                     "row).")
    if chart and baseline is not None and len(frame) > 1:
        rows = [(row_label(r), r["macs_ratio_x"], r["latency_ratio_x"])
                for r in frame.to_dict("records")]
        shown.append(contrast_chart(rows, baseline))
    shown += table_notes(frame, harness_floor, budget_s) + roofline_notes(frame, machine, threads)
    return _with_gpu(shown, frame, title, baseline, device, notes)


def legend(frame: pd.DataFrame, ratios: bool) -> str:
    """What the default view's symbols mean: MACs, the headline and its `!`, params' rule."""
    interval = ("" if ratios else "; ± = how far another run's fastest call may lie (the "
                f"{MIN_RANK}th best round's distance, or the slowest session's)")
    params = ("; params = the torch module's parameters (an ONNX file's: learnable float "
              "weights read by computing nodes)" if has_models(frame) else "")
    return ("1 MAC = 1 multiply-accumulate (FLOPs = 2 x MACs); latency min = the fastest call "
            f"(noise only adds to it){interval}; ! = not reproduced within "
            f"{REPRODUCED_REL:.0%}{params}.")


def _with_gpu(shown: list, frame: pd.DataFrame, title: str, baseline: str | None, device: str,
              notes: Sequence[str]) -> list:
    """`shown`, then with a GPU its table and notes, then `notes`."""
    if device != "cuda":
        return shown + list(notes)
    from mnv2prof.report.cuda_report import gpu_notes, gpu_table

    shown.append(gpu_table(frame, title.split(", ")[0] + ", GPU", baseline))
    return shown + gpu_notes(frame, tuple(notes))


def layers_frame(rows: Sequence[LayerRow]) -> pd.DataFrame:
    """One row per node onnxruntime runs; `time_share_frac` and `macs_share_frac` are fractions
    of the block's total kernel time and MACs."""
    total_ms = sum(r.kernel_ms for r in rows)
    total_macs = sum(r.macs for r in rows)
    return pd.DataFrame([r.row(total_ms, total_macs) for r in rows])


LAYER_COLUMNS = [
    Column("node", lambda r: r["node"], "nodes", justify="left"),
    Column("layer", lambda r: r["layer"], justify="left"),
    Column("op", lambda r: r["op_type"], justify="left"),
    Column("MACs\n(M)", lambda r: cost_cells(r)[0]),
    Column("bytes moved\n(KiB)", lambda r: cost_cells(r)[1], "traffic"),
    Column("intensity\n(FLOP/B)", lambda r: cost_cells(r)[2], "traffic"),
    Column("kernel\n(ms)", lambda r: fmt(r["kernel_ms"], 4)),
    Column("time\nshare (%)", lambda r: share_cells(r)[0]),
    Column("MACs\nshare (%)", lambda r: share_cells(r)[1]),
    Column("time / MACs\nshare (x)", lambda r: share_cells(r)[2]),
]


def layers_table(frame: pd.DataFrame, title: str, show: frozenset[str] = frozenset()) -> View:
    """One row per node onnxruntime runs; `show`: `traffic` adds bytes moved and intensity,
    `nodes` onnxruntime's node names."""
    return view_table(title, LAYER_COLUMNS, frame.to_dict("records"), show)


def layers_report(
    rows: Sequence, spec, threads: int, runs: int, device: str = "cpu",
    show: frozenset[str] = frozenset(),
) -> tuple[pd.DataFrame, list[View | str]]:
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
    title = f"{spec.name}: nodes onnxruntime runs (CPU, {threads} thread(s)), median of {runs} runs"
    return frame, [layers_table(frame, title, show), "1 MAC = 1 multiply-accumulate."]


def baseline_report(
    groups: Sequence[tuple[str, Sequence[Record]]], budget_s: float | None = None,
) -> tuple[pd.DataFrame, list[View | str]]:
    """The rows a baseline stores (every group's) and what it prints: a table per group (a grid
    point), the legend of its symbols, and the rows whose fastest call was not reproduced."""
    frame = records_frame([record for _, records in groups for record in records])
    tables = [compare_table(records_frame(records), title, None) for title, records in groups]
    return frame, [*tables, legend(frame, False), *unstable_notes(frame, budget_s)]


def model_report(
    spec, records: Sequence[Record], threads: int, notes: Sequence[str] = (),
    layers: Sequence | None = None, layer_runs: int = 0, opset: int | None = None,
    show: frozenset[str] = frozenset(),
) -> tuple[pd.DataFrame, list[View | str]]:
    """`profile`'s rows (the columns `compare` writes) and what it prints: the summary table, the
    notes from counting, and with --layers the per-node table."""
    from mnv2prof.models.user_models import format_shape

    frame = records_frame(records)
    shapes = ", ".join(f"{n}={format_shape(d)}" for n, d in spec.input_shapes)
    kind = f"opset {opset}, " if opset is not None else ""
    title = f"{_model_file(spec)}: {kind}inputs {shapes}, onnxruntime CPU, {threads} thread(s)"
    shown: list[View | str] = [compare_table(frame, title, None, show), legend(frame, False)]
    shown += list(notes)
    if layers is not None:
        title = (f"{_model_file(spec)}: nodes onnxruntime runs (CPU, {threads} thread(s)), median "
                 f"of {layer_runs} runs")
        shown.append(layers_table(layers_frame(layers), title, show))
    return frame, shown


def _model_file(spec) -> str:
    from pathlib import Path

    return Path(spec.source).name if spec.onnx_file else spec.variant
