"""Whole models: profile (any ONNX file), network (the papers' networks), memory-table."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from mnv2prof.cli.app import show as show_all
from mnv2prof.cli.app import stderr
from mnv2prof.cli.options import (
    Cache,
    Csv,
    DeployOptions,
    Device,
    Force,
    Threads,
    TimingOptions,
    command,
    given,
    show_option,
    source_files,
    warn_threads,
)
from mnv2prof.cli.output import Outputs
from mnv2prof.run.fits import subjects_fit
from mnv2prof.report.views import COMPARE_GROUPS, NETWORK_GROUPS, parse_show

NetworkArch = Annotated[str, typer.Argument(help="mobilenetv2 or mobilenetv1 (the papers' "
                                                 "tables).")]
AnyNetwork = Annotated[str, typer.Argument(help="mobilenetv2 or mobilenetv1 (the papers' tables), "
                                                "or any model as PATH.py:NAME or "
                                                "package.module:NAME (its top-level stages).")]
PAPER_FLAGS = {"width": "--width", "resolution": "--resolution", "classes": "--classes",
               "streamed": "--streamed"}
Width = Annotated[
    float, typer.Option("--width", help="Width multiplier alpha (channels x alpha, rounded to 8).")
]
NetResolution = Annotated[int, typer.Option("--resolution", "-r", help="Input side, pixels.")]


@command("profile")
def profile_command(
    model: Annotated[str, typer.Argument(help="The model: an ONNX file, or PATH.py:NAME or "
                                              "package.module:NAME (NAME called with no "
                                              "arguments returns an nn.Module).",
                                         show_default=False)],
    timing: TimingOptions,
    shape: Annotated[
        list[str] | None,
        typer.Option("--shape", help="Dims of an input: INPUT=D0xD1x... (repeatable), needed "
                     "for an ONNX file's symbolic dims; or D0xD1x... for the only input "
                     "(a torch model: default 1x3x224x224)."),
    ] = None,
    layers: Annotated[
        bool, typer.Option("--layers", help="Also show one row per node onnxruntime runs: MACs, "
                           "bytes, time.")
    ] = False,
    csv: Csv = None,
    show: show_option(COMPARE_GROUPS) = None,
    deploy: DeployOptions = DeployOptions(),
    force: Force = False,
) -> None:
    """Count and time any model: params, MACs, elementwise ops, memory, latency.

    An ONNX file is checked first (ONNX checker; external data must sit in the model's folder).
    Its inputs with symbolic dims need --shape, except a symbolic batch dim alone, which is set
    to 1 (and said so); its params are counted on its graph. A torch model (PATH.py:NAME) is
    exported like a block and its params are its module's. Ops without a cost handler are
    listed, never counted as zero in silence.
    """
    from mnv2prof.run.plan import model_plan

    groups = parse_show(show, COMPARE_GROUPS)
    torch_model = ":" in model and not Path(model).exists()
    outputs = Outputs(csv=csv, inputs={"MODEL": model.rpartition(":")[0] if torch_model else model})
    plan = model_plan(model, shape, **dataclasses.asdict(timing), **dataclasses.asdict(deploy),
                      force=force)
    warn_threads(plan.timing.threads)
    from mnv2prof.cli.progress import plan_progress
    from mnv2prof.commands.profile import profile
    from mnv2prof.report.results import profile_view

    with plan_progress(plan) as hooks:
        result = profile(plan, layers, hooks)
    outputs.write_frame(result.frame)
    show_all(profile_view(result, groups))


@command("network")
def network_command(
    ctx: typer.Context,
    arch: AnyNetwork,
    width: Width = 1.0,
    resolution: NetResolution = 224,
    classes: Annotated[int, typer.Option("--classes", help="Classifier outputs.")] = 1000,
    streamed: Annotated[
        bool, typer.Option("--streamed", help="Bottlenecks as mbv2-streamed in t chunks (paper "
                           "5.1).")
    ] = False,
    threads: Threads = 1,
    budget: Annotated[
        float, typer.Option("--budget", help="Seconds of timing (the network and each stage, "
                            "their bursts rotating); 0: count only.")
    ] = 5.0,
    cache: Cache = "warm",
    csv: Csv = None,
    device: Device = "cpu",
    show: show_option(NETWORK_GROUPS) = None,
    deploy: DeployOptions = DeployOptions(),
    shape: Annotated[
        str | None,
        typer.Option("--shape", help="Input dims of a PATH.py:NAME model (default 1x3x224x224).",
                     show_default=False),
    ] = None,
    force: Force = False,
) -> None:
    """A whole network per stage: MACs, params, peak activations and latency per stage.

    The papers' networks (mobilenetv2, mobilenetv1) give a row per row of the paper's table.
    Any other model (PATH.py:NAME, package.module:NAME) gives a row per top-level child, with a
    top-level features, layers, stages or blocks container opened one level (torchvision's and
    timm's layouts), in the order its forward runs them; what its forward computes outside them
    is one more row.

    The network is exported to ONNX once (cached, parity with torch proven); MACs are counted on
    the whole graph and grouped by stage through the exporter's name scopes; a stage's peak
    activation memory is the liveness peak of its own nodes; its latency share is its median when
    timed as its own ONNX sub-model (in bursts rotating with the others) over the sum of those
    medians. The total row is the whole network: its params, MACs, peak and latency as one
    session. With --device cuda one more line gives the whole network's GPU latency and peak.
    """
    from mnv2prof.run.plan import network_plan

    paper = dict(width=width, resolution=resolution, classes=classes, streamed=streamed)
    paper = {word: value if word in given(ctx, PAPER_FLAGS) else None
             for word, value in paper.items()}
    plan = network_plan(arch, **paper, shape=shape, budget=budget, threads=threads, cache=cache,
                        device=device, force=force, **dataclasses.asdict(deploy))
    warn_threads(threads)
    groups = parse_show(show, NETWORK_GROUPS)
    outputs = Outputs(csv=csv, inputs=source_files(plan.subjects))
    from mnv2prof.commands.network import network
    from mnv2prof.report.network_report import network_report

    with stderr.status(f"export + count + time {plan.subjects[0].name}"):
        result = network(plan)
    frame, shown = network_report(result, groups)
    outputs.write_frame(frame)
    show_all(shown)


@command("memory-table")
def memory_table_command(
    arch: NetworkArch = "mobilenetv2",
    act_dtype: Annotated[
        str, typer.Option("--act-dtype", help="Activation type the bytes are for: fp16 (the "
                          "paper's) or fp32.")
    ] = "fp16",
    width: Width = 1.0,
    resolution: NetResolution = 224,
    csv: Csv = None,
    force: Force = False,
) -> None:
    """Paper Table 3: the largest activations alive per spatial size, naive vs memory-efficient.

    Both schedules are read off exported graphs with the liveness walk: naive is the network as
    exported (each expanded tensor whole); memory-efficient builds every bottleneck as
    mbv2-streamed with t chunks (the paper's t pieces, section 5.1). kB = 1000 bytes, as the
    paper's table. The paper's column is shown for 224x224 at width 1.0.
    """
    from mnv2prof.models.networks import NetworkSpec
    from mnv2prof.run.memory_table import act_itemsize

    act_itemsize(act_dtype)
    spec = NetworkSpec(arch, width, resolution)  # validate before minutes of export
    outputs = Outputs(csv=csv)
    subjects_fit([spec], force)
    from mnv2prof.report.network_report import memory_table
    from mnv2prof.run.memory_table import memory_frame

    with stderr.status(f"export + walk {arch} (naive and streamed)"):
        frame = memory_frame(arch, act_dtype, resolution, width)
    title = (
        f"{arch} w{width:g} {resolution}x{resolution}, {act_dtype} activations: max channels and "
        "kB (1000 B) per spatial size; peak set = every tensor alive at the worst op of that size"
    )
    outputs.write_frame(frame)
    show_all([memory_table(frame, title)])
