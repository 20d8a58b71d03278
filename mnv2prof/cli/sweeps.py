"""Measurement plans and their results: profiles, sweep, report, plot, explain."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from mnv2prof.cli.app import say, show, tell
from mnv2prof.cli.checks import blocks_fit
from mnv2prof.cli.options import Device, Results, check_device, check_threads, command
from mnv2prof.cli.output import Outputs
from mnv2prof.errors import UsageError
from mnv2prof.onnx.atomic import check_target


@command("profiles")
def list_profiles() -> None:
    """List the shipped profiles (profiles/*.toml): name, rows to measure, description."""
    from mnv2prof.run.profiles import ProfileError, iter_profiles, profiles_dir

    loaded = list(iter_profiles())
    if not loaded:
        raise UsageError(f"no profiles in {profiles_dir()} (set MNV2PROF_PROFILES to a folder)")
    good = [p for p in loaded if not isinstance(p, ProfileError)]
    width = max((len(p.name) for p in good), default=0)
    for p in good:
        say(f"{p.name:<{width}}  {p.rows:>4} rows  {p.description}")
    for bad in loaded:
        if isinstance(bad, ProfileError):
            raise bad


@command()
def sweep(
    profile: Annotated[
        str, typer.Argument(help="A profile name (see `mnv2prof profiles`) or a .toml path.")
    ],
    out: Annotated[str, typer.Option("--out", help="CSV the rows are appended to, one by one.")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Keep the rows already in --out; measure the rest.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing --out (from its first new row).")
    ] = False,
    device: Device = "cpu",
    cache: Annotated[
        str | None,
        typer.Option("--cache", help="warm or cold: replaces the profile's [measure] cache "
                     "(default warm)."),
    ] = None,
    force_size: Annotated[
        bool, typer.Option("--force-size", help="Run grid points whose static peak (activations "
                           "and weights, fp32) exceeds the memory available now.")
    ] = False,
) -> None:
    """Measure every row of a profile's grid, appending each row to --out as it is measured.

    Consecutive grid points are timed together, their bursts rotating round by round. A row is
    written whole and synced at once, so Ctrl-C or a kill leaves a valid CSV with every
    finished row; --resume then measures only the rows (by spec_hash: spec and threads) that
    are not in the file yet, and refuses a file timed in another cache mode.
    """
    from mnv2prof.run.profiles import load_profile, with_cache

    if resume and force:
        raise UsageError("--resume and --force exclude each other")
    check_target(out, "--out")
    plan = with_cache(load_profile(profile), cache)
    check_threads(max(point.threads for point in plan.points()))
    check_device(device)
    blocks_fit(plan.specs(), force_size, "--force-size")
    from mnv2prof.cli.progress import sweep_with_progress
    from mnv2prof.run.sweep import Sweep

    run = Sweep(plan, out, resume, force, device=device)  # checks --out (and resumes) first
    started = time.perf_counter()
    result = sweep_with_progress(run)
    tell(f"{plan.name}: wrote {result.written} rows to {out} ({result.skipped} already there, "
         f"{result.total} in the profile) in {time.perf_counter() - started:.1f} s")


@command()
def report(
    results: Results,
    fmt: Annotated[str, typer.Option("--format", help="md, latex (booktabs), csv or json.")] = "md",
    group_by: Annotated[
        list[str] | None,
        typer.Option("--group-by", help="Key column(s) to group and sort by (repeat or a,b); "
                     "default: the spec columns that vary."),
    ] = None,
    out: Annotated[
        str | None, typer.Option("--out", help="Write here instead of to stdout.")
    ] = None,
) -> None:
    """A paper-ready table of a results CSV: latency as median +- spread, units in headers."""
    from mnv2prof.report.paper import load_results, paper_table, render

    columns = [c.strip() for value in group_by or [] for c in value.split(",") if c.strip()]
    outputs = Outputs(out=out)
    text = render(paper_table(load_results(results), columns), fmt)
    if outputs:
        outputs.write({"out": text}, f"the {fmt} table")
    else:
        sys.stdout.write(text)


@command("plot")
def plot_command(
    results: Results,
    out: Annotated[str, typer.Option("--out", help="Figure file: .png, .pdf or .svg.")],
    kind: Annotated[
        str, typer.Option("--kind", help="macs-latency (log-log, a point per row), sweep or "
                          "roofline.")
    ] = "macs-latency",
    x: Annotated[
        str | None,
        typer.Option("--x", help="sweep: the swept column (default: the one spec column that "
                     "varies), e.g. exp_ratio."),
    ] = None,
    roofline: Annotated[
        bool, typer.Option("--roofline", help="Same as --kind roofline (needs `calibrate`).")
    ] = False,
) -> None:
    """Draw MACs against latency, latency and MACs (normalised) against a swept column, or the
    rows under this machine's roofline (intensity against achieved GFLOP/s)."""
    from mnv2prof.report.paper import load_results
    from mnv2prof.report.plot import plot

    outputs = Outputs(out=out)
    frame = load_results(results)
    kind = "roofline" if roofline else kind
    machine = None
    if kind == "roofline":
        from mnv2prof.measure.roofline import machine_for_frame

        machine = machine_for_frame(frame)
    outputs.write({"out": plot(frame, Path(out).suffix, kind, x, machine=machine)}, "the figure")


@command()
def explain(results: Results) -> None:
    """Fit latency against MACs, MACs + bytes moved, MACs + bytes + nodes: R^2, error, costs.

    Least squares with an intercept over every row of the CSV; coefficients in ns per MAC,
    ns per byte, us per node and an intercept in us, so the terms can be weighed.
    """
    from mnv2prof.report.explain import explain as fit_all
    from mnv2prof.report.explain import explain_report
    from mnv2prof.report.paper import load_results

    show(explain_report(fit_all(load_results(results), results), results))
