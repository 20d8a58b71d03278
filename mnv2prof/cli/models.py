"""Whole models: profile (any ONNX file), network (the papers' networks), memory-table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from mnv2prof.cli.app import show as show_all
from mnv2prof.cli.app import stderr
from mnv2prof.cli.checks import Force, model_fits, network_fits
from mnv2prof.cli.options import (
    Cache,
    Csv,
    DeployOptions,
    Device,
    Threads,
    TimingOptions,
    check_device,
    check_threads,
    command,
    show_option,
)
from mnv2prof.cli.output import Outputs
from mnv2prof.errors import UsageError
from mnv2prof.report.views import COMPARE_GROUPS, NETWORK_GROUPS, parse_show

NetworkArch = Annotated[str, typer.Argument(help="mobilenetv2 or mobilenetv1.")]
Width = Annotated[
    float, typer.Option("--width", help="Width multiplier alpha (channels x alpha, rounded to 8).")
]
NetResolution = Annotated[int, typer.Option("--resolution", "-r", help="Input side, pixels.")]


@command("profile")
def profile_command(
    model: Annotated[Path, typer.Argument(help="The ONNX file to profile.", show_default=False)],
    timing: TimingOptions,
    shape: Annotated[
        list[str] | None,
        typer.Option("--shape", help="Dims of an input, INPUT=D0xD1x... (repeatable); needed "
                     "for symbolic dims."),
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
    """Count and time any ONNX model: params, MACs, elementwise ops, memory, latency.

    The file is checked first (ONNX checker; external data must sit in the model's folder).
    Inputs with symbolic dims need --shape, except a symbolic batch dim alone, which is set to 1
    (and said so). Ops without a cost handler are listed, never counted as zero in silence.
    """
    from mnv2prof.run import model_profile as mp

    shapes = mp.parse_shapes(shape or [])
    groups = parse_show(show, COMPARE_GROUPS)
    timing_spec = timing.spec()
    precisions, runtimes = deploy.targets()
    if runtimes != ("onnxruntime",):
        raise UsageError("--runtime executorch lowers a torch module (a block or a network); "
                         "an ONNX file runs on onnxruntime only")
    outputs = Outputs(csv=csv)
    count = mp.count_model_file(model, shapes)
    model_fits(count, force)
    int8 = mp.quantize_model(count, deploy.calibration) if "int8" in precisions else None
    from mnv2prof.report.console import model_report

    with stderr.status(f"timing {model.name} ({timing.budget:g} s budget, cache {timing.cache})"):
        profiled = mp.profile_model(count, mp.profile_timing(timing_spec), layers, int8)
    frame, shown = model_report(profiled, groups)
    show_all(shown)
    outputs.write_frame(frame)


@command("network")
def network_command(
    arch: NetworkArch,
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
    force: Force = False,
) -> None:
    """A whole network from the paper's table: MACs, params, peak activations and latency per stage.

    The network is exported to ONNX once (cached, parity with torch proven); MACs are counted on
    the whole graph and grouped by stage through the exporter's name scopes; a stage's peak
    activation memory is the liveness peak of its own nodes; its latency share is its median when
    timed as its own ONNX sub-model (in bursts rotating with the others) over the sum of those
    medians. The total row is the whole network: its params, MACs, peak and latency as one
    session. With --device cuda one more line gives the whole network's GPU latency and peak.
    """
    from mnv2prof.models.networks import NetworkSpec

    spec = NetworkSpec(arch, width, resolution, classes, streamed)
    if not (budget >= 0 and math.isfinite(budget)):
        raise UsageError(f"--budget must be 0 or a positive, finite number of seconds, got {budget}")
    if device == "cuda" and budget == 0:
        raise UsageError("--device cuda times the network: give --budget > 0")
    # spec() checks the threads (one warning line past the cores), the budget and the cache
    timing = TimingOptions(threads, budget, cache).spec() if budget > 0 else None
    if timing is None:
        check_threads(threads)
    groups = parse_show(show, NETWORK_GROUPS)
    precisions, runtimes = deploy.targets()
    outputs = Outputs(csv=csv)
    check_device(device)
    network_fits(spec, force)
    from mnv2prof.report.network_report import network_report
    from mnv2prof.run.network_profile import profile_network

    with stderr.status(f"export + count + time {spec.name}"):
        from mnv2prof.run.deploy import Target

        targets = tuple(Target(p, r) for r in runtimes for p in precisions)
        profile = profile_network(spec, timing, device=device, targets=targets,
                                  calibration=deploy.calibration)
    frame, shown = network_report(profile, groups)
    show_all(shown)
    outputs.write_frame(frame)


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
    network_fits(spec, force)
    from mnv2prof.report.network_report import memory_table
    from mnv2prof.run.memory_table import memory_frame

    with stderr.status(f"export + walk {arch} (naive and streamed)"):
        frame = memory_frame(arch, act_dtype, resolution, width)
    title = (
        f"{arch} w{width:g} {resolution}x{resolution}, {act_dtype} activations: max channels and "
        "kB (1000 B) per spatial size; peak set = every tensor alive at the worst op of that size"
    )
    show_all([memory_table(frame, title)])
    outputs.write_frame(frame)
