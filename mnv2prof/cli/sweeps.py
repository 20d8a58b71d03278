"""Measurement plans and their results: profiles, sweep, report, plot, explain."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from mnv2prof.cli.app import say, show, tell
from mnv2prof.cli.options import Device, Results, command, profile_file, source_files, warn_threads
from mnv2prof.cli.output import Outputs
from mnv2prof.errors import UsageError
from mnv2prof.files.atomic import check_not_input, check_target


@command("profiles")
def list_profiles() -> None:
    """List the shipped profiles (profiles/*.toml): name, rows to measure, description.

    Rows are counted without making the grid's points; a profile past the point limit is
    listed with its count and the limit."""
    from mnv2prof.profiles.shipped import MAX_POINTS, ProfileError, iter_profiles, profiles_dir

    loaded = list(iter_profiles())
    if not loaded:
        raise UsageError(f"no profiles in {profiles_dir()} (set MNV2PROF_PROFILES to a folder)")
    good = [p for p in loaded if not isinstance(p, ProfileError)]
    width = max((len(p.name) for p in good), default=0)
    for p in good:
        large = (f" ({p.point_count:,} grid points: past the limit of {MAX_POINTS:,}, see "
                 "sweep --max-points)" if p.point_count > MAX_POINTS else "")
        say(f"{p.name:<{width}}  {p.rows:>4} rows  {p.description}{large}")
    for bad in loaded:
        if isinstance(bad, ProfileError):
            raise bad


@dataclasses.dataclass(frozen=True)
class SweepOptions:
    """How a sweep runs: resumed or replaced, which shard, where (--ray), its size limits."""

    resume: Annotated[
        bool, typer.Option("--resume", help="Keep the rows already in --out; measure the rest.")
    ] = False
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing --out (from its first new row).")
    ] = False
    cache: Annotated[
        str | None,
        typer.Option("--cache", help="warm or cold: replaces the profile's \\[measure] cache "
                     "(default warm)."),
    ] = None
    force_size: Annotated[
        bool, typer.Option("--force-size", help="Run grid points whose static peak (activations "
                           "and weights, fp32) exceeds the memory available now.")
    ] = False
    shard: Annotated[
        str | None,
        typer.Option("--shard", help="K/N: measure only shard K of N (1 <= K <= N) of the "
                     "grid's rows, split by spec_hash, for a CI matrix with one job per runner; "
                     "join the parts with `mnv2prof merge`."),
    ] = None
    ray: Annotated[
        str | None,
        typer.Option("--ray", metavar="ADDRESS", help="Run the grid points as tasks on a Ray "
                     "cluster: auto (the one `ray start` started here), local (start one on "
                     "this machine) or HOST:PORT of the head. Each node must offer the "
                     "mnv2prof_timer resource once: one timing per host. Needs the ray extra: "
                     "pip install 'mnv2prof\\[ray]'. "
                     "See docs/scale.md."),
    ] = None
    max_points: Annotated[
        int | None,
        typer.Option("--max-points", min=1, help="Allow a grid of up to N points (default "
                     "10,000: a larger profile is refused before planning)."),
    ] = None


@command()
def sweep(
    profile: Annotated[
        str, typer.Argument(help="A profile name (see `mnv2prof profiles`) or a .toml path.")
    ],
    out: Annotated[str, typer.Option("--out", help="CSV the rows are appended to, one by one.")],
    opts: SweepOptions,
    device: Device = "cpu",
) -> None:
    """Measure every row of a profile's grid, appending each row to --out as it is measured.

    Consecutive grid points are timed together, their bursts rotating round by round. A row is
    written whole and synced at once, so Ctrl-C or a kill leaves a valid CSV with every
    finished row; --resume then measures only the rows (by spec_hash: spec and threads) that
    are not in the file yet, and refuses a file timed in another cache mode.

    With --ray, each grid point is a task on a cluster host and the rows come back here to
    --out, each with its host's environment and a host column; a point whose host died is
    retried elsewhere, or reported missing (exit 3) for --resume to measure.
    """
    from mnv2prof.run.plan import profile_plan
    from mnv2prof.sweeps.shard import parse_shard

    if opts.resume and opts.force:
        raise UsageError("--resume and --force exclude each other")
    part = parse_shard(opts.shard) if opts.shard is not None else None
    from mnv2prof.sweeps.ray_address import check_ray_address

    # before the plan: a wrong or dead address costs seconds at most
    address = check_ray_address(opts.ray) if opts.ray is not None else None
    check_target(out, "--out")
    inputs = profile_file(profile, "PROFILE")
    check_not_input(out, "--out", inputs)
    plan = profile_plan(inputs["PROFILE"], cache=opts.cache, max_points=opts.max_points,
                        force=opts.force_size, force_flag="--force-size")
    check_not_input(out, "--out", source_files(plan.subjects))
    if address is None:  # on a cluster, the hosts' cores and devices count, not this machine's
        warn_threads(max(point.threads for point in plan.profile.points()))
    plan = dataclasses.replace(plan, device=device if address is None else "cpu")
    from mnv2prof.cli.progress import sweep_progress
    from mnv2prof.commands.sweep import check_complete, sweep as measure

    started = time.perf_counter()
    if address is not None:
        tell(f"mnv2prof: connecting to Ray ({address}) ...")
    with sweep_progress(plan.profile) as hooks:
        result = measure(plan, out, resume=opts.resume, force=opts.force, device=device,
                         shard=part, ray=address, hooks=hooks, on_cluster=_say_hosts)
    scope = f"shard {part[0]}/{part[1]} of the profile" if part else "the profile"
    rows = f"{result.written} row{'' if result.written == 1 else 's'}"
    tell(f"{plan.profile.name}: wrote {rows} to {out} ({result.skipped} already there, "
         f"{result.total} in {scope}) in {time.perf_counter() - started:.1f} s")
    for reason in result.reasons:
        tell(f"mnv2prof: missing: {reason}")
    check_complete(result, out)


def _say_hosts(handle) -> None:
    hosts = ", ".join(f"{host}" for host in handle.hosts)
    tell(f"mnv2prof: {len(handle.hosts)} host(s) time, one point at a time each: {hosts}")


@command()
def merge(
    files: Annotated[
        list[Path], typer.Argument(metavar="CSV...", show_default=False,
                                   help="Results CSVs to join, e.g. the parts of a --shard "
                                   "sweep.")
    ],
    out: Annotated[str, typer.Option("--out", help="The merged CSV (written whole, atomically).")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing --out.")
    ] = False,
) -> None:
    """Join results CSVs (the parts of a sharded sweep) into one, rows in the order given.

    The files must have the same columns (one version wrote them) and one cache mode; a row
    (spec_hash, per host when there is a host column) in two files, or twice in one, is
    refused. Each value is copied as written, so the merged file is the parts' rows, byte for
    byte, and `sweep --resume` can extend it.
    """
    from mnv2prof.sweeps.merge import merge_files, merge_text

    outputs = Outputs(out=out, inputs={"CSV": files})  # checked before anything is read
    if not force and Path(out).is_file():
        raise UsageError(f"{out} exists: pass --force to replace it")
    frame = merge_files(files)
    outputs.write({"out": merge_text(frame)}, f"{len(frame)} rows from {len(files)} file(s)")


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
    outputs = Outputs(out=out, inputs={"CSV": results})
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
        str, typer.Option("--kind", help="macs-latency (log-log, a point per row, on diagonals "
                          "of constant GMAC/s), ratio (latency ratio against MACs ratio to conv "
                          "or the first row), sweep or roofline.")
    ] = "macs-latency",
    x: Annotated[
        str | None,
        typer.Option("--x", help="sweep: the swept column (default: the one spec column that "
                     "varies), e.g. exp_ratio."),
    ] = None,
    roofline: Annotated[
        bool, typer.Option("--roofline", help="Same as --kind roofline (needs `calibrate`).")
    ] = False,
    ratio: Annotated[bool, typer.Option("--ratio", help="Same as --kind ratio.")] = False,
    families: Annotated[
        bool, typer.Option("--families", help="Colour the points by family (mbv2-noskip and "
                           "mbv2-streamed are mbv2's), with a legend.")
    ] = False,
) -> None:
    """Draw MACs against latency (the fastest call), their ratios to a baseline row, latency and
    MACs (normalised) against a swept column, or the rows under this machine's roofline
    (intensity against achieved GFLOP/s). The suffix of --out picks PNG, SVG or PDF."""
    from mnv2prof.report.paper import load_results
    from mnv2prof.report.plot import plot

    outputs = Outputs(out=out, inputs={"CSV": results})
    frame = load_results(results)
    kind = "roofline" if roofline else "ratio" if ratio else kind
    machine = None
    if kind == "roofline":
        from mnv2prof.run.machine_file import machine_for_frame

        machine = machine_for_frame(frame)
    outputs.write({"out": plot(frame, Path(out).suffix, kind, x, machine, families)}, "the figure")


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

