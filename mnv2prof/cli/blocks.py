"""Commands on block variants: variants, compare, export, layers."""

from __future__ import annotations

from typing import Annotated

import typer

from mnv2prof.cli.app import say
from mnv2prof.cli.app import show as show_all
from mnv2prof.run.fits import subjects_fit
from mnv2prof.cli.options import (
    Force,
    DEFAULT_VARIANT_LIST,
    Csv,
    DeployOptions,
    Device,
    Json,
    ModelOptions,
    NoEager,
    SpecOptions,
    Threads,
    TimingOptions,
    Variants,
    check_device,
    check_threads,
    command,
    positive,
    row_name,
    show_option,
    source_files,
    subjects,
)
from mnv2prof.cli.output import Outputs, check_folder, make_folder
from mnv2prof.errors import UsageError
from mnv2prof.models.variants import BlockSpec
from mnv2prof.report.views import COMPARE_GROUPS, LAYERS_GROUPS, parse_show


@command("variants")
def list_variants() -> None:
    """List the block variants, one line each: the built-in ones, then those installed packages
    offer through the `mnv2prof.variants` entry-point group.

    Your own block needs no registration: give it as PATH.py:NAME or package.module:NAME
    wherever a variant is taken (--variants, --baseline, --relative-to, a profile's variants).
    """
    from mnv2prof.models.plugins import ENTRY_POINT_GROUP, entry_points
    from mnv2prof.models.variants import VARIANTS

    installed = {name: ep for name, ep in entry_points().items() if name not in VARIANTS}
    width = max(map(len, [*VARIANTS, *installed]))
    for info in VARIANTS.values():
        say(f"{info.name:<{width}}  {info.summary}")
    for name, ep in installed.items():
        dist = getattr(ep, "dist", None)
        where = f"{dist.name} {dist.version}: " if dist else ""
        say(f"{name:<{width}}  {where}{ep.value} (entry point {ENTRY_POINT_GROUP})")


@command()
def compare(
    ctx: typer.Context,
    spec: SpecOptions,
    timing: TimingOptions,
    deploy: DeployOptions,
    models: ModelOptions,
    variants: Variants = DEFAULT_VARIANT_LIST,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="Row the x columns divide by: a variant (or its "
                     "PATH.py:NAME), a model, or mbv2-streamed/kK. Default: conv when it is "
                     "among the rows, else the first.", show_default=False),
    ] = None,
    csv: Csv = None,
    json: Json = None,
    chunks: Annotated[
        str | None,
        typer.Option("--chunks", help="Chunk counts for mbv2-streamed, e.g. 1,2,6: one row each "
                     "(mbv2-streamed/kK; 1 is mbv2 itself). Default: t, the paper's t pieces "
                     "(section 5.1).",
                     show_default=False),
    ] = None,
    device: Device = "cpu",
    no_eager: NoEager = False,
    show: show_option(COMPARE_GROUPS) = None,
    no_chart: Annotated[
        bool, typer.Option("--no-chart", help="Leave out the MACs-against-latency bars.")
    ] = False,
    force: Force = False,
) -> None:
    """Export, count and time block variants and models; show MACs beside latency and memory.

    Each variant (a built-in, or your own block as PATH.py:NAME) and each --model is exported to
    ONNX (cached, checked, equal to the torch module), its MACs, elementwise ops, peak
    activation memory and weight bytes are counted from the graph, and its onnxruntime CPU
    latency is measured in bursts that rotate between the rows (--cache says in which cache
    state); the torch module is then timed eagerly in a phase of its own. The ratio columns
    divide by the --baseline row. With --model and no --variants, only the models are measured.
    With --device cuda a second table gives the GPU columns.
    """
    from mnv2prof.models.variants import parse_chunk_list, with_chunks

    measured = with_chunks(subjects(ctx, spec, variants, models),
                           parse_chunk_list(chunks) if chunks is not None else None)
    labels = [s.label for s in measured]
    baseline = row_name(baseline) if baseline else ("conv" if "conv" in labels else labels[0])
    if baseline not in labels and baseline not in {s.variant for s in measured}:
        raise UsageError(f"--baseline {baseline!r} is not among the rows ({', '.join(labels)})")
    groups = parse_show(show, COMPARE_GROUPS)
    timing_spec = timing.spec()
    targets = deploy.target_list()
    outputs = Outputs(csv=csv, json=json, inputs=source_files(measured))
    check_device(device)
    subjects_fit(measured, force)
    from mnv2prof.cli.progress import measure_with_progress
    from mnv2prof.measure.roofline import add_roofline, load_machine
    from mnv2prof.report.console import compare_report, subjects_title
    from mnv2prof.run.frame import records_frame
    from mnv2prof.report.notes import run_notes
    from mnv2prof.run.deploy import rows_of

    run = measure_with_progress(rows_of(measured, targets), timing_spec, device,
                                eager=not no_eager, calibration=deploy.calibration)
    machine = load_machine(timing.threads)  # measured by `calibrate`, never inside compare
    frame = add_roofline(records_frame(run.records, baseline), machine)
    runtimes = " and ".join(dict.fromkeys(t.runtime for t in targets))
    title = (f"{subjects_title(spec.title, measured)}, {runtimes} CPU, {timing.threads} "
             f"thread(s), cache {timing.cache}")
    from mnv2prof.run.history import slow_state_note

    slow = slow_state_note(frame)  # a run spent wholly in the machine's slow state
    notes = [*run_notes(run), *([slow] if slow else [])]
    show_all(compare_report(frame, title, baseline, run.harness_floor, notes, machine,
                            timing.threads, device, groups, chart=not no_chart,
                            budget_s=timing_spec.budget_s))
    outputs.write_frame(frame)


