"""The GPU columns of `compare --device cuda` as their own table, and the sentences under it;
the per-layer table of `layers --device cuda` (eager_layers.py).

The CPU table (report.compare_table) is printed as always; this one puts MACs beside the GPU's
latencies (eager, CUDA graph, onnxruntime's CUDA provider) and the measured GPU peak beside the
static liveness peak. The MACs-vs-latency rank agreement is report.rank_agreement's, read on the
CUDA-graph medians (launch overhead removed: the kernels' own cost). What measure.cuda found
missing (`OrtCudaGap`) is worded here too (`ort_gap_note`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd
from rich.table import Table

from mnv2prof.measure.stats import CONFIDENCE, TARGET_CI_REL
from mnv2prof.report import cells as shared

if TYPE_CHECKING:
    from mnv2prof.measure.cuda import OrtCudaGap
    from mnv2prof.measure.eager_layers import EagerLayerRow

GPU_TIMINGS = (  # column prefix, header
    ("cuda_eager", "eager"),
    ("cuda_graph", "CUDA graph"),
    ("cuda_ort", "onnxruntime\nCUDA"),
)


def measured_prefixes(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """The GPU timings some row of `frame` has samples for."""
    return [
        (prefix, header)
        for prefix, header in GPU_TIMINGS
        if f"{prefix}_n" in frame.columns and (frame[f"{prefix}_n"] > 0).any()
    ]


def gpu_table(frame: pd.DataFrame, title: str, baseline: str | None) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("variant", no_wrap=True)
    table.add_column("MACs (M)", justify="right")
    table.add_column("peak act\nstatic (KiB)", justify="right")
    table.add_column("GPU peak\nmeasured (KiB)", justify="right")
    timings = measured_prefixes(frame)
    for _, header in timings:
        table.add_column(f"{header}\nmedian (ms)", justify="right")
        table.add_column(f"{CONFIDENCE:.0%} CI\n(+-%)", justify="right")
    base = None
    if baseline is not None and (frame["variant"] == baseline).any():
        base = frame.loc[frame["variant"] == baseline].iloc[0]
        table.add_column(f"MACs / {baseline} (x)", justify="right")
        for _, header in timings:
            table.add_column(f"{header.splitlines()[0]} / {baseline} (x)", justify="right")
    for row in frame.to_dict("records"):
        cells = [
            shared.row_label(row),
            shared.fmt(row["macs"] / 1e6, 2),
            shared.fmt(row["peak_act_bytes"] / 1024, 1),
            shared.optional(row.get("cuda_peak_bytes"), 1 / 1024, 1),
        ]
        for prefix, _ in timings:
            unstable = "[yellow] ![/]" if row.get(f"{prefix}_unstable") else ""
            cells += [
                shared.optional(row.get(f"{prefix}_median_ms"), 1, 4) + unstable,
                shared.optional(row.get(f"{prefix}_ci_rel"), 100, 1),
            ]
        if base is not None:
            cells.append(shared.fmt(row["macs"] / base["macs"], 2))
            for prefix, _ in timings:
                cells.append(_ratio(row.get(f"{prefix}_median_ms"), base[f"{prefix}_median_ms"]))
        table.add_row(*cells)
    return table


def _ratio(value: object, base: object) -> str:
    if value is None or base is None or pd.isna(value) or pd.isna(base) or not base:
        return "-"
    return shared.fmt(float(value) / float(base), 2)


def ort_gap_note(gap: OrtCudaGap) -> str:
    """Why the onnxruntime GPU column is left out (measure.cuda.ort_cuda_gap), in one line."""
    from mnv2prof.measure.cuda import ORT_CUDA_PROVIDER, OrtCudaReason

    why = {
        OrtCudaReason.NOT_LISTED: f"has no {ORT_CUDA_PROVIDER} (install onnxruntime-gpu)",
        OrtCudaReason.NOT_LOADED: (f"lists {ORT_CUDA_PROVIDER} but could not load it (CUDA or "
                                   "cuDNN libraries missing?)"),
    }[gap.reason]
    return f"onnxruntime {gap.onnxruntime} {why}: the onnxruntime GPU column is left out."


def gpu_notes(frame: pd.DataFrame, left_out: tuple[str, ...] = ()) -> list[str]:
    """Sentences for under the GPU table: the device, rank agreement on the CUDA-graph medians,
    launch overhead, unstable timings, and the columns left out (`left_out`, already sentences)."""
    notes = []
    if "env_gpu_name" in frame.columns and len(frame):
        first = frame.iloc[0]
        notes.append(
            f"GPU: {first['env_gpu_name']}, CUDA {first['env_cuda']}, driver "
            f"{first['env_gpu_driver'] or 'unknown'}, torch {first['env_torch']}; latencies are "
            "CUDA-event times; each runtime timed in its own phase, in bursts rotating between the "
            "blocks."
        )
    graph = frame.dropna(subset=["cuda_graph_median_ms"]) if "cuda_graph_median_ms" in frame else []
    if len(graph):
        on_graph = graph.assign(latency_median_ms=graph["cuda_graph_median_ms"])
        agreement = shared.rank_agreement(on_graph)
        notes.append(agreement.sentence().replace("and latency", "and CUDA-graph latency"))
        notes += shared.disagreement_lines(on_graph, agreement)
        overhead = (graph["cuda_eager_median_ms"] - graph["cuda_graph_median_ms"]).median()
        notes.append(
            f"launch overhead (eager minus CUDA graph, median over the rows): {overhead:.4f} ms."
        )
    for prefix, header in measured_prefixes(frame):
        unstable = frame.loc[frame[f"{prefix}_unstable"].fillna(False).astype(bool), "variant"]
        if len(unstable):
            notes.append(
                f"! unstable {header.replace(chr(10), ' ')} timing (the {CONFIDENCE:.0%} CI of "
                f"the median is wider than +-{TARGET_CI_REL:.0%} of it): "
                f"{', '.join(unstable)}; raise --budget."
            )
    notes.append(
        "GPU peak measured: bytes one forward allocated through torch's caching allocator above "
        "what was held before it (weights excluded), plus the input; static: the liveness peak."
    )
    return notes + list(left_out)


def module_line(name: str, eager, graph, peak_bytes: int, gpu_name: str) -> str:
    """One sentence for a whole module timed on the GPU (`network --device cuda`)."""
    return (
        f"GPU ({gpu_name}), {name} as a whole: eager median {eager.median_ms:.4f} ms "
        f"(+-{100 * eager.ci_rel:.1f}%), CUDA graph median {graph.median_ms:.4f} ms "
        f"(+-{100 * graph.ci_rel:.1f}%), launch overhead {eager.median_ms - graph.median_ms:.4f} "
        f"ms; measured GPU peak {peak_bytes / 1024:,.1f} KiB (input included, weights not)."
    )


def eager_layers_frame(rows: Sequence[EagerLayerRow]) -> pd.DataFrame:
    """One row per layer; the shares are fractions of the block's kernel time and MACs."""
    total_ms = sum(r.kernel_ms for r in rows)
    total_macs = sum(r.macs for r in rows)
    return pd.DataFrame([r.row(total_ms, total_macs) for r in rows])


