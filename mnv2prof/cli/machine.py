"""This machine: calibrate (its roofline ceilings), guidelines (ShuffleNet V2's G1-G4 on it)."""

from __future__ import annotations

from typing import Annotated

import typer

from mnv2prof.cli.app import say, show, stderr, tell
from mnv2prof.cli.options import Threads, command, warn_threads
from mnv2prof.run.plan import timing_spec


@command()
def calibrate(
    threads: Threads = 1,
    budget: Annotated[
        float, typer.Option("--budget", help="Seconds of timing of the probes.")
    ] = 3.0,
) -> None:
    """Measure this machine's peak GFLOP/s and GB/s in onnxruntime; store them for the roofline.

    Peak compute is the best call of a 1024^3 MatMul or a 3x3 conv (the faster); bandwidth the
    best call of an Add over arrays beyond the last-level cache (memory) and of a chain of Adds
    on L2-resident arrays (cache). The profile is keyed by CPU model and --threads; `compare`
    then adds each block's roofline bound and efficiency.
    """
    from mnv2prof.measure.roofline import calibrate as measure
    from mnv2prof.run.machine_file import save_machine
    from mnv2prof.report.machine_report import calibration_lines

    timing_spec(budget, threads)  # the one rule for both
    warn_threads(threads)
    with stderr.status(f"calibrating at {threads} thread(s) ({budget:g} s budget)"):
        machine = measure(threads, budget)
    path = save_machine(machine)
    for line in calibration_lines(machine):
        say(line)
    tell(f"wrote {path}")


@command("guidelines")
def guidelines_command(
    threads: Threads = 1,
    budget: Annotated[
        float, typer.Option("--budget", help="Seconds of timing per guideline.")
    ] = 2.0,
) -> None:
    """ShuffleNet V2's guidelines G1-G4 at equal MACs: the paper's claim beside this machine.

    Each guideline's blocks are exported (cached), counted and timed (bursts rotating); the
    verdict reads the 95% CI of the round-paired latency ratio of the block the paper calls
    slower to the one it calls fastest (holds: slower by more than 5%).
    """
    from mnv2prof.models.probes import guidelines
    from mnv2prof.report.machine_report import guideline_report
    from mnv2prof.run.guidelines import run_guideline

    timing_spec(budget, threads)  # the one rule for both
    warn_threads(threads)
    for guideline in guidelines():
        with stderr.status(f"{guideline.key}: export + count + time ({budget:g} s budget)"):
            result = run_guideline(guideline, threads, budget)
        show(guideline_report(result, threads))
