"""Commands on block variants: variants, compare, export, layers."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from mnv2prof.cli.app import say
from mnv2prof.cli.app import show as show_all
from mnv2prof.cli.options import (
    DEFAULT_VARIANT_LIST,
    Csv,
    DeployOptions,
    Device,
    Force,
    Json,
    ModelOptions,
    NoEager,
    SpecOptions,
    Threads,
    TimingOptions,
    Variants,
    block_plan,
    command,
    show_option,
    source_files,
    warn_threads,
)
from mnv2prof.cli.output import Outputs, check_folder, make_folder
from mnv2prof.files.atomic import check_folder_outputs, copy_atomic
from mnv2prof.errors import UsageError
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
    plan = block_plan(ctx, spec, timing, deploy, models, variants, chunks=chunks,
                      baseline=baseline, device=device, eager=not no_eager, force=force)
    groups = parse_show(show, COMPARE_GROUPS)
    outputs = Outputs(csv=csv, json=json, inputs=source_files(plan.subjects))
    from mnv2prof.cli.progress import plan_progress
    from mnv2prof.commands.compare import compare as measure
    from mnv2prof.report.results import compare_view

    with plan_progress(plan) as hooks:
        result = measure(plan, hooks)
    outputs.write_frame(result.frame)  # files first: a closed terminal cannot lose them
    show_all(compare_view(result, groups, chart=not no_chart))


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
    plan = block_plan(ctx, spec, TimingOptions(), DeployOptions(), models, variants,
                      force=force)
    if files := [s.variant for s in plan.subjects if getattr(s, "onnx_file", False)]:
        raise UsageError(f"--model {', '.join(files)}: already an ONNX file, nothing to export")
    check_folder(out, "--out")
    check_folder_outputs(out, [f"{s.name}.onnx" for s in plan.subjects], "--out",
                         source_files(plan.subjects))
    plan.check()  # before the folder is made: a refusal leaves nothing behind
    from mnv2prof.run.pipeline import exported
    from mnv2prof.files.cache import cache_dir

    cache_dir()  # a cache that cannot be used is refused before the folder is made, too
    out = make_folder(out, "--out")
    for block in plan.subjects:
        result = exported(block)  # the user's code in the worker
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
    from mnv2prof.measure.layers import MAX_RUNS
    from mnv2prof.measure.timing import check_count
    from mnv2prof.run.plan import block_plan as plan_of

    plan = plan_of(variant, models=models.model or (), shape=models.shape, threads=threads,
                   device=device, force=force, **dataclasses.asdict(spec))
    if len(plan.subjects) != 1:
        given = variant if variant is not None else ", ".join(models.model or [])
        raise UsageError(f"layers takes one variant or one --model, got "
                         f"{len(plan.subjects)}: {given}")
    check_count(runs, "runs", 1, MAX_RUNS)
    warn_threads(threads)
    groups = parse_show(show, LAYERS_GROUPS)
    outputs = Outputs(csv=csv, inputs=source_files(plan.subjects))
    plan.check()
    from mnv2prof.report.console import layers_report
    from mnv2prof.run.pipeline import layer_rows, prepare

    rows = layer_rows(prepare(plan.subjects[0]), threads, runs, device)
    frame, shown = layers_report(rows, plan.subjects[0], threads, runs, device, groups)
    outputs.write_frame(frame)
    show_all(shown)