@command()
def export(
    ctx: typer.Context,
    out: Annotated[str, typer.Option("--out", help="Folder to write the .onnx files to.")],
    spec: SpecOptions,
    models: ModelOptions,
    variants: Variants = DEFAULT_VARIANT_LIST,
    force: Force = False,
) -> None:
    """Write each variant's (and --model's) checked ONNX file (parity with torch proven) to
    --out."""
    exported = subjects(ctx, spec, variants, models)
    if files := [s.variant for s in exported if not isinstance(s, BlockSpec) and s.onnx_file]:
        raise UsageError(f"--model {', '.join(files)}: already an ONNX file, nothing to export")
    check_folder(out, "--out")
    subjects_fit(exported, force)  # before the folder is made: a refusal leaves nothing behind
    from mnv2prof.files.atomic import copy_atomic
    from mnv2prof.artifacts.export import export_cached
    from mnv2prof.files.cache import cache_dir

    cache_dir()  # a cache that cannot be used is refused before the folder is made, too
    out = make_folder(out, "--out")
    from mnv2prof.artifacts.sources import block_source, model_source

    for block in exported:
        source = block_source(block) if isinstance(block, BlockSpec) else model_source(block)
        result = export_cached(source)
        target = out / f"{block.name}.onnx"
        copy_atomic(result.path, target)
        parity = "cached" if result.cached else f"max abs diff {result.max_abs_diff:.2e}"
        say(f"{target}  ({parity})")


@command("layers")
def layers_command(
    variant: Annotated[
        str | None,
        typer.Argument(help="One variant (see `mnv2prof variants`), or PATH.py:NAME for your "
                       "own block; or give --model instead.", show_default=False),
    ] = None,
    spec: SpecOptions = SpecOptions(),
    models: ModelOptions = ModelOptions(),
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
    """One row per node onnxruntime runs (after its fusions): MACs, bytes, kernel time, for a
    block or a --model.

    Kernel times come from onnxruntime's profiler (10 warm-up runs dropped, median of --runs);
    each fused node is mapped back to the exported nodes it computes, and named after the
    block's layer (conv_pw, conv_dw, ...). Compare a node's share of the time with its share
    of the MACs: the depthwise conv takes more time than its MACs say.

    With --device cuda the rows are the block's layers run eagerly by torch on the GPU: the
    kernels' time (launch overhead removed) beside the layer's span on CUDA events (launch
    gaps included), which shows where a small block is launch-bound.
    """
    if (variant is None) == (not models.model):
        raise UsageError("layers takes one variant or one --model")
    measured = spec.specs(variant) if variant is not None else models.specs()
    if len(measured) != 1:
        given = variant if variant is not None else ", ".join(models.model or [])
        raise UsageError(f"layers takes one variant or one --model, got {len(measured)}: {given}")
    check_threads(threads)
    positive(runs, "--runs")
    groups = parse_show(show, LAYERS_GROUPS)
    outputs = Outputs(csv=csv, inputs=source_files(measured))
    check_device(device)
    subjects_fit(measured, force)
    from mnv2prof.report.console import layers_report
    from mnv2prof.run.pipeline import layer_rows, prepare

    rows = layer_rows(prepare(measured[0]), threads, runs, device)
    frame, shown = layers_report(rows, measured[0], threads, runs, device, groups)
    show_all(shown)
    outputs.write_frame(frame)
