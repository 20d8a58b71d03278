"""Latency without running it: `predictor build` (once, on the target) and `predict` (anywhere)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from mnv2prof.cli.app import app, show, stderr, tell
from mnv2prof.cli.options import Csv, SpecOptions, command, reflow
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
    from mnv2prof.predict.build import BuildPlan
    from mnv2prof.predict.space import Space, load_space

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
    from mnv2prof.predict.build import build

    with stderr.status("predictor build") as status:
        def on_progress(p) -> None:
            status.update(f"predictor build: {p.phase}, {p.kernels} kernels, {p.samples} "
                          f"samples, {p.elapsed_s / 60:.1f} of {p.budget_s / 60:g} min")

        if ray is None:
            return build(plan, on_progress)
        from mnv2prof.predict.remote import cluster_runner
        from mnv2prof.run.cluster import connect

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
    model: Annotated[str, typer.Argument(help="MODEL.onnx, PATH.py:NAME (a model, or a block "
                                              "with the spec flags) or a built-in VARIANT.",
                                         show_default=False)],
    spec: SpecOptions,
    shape: Annotated[
        str | None,
        typer.Option("--shape", help="Input dims: D0xD1x... of a torch model, or INPUT=dims of "
                     "an ONNX input.", show_default=False),
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
    """Predict a model's latency from its kernels: a table per kernel (predicted ms, share,
    MACs) and the total with an interval, beside the FLOPs baseline (a x MACs + b).

    The kernels are read off onnxruntime's optimized graph of the model (one session, no
    timing); each is predicted by its kind's regressor. --check times the model as compare does
    and gives the error. A predictor built in another environment (CPU, ISA, threads,
    onnxruntime) is refused unless --force.
    """
    from mnv2prof.predict.folder import load_predictor
    from mnv2prof.predict.subject import predict_subject

    folder = predictor or os.environ.get("MNV2PROF_PREDICTOR") or DEFAULT_PREDICTOR
    loaded = load_predictor(folder, force)
    outputs = Outputs(csv=csv, inputs={"MODEL": model.rpartition(":")[0] if ":" in model
                                       and not Path(model).exists() else model})
    with stderr.status(f"predict {model}" + (" and measure it" if check else "")):
        result = predict_subject(model, loaded, shape=shape, check=check, **_block_values(spec))
    show(prediction_view(result))
    outputs.write_frame(result.frame())


def _block_values(spec: SpecOptions) -> dict[str, int]:
    return {"in_chs": spec.channels, "resolution": spec.resolution, "exp_ratio": spec.expansion,
            "kernel_size": spec.kernel, "stride": spec.stride, "batch": spec.batch}


_ACT_SHORT = {"relu6": "relu6", "relu": "relu", "hswish": "hswish", "hsigmoid": "hsig",
              "sigmoid": "sigm", "other": "act"}


def _detail(kernel) -> str:
    """A kernel's shape in at most 26 characters: `3x3/2 32>64 112 relu6+` (kernel/stride,
    channels, side (HxW when not square), fused activation, + a fused residual sum)."""
    f = kernel.features
    if kernel.kind in ("conv", "dwconv"):
        k, s, h, w = (int(f[n]) for n in ("kernel_size", "stride", "h", "w"))
        chs = f"dw{int(f['cin'])}" if kernel.kind == "dwconv" else \
            f"{int(f['cin'])}>{int(f['cout'])}"
        act = next((_ACT_SHORT[a.removeprefix("act_")] for a, v in f.items()
                    if a.startswith("act_") and v and a != "act_none"), "")
        side = f"{h}" if h == w else f"{h}x{w}"
        return f"{k}x{k}/{s} {chs} {side} {act}".rstrip() + ("+" if f.get("sum") else "")
    if kernel.kind == "gemm":
        return f"{int(f['k'])}>{int(f['n'])}"
    if "c" in f:
        return f"{int(f['c'])}x{int(f['h'])}x{int(f['w'])}"
    return kernel.op


def prediction_view(result) -> list:
    """The per-kernel table and the lines under it (total, interval, baseline, check)."""
    from rich.table import Table

    p = result.prediction
    table = Table(title=f"{result.name}: predicted per kernel (onnxruntime's nodes, MACs as "
                  "run)", title_justify="left")
    for header in ("#", "kind", "shape", "MACs M", "ms", "share %"):
        table.add_column(header, justify="left" if header in ("kind", "shape") else "right")
    summed = sum(r.ms for r in p.kernels if r.ms is not None) or 1.0
    for i, row in enumerate(p.kernels, 1):
        ms = "-" if row.ms is None else f"{row.ms:.4f}"
        share = "-" if row.ms is None else f"{100 * row.ms / summed:.1f}"
        table.add_row(str(i), row.kernel.kind or row.kernel.op, _detail(row.kernel),
                      f"{row.kernel.macs / 1e6:.2f}", ms, share)
    lines = [table, f"predicted {p.total_ms:.3f} ms (interval {p.low_ms:.3f}-{p.high_ms:.3f}), "
             f"{len(p.kernels)} kernels, {p.macs / 1e6:.1f} M MACs; FLOPs baseline "
             f"(a x MACs + b) {p.flops_ms:.3f} ms"]
    if p.unpredicted:
        from collections import Counter

        counts = Counter(r.why for r in p.unpredicted)
        lines.append(f"{len(p.unpredicted)} kernel(s) not predicted, left out of the total: "
                     + "; ".join(f"{why} x{n}" for why, n in counts.items()))
    if result.measured_ms:
        flops = p.flops_ms / result.measured_ms - 1
        lines.append(f"measured {result.measured_ms:.3f} ms (fastest call, as compare): "
                     f"prediction {result.error_rel:+.1%}, FLOPs baseline {flops:+.1%}")
    return lines