def eager_layers_table(frame: pd.DataFrame, title: str) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("layer", no_wrap=True)
    for header in (*shared.COST_HEADERS, "kernels (count)", "kernel time (ms)", "span (ms)",
                   "launch gaps (ms)", *shared.SHARE_HEADERS):
        table.add_column(header, justify="right")
    for row in frame.to_dict("records"):
        table.add_row(
            row["layer"], *shared.cost_cells(row), str(row["kernels"]),
            shared.fmt(row["kernel_ms"], 4), shared.fmt(row["span_ms"], 4),
            shared.fmt(row["launch_gap_ms"], 4), *shared.share_cells(row),
        )
    return table


def eager_layers_notes(frame: pd.DataFrame) -> list[str]:
    """What the times are, and how launch-bound the block is."""
    kernel, span = frame["kernel_ms"].sum(), frame["span_ms"].sum()
    notes = [(
        "kernel time: the layer's GPU kernels summed (torch profiler, launch overhead removed); "
        "span: first launch to last kernel's end on CUDA events, the gaps in which the GPU "
        "waited for Python to launch included; time share is of kernel time."
    )]
    if span > 0:
        notes.append(
            f"block: {kernel:.4f} ms of kernels in a {span:.4f} ms span: the GPU was busy "
            f"{min(kernel / span, 1.0):.0%} of the time"
            + (" (launch-bound: batch it, or replay it as a CUDA graph)." if kernel < span / 2
               else ".")
        )
    notes.append(
        "onnxruntime's CUDA provider has no per-node rows: its release builds' profiler times "
        "each node's host-side launch, not the kernel."
    )
    return notes
