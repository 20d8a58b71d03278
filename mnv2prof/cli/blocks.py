"""Commands on block variants: variants, compare, export, layers."""

from __future__ import annotations

from typing import Annotated

import typer

from mnv2prof.cli.app import say
from mnv2prof.cli.app import show as show_all
from mnv2prof.cli.checks import Force, blocks_fit
from mnv2prof.cli.options import (
    DEFAULT_VARIANT_LIST,
    Csv,
    DeployOptions,
    Device,
    Json,
    NoEager,
    SpecOptions,
    Threads,
    TimingOptions,
    Variants,
    check_device,
    check_threads,
    command,
    positive,
    show_option,
)
from mnv2prof.cli.output import Outputs, make_folder
from mnv2prof.errors import UsageError
from mnv2prof.report.views import COMPARE_GROUPS, LAYERS_GROUPS, parse_show


@command("variants")
def list_variants() -> None:
    """List the block variants, one line each."""
    from mnv2prof.models.variants import VARIANTS

    width = max(map(len, VARIANTS))
    for info in VARIANTS.values():
        say(f"{info.name:<{width}}  {info.summary}")


@command()
def compare(
    spec: SpecOptions,
    timing: TimingOptions,
    deploy: DeployOptions,
    variants: Variants = DEFAULT_VARIANT_LIST,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="Row the x columns divide by: a variant, or "
                     "mbv2-streamed/kK. Default: conv when it is among the rows, else the first.",
                     show_default=False),
    ] = None,
    csv: Csv = None,
    json: Json = None,
    chunks: Annotated[
        str,
        typer.Option("--chunks", help="Chunk counts for mbv2-streamed, e.g. 1,2,6: one row each "
                     "(mbv2-streamed/kK)."),
    ] = "1",
    device: Device = "cpu",
    no_eager: NoEager = False,
    show: show_option(COMPARE_GROUPS) = None,
    no_chart: Annotated[
        bool, typer.Option("--no-chart", help="Leave out the MACs-against-latency bars.")
    ] = False,
    force: Force = False,
) -> None:
    """Export, count and time block variants; show MACs beside latency and memory.

    Each variant is exported to ONNX (cached), its MACs, elementwise ops, peak activation memory
    and weight bytes are counted from the graph, and its onnxruntime CPU latency is measured in
    bursts that rotate between the variants (--cache says in which cache state); the torch
    module is then timed eagerly in a phase of its own. The ratio columns divide by the
    --baseline variant. With --device cuda a second table gives the GPU columns.
    """
    from mnv2prof.models.variants import parse_chunk_list, with_chunks

    specs = with_chunks(spec.specs(variants), parse_chunk_list(chunks))
    labels = [s.label for s in specs]
    baseline = baseline or ("conv" if "conv" in labels else labels[0])
    if baseline not in labels and baseline not in {s.variant for s in specs}:
        raise UsageError(f"--baseline {baseline!r} is not among the rows ({', '.join(labels)})")
    groups = parse_show(show, COMPARE_GROUPS)
    timing_spec = timing.spec()
    precisions, runtimes = deploy.targets()
    outputs = Outputs(csv=csv, json=json)
    check_device(device)
    blocks_fit(specs, force)
    from mnv2prof.cli.progress import profile_with_progress
    from mnv2prof.measure.roofline import add_roofline, load_machine
    from mnv2prof.report.console import compare_report, records_frame
    from mnv2prof.run.deploy import requests

    rows = requests(specs, precisions, runtimes)
    run = profile_with_progress(rows, timing_spec, device, eager=not no_eager,
                                calibration=deploy.calibration)
    machine = load_machine(timing.threads)  # measured by `calibrate`, never inside compare
    frame = add_roofline(records_frame(run.records, baseline), machine)
    title = (f"{spec.title}, {' and '.join(runtimes)} CPU, {timing.threads} thread(s), "
             f"cache {timing.cache}")
    show_all(compare_report(frame, title, baseline, run.harness_floor, run.notes, machine,
                            timing.threads, device, groups, chart=not no_chart))
    outputs.write_frame(frame)


@command()
def export(
    out: Annotated[str, typer.Option("--out", help="Folder to write the .onnx files to.")],
    spec: SpecOptions,
    variants: Variants = DEFAULT_VARIANT_LIST,
    force: Force = False,
) -> None:
    """Write each variant's checked ONNX file (parity with torch proven) to --out."""
    specs = spec.specs(variants)
    out = make_folder(out, "--out")
    blocks_fit(specs, force)
    from mnv2prof.onnx.atomic import copy_atomic
    from mnv2prof.onnx.export import export_cached
    from mnv2prof.onnx.sources import block_source

    for block in specs:
        result = export_cached(block_source(block))
        target = out / f"{block.name}.onnx"
        copy_atomic(result.path, target)
        parity = "cached" if result.cached else f"max abs diff {result.max_abs_diff:.2e}"
        say(f"{target}  ({parity})")


@command("layers")
def layers_command(
    variant: Annotated[str, typer.Argument(help="One variant (see `mnv2prof variants`).")],
    spec: SpecOptions,
    threads: Threads = 1,
    runs: Annotated[
        int, typer.Option("--runs", help="Profiled runs the kernel times are the median of.")
    ] = 50,
    csv: Csv = None,
    device: Annotated[
        str,
        typer.Option("--device", help="cpu: nodes onnxruntime runs; cuda: the block's layers run "
                     "eagerly on the GPU (kernel time from torch's profiler, span from CUDA "
                     "events)."),
    ] = "cpu",
    show: show_option(LAYERS_GROUPS) = None,
    force: Force = False,
) -> None:
    """One row per node onnxruntime runs (after its fusions): MACs, bytes, kernel time.

    Kernel times come from onnxruntime's profiler (10 warm-up runs dropped, median of --runs);
    each fused node is mapped back to the exported nodes it computes, and named after the
    block's layer (conv_pw, conv_dw, ...). Compare a node's share of the time with its share
    of the MACs: the depthwise conv takes more time than its MACs say.

    With --device cuda the rows are the block's layers run eagerly by torch on the GPU: the
    kernels' time (launch overhead removed) beside the layer's span on CUDA events (launch
    gaps included), which shows where a small block is launch-bound.
    """
    specs = spec.specs(variant)
    if len(specs) != 1:
        raise UsageError(f"layers takes one variant, got {len(specs)}: {variant}")
    check_threads(threads)
    positive(runs, "--runs")
    groups = parse_show(show, LAYERS_GROUPS)
    outputs = Outputs(csv=csv)
    check_device(device)
    blocks_fit(specs, force)
    from mnv2prof.report.console import layers_report
    from mnv2prof.run.pipeline import block_layers, prepare

    rows = block_layers(prepare(specs[0]), threads, runs, device)
    frame, shown = layers_report(rows, specs[0], threads, runs, device, groups)
    show_all(shown)
    outputs.write_frame(frame)
