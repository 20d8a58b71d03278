"""Latency without running it: `predictor build` (once, on the target) and `predict` (anywhere)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from mnv2prof.cli.app import app, show, stderr, tell
from mnv2prof.cli.options import Csv, SpecOptions, command, reflow, source_files
from mnv2prof.cli.output import Outputs, check_folder
from mnv2prof.errors import UsageError

predictor_app = typer.Typer(help="Build a latency predictor on this machine (see docs/predictor.md).",
                            no_args_is_help=True)
app.add_typer(predictor_app, name="predictor")

DEFAULT_PREDICTOR = "predictor"  # a folder in the current one; $MNV2PROF_PREDICTOR first


def _subcommand(name: str):
    """`predictor_app.command(name)` with the docstring reflowed as the other commands' are."""
    return lambda func: predictor_app.command(name, help=reflow(func.__doc__ or ""))(func)


@_subcommand("build")
def build_command(
    out: Annotated[str, typer.Option("--out", help="The predictor folder to write (created).",
                                     show_default=False)],
    profile: Annotated[
        str | None,
        typer.Option("--profile", metavar="SPACE.toml", help="The space to sample: a TOML file "
                     "(docs/predictor.md); default: MobileNetV2/V3-style networks at 96-320 px, "
                     "widths 0.35-1.4x.", show_default=False),
    ] = None,
    budget_minutes: Annotated[
        float, typer.Option("--budget-minutes", help="Wall-clock minutes for the whole build "
                            "(sampling, fit, calibration); it stops early once every kernel "
                            "kind predicts its held-out kernels within 10%.")
    ] = 25.0,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the build in --out (kernels already "
                           "timed are kept).")
    ] = False,
    ray: Annotated[
        str | None,
        typer.Option("--ray", metavar="ADDRESS", help="Time the samples as tasks on a Ray "
                     "cluster: auto, local or HOST:PORT of the head; each node offers the "
                     "mnv2prof_timer resource once (docs/scale.md). Needs the ray extra."),
    ] = None,
) -> None:
    """Sample kernel configurations over a space, time each kernel alone, fit a regressor per
    kernel kind, and write the predictor folder.

    Kernels are the nodes onnxruntime runs after its fusions (read off its optimized graph), each
    timed alone on the harness compare uses. Sampling is adaptive: more samples around the
    kernels the current fit predicts worst. Every kernel is journaled as it is timed: Ctrl-C
    keeps them, and --resume carries on.
    """
    from mnv2prof.predictor.build import BuildPlan
    from mnv2prof.predictor.space import Space, load_space

    check_folder(out, "--out")
    space = load_space(profile) if profile is not None else Space()
    plan = BuildPlan(Path(out), space, budget_minutes * 60, resume)
    result = _build_with_progress(plan, ray)
    cal = result.calibration
    measured = (f"; {cal['networks']} calibration networks: scale {cal['scale']:.3f}, "
                f"interval {cal['interval'][0] - 1:+.1%} / {cal['interval'][1] - 1:+.1%}"
                if cal.get("networks") else "")
    tell(f"predictor: {result.kernels} kernels ({result.kernels_timed} timed now, "
         f"{result.kernels_per_s:.1f}/s) in {len(result.kinds)} kinds, sampling stopped by "
         f"{result.stopped}{measured}; wrote {out}")


def _build_with_progress(plan, ray: str | None):
    from mnv2prof.predictor.build import build

    with stderr.status("predictor build") as status:
        def on_progress(p) -> None:
            status.update(f"predictor build: {p.phase}, {p.kernels} kernels, {p.samples} "
                          f"samples, {p.elapsed_s / 60:.1f} of {p.budget_s / 60:g} min")

        if ray is None:
            return build(plan, on_progress)
        from mnv2prof.predictor.remote import cluster_runner
        from mnv2prof.sweeps.cluster import connect

        with connect(ray) as handle:  # its checks: the address, one timer per host
            tell(f"mnv2prof: {len(handle.hosts)} host(s) time, one sample at a time each")
            run = cluster_runner(handle, plan.space.threads, plan.space.kernel_budget_s)
            return build(plan, on_progress, run)


Predictor = Annotated[
    str | None,
    typer.Option("--predictor", metavar="DIR", help="The predictor folder (`predictor build "
                 "--out DIR`); default: $MNV2PROF_PREDICTOR, else ./predictor.",
                 show_default=False),
]


@command("predict")
def predict_command(
    variant: Annotated[
        str | None,
        typer.Argument(help="A block: a built-in variant, or PATH.py:NAME for your own, at the "
                       "spec flags; or give --model instead.", show_default=False),
    ] = None,
    spec: SpecOptions = SpecOptions(),
    model: Annotated[
        str | None,
        typer.Option("--model", help="A whole model instead: MODEL.onnx, or PATH.py:NAME (NAME "
                     "called with no arguments returns an nn.Module).", show_default=False),
    ] = None,
    shape: Annotated[
        str | None,
        typer.Option("--shape", help="Input dims of --model: D0xD1x... of a torch model, or "
                     "INPUT=dims of an ONNX input.", show_default=False),
    ] = None,
    predictor: Predictor = None,
    check: Annotated[
        bool, typer.Option("--check", help="Also measure the real latency (as compare does) "
                           "and report the error.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Use a predictor built in another environment.")
    ] = False,
    csv: Csv = None,
) -> None:
    """Predict a block's or a model's latency from its kernels: a table per kernel (predicted
    ms, share, MACs) and the total with an interval, beside the FLOPs baseline (a x MACs + b).

    The kernels are read off onnxruntime's optimized graph (one session, no timing); each is
    predicted by its kind's regressor. --check times it as compare does and gives the error. A
    predictor built in another environment (CPU, ISA, threads, onnxruntime) is refused unless
    --force.
    """
    from mnv2prof.predictor.folder import load_predictor
    from mnv2prof.predictor.subject import predict_subject
    from mnv2prof.report.predict_report import prediction_view

    plan = predict_plan(variant, model, shape, spec)
    loaded = load_predictor(predictor or os.environ.get("MNV2PROF_PREDICTOR")
                            or DEFAULT_PREDICTOR, force)
    outputs = Outputs(csv=csv, inputs=source_files(plan.subjects))
    label = plan.subjects[0].label
    with stderr.status(f"predict {label}" + (" and measure it" if check else "")):
        result = predict_subject(plan.check().subjects[0], loaded, check)
    outputs.write_frame(result.frame())
    show(prediction_view(result))


def predict_plan(variant: str | None, model: str | None, shape: str | None, spec: SpecOptions):
    """The plan of `predict`: one block at the spec flags, or one --model."""
    import dataclasses

    from mnv2prof.run.plan import block_plan, model_plan

    if (variant is None) == (model is None):
        raise UsageError("predict takes one block (VARIANT) or one --model")
    if model is not None:
        return model_plan(model, shape)
    if shape is not None:
        raise UsageError("--shape applies to --model; a block takes the spec flags "
                         "(--channels, --resolution, ...)")
    return block_plan([variant], eager=False, **dataclasses.asdict(spec))
