"""The `mnv2prof` command line: wires specs, pipeline and reports together.

Commands stay thin (after fastapi-cli): options are `Annotated[..., typer.Option(help=...)]`, the
docstring is the help, and domain errors become one red line on stderr and an exit code
(2 for usage errors), never a traceback. Core code never sees typer or click objects.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from typer.exceptions import TyperException

from mnv2prof.errors import Mnv2profError, UsageError
from mnv2prof.models.variants import (
    DEFAULT_VARIANTS,
    VARIANTS,
    BlockSpec,
    parse_chunk_list,
    parse_variant_list,
    with_chunks,
)

app = typer.Typer(
    name="mnv2prof",
    help="Indirect (MACs) against direct (latency, memory) cost of MobileNetV2-style blocks.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
# Wide tables must not be squeezed to 80 columns when stdout is a file or a CI log.
stdout = Console(width=None if sys.stdout.isatty() else 240)
stderr = Console(stderr=True)


# Spec options, shared by every command that builds blocks (one vocabulary: see variants.py).
Channels = Annotated[
    int, typer.Option("--channels", "-c", help="Channels in and out of the block (in_chs = out_chs).")
]
Resolution = Annotated[int, typer.Option("--resolution", "-r", help="Square input side, pixels.")]
Expansion = Annotated[
    int, typer.Option("--expansion", "-e", help="Expansion ratio t (mbv2*, fused; resnet: C/t).")
]
Kernel = Annotated[int, typer.Option("--kernel", "-k", help="Spatial kernel size k (odd).")]
Stride = Annotated[int, typer.Option("--stride", "-s", help="Stride of the block: 1 or 2.")]
Batch = Annotated[int, typer.Option("--batch", "-b", help="Batch size N.")]
DEFAULT_VARIANT_LIST = ",".join(DEFAULT_VARIANTS)
Variants = Annotated[
    str, typer.Option("--variants", help="Comma-separated variants to run (see `mnv2prof variants`).")
]
Threads = Annotated[
    int, typer.Option("--threads", help="onnxruntime intra-op threads (pinned; 1 by default).")
]
Budget = Annotated[
    float,
    typer.Option(
        "--budget",
        help="Seconds of timing per runtime: onnxruntime's phase, then eager torch's, each get "
        "this much for all variants together (a phase ends early once every variant's median "
        "CI is within +-2%).",
    ),
]
Cache = Annotated[
    str,
    typer.Option(
        "--cache",
        help="warm: each variant timed in bursts of back-to-back calls, the first call after a "
        "switch dropped (its own data in cache, as a bare loop); cold: the caches evicted before "
        "every timed call (a buffer of 2x the last-level cache written), weights from memory.",
    ),
]
NoEager = Annotated[
    bool, typer.Option("--no-eager", help="Do not time the torch module eagerly (its own phase).")
]
Device = Annotated[
    str,
    typer.Option(
        "--device",
        help="cpu, or cuda: also time on the GPU (eager with CUDA events, CUDA graph, "
        "onnxruntime's CUDA provider when installed) and measure GPU peak memory.",
    ),
]


def _check_device(device: str) -> None:
    """Refuse --device cuda without a GPU before anything is exported or written."""
    from mnv2prof.measure.cuda import check_device

    check_device(device)


def _specs(
    variants: str, channels: int, resolution: int, expansion: int, kernel: int, stride: int, batch: int
) -> list[BlockSpec]:
    return [
        BlockSpec(
            name,
            in_chs=channels,
            resolution=resolution,
            exp_ratio=expansion,
            kernel_size=kernel,
            stride=stride,
            batch=batch,
        )
        for name in parse_variant_list(variants)
    ]


def _positive(value: float, flag: str) -> None:
    if not value > 0:
        raise UsageError(f"{flag} must be positive, got {value}")


def _check_threads(threads: int) -> None:
    """--threads must be positive; more than the usable cores is allowed, with one warning line."""
    from mnv2prof.measure.env import oversubscription_warning

    _positive(threads, "--threads")
    if warning := oversubscription_warning(threads):
        stderr.print(f"[yellow]mnv2prof: {warning}[/]", highlight=False, soft_wrap=True)


def _timing(threads: int, budget: float, cache: str = "warm"):
    """The TimingSpec of the --threads, --budget and --cache options, checked."""
    from mnv2prof.measure.latency import CACHE_MODES, TimingSpec

    _check_threads(threads)
    _positive(budget, "--budget")
    if cache not in CACHE_MODES:
        raise UsageError(f"--cache must be one of {', '.join(CACHE_MODES)}, got {cache!r}")
    return TimingSpec(threads=threads, budget_s=budget, cache=cache)


@app.command("variants")
def list_variants() -> None:
    """List the block variants, one line each."""
    width = max(map(len, VARIANTS))
    for info in VARIANTS.values():
        stdout.print(f"{info.name:<{width}}  {info.summary}", highlight=False, soft_wrap=True)


@app.command()
def compare(
    channels: Channels = 32,
    resolution: Resolution = 56,
    expansion: Expansion = 6,
    kernel: Kernel = 3,
    stride: Stride = 1,
    batch: Batch = 1,
    variants: Variants = DEFAULT_VARIANT_LIST,
    baseline: Annotated[
        str, typer.Option("--baseline", help="Variant the ratio columns divide by.")
    ] = "conv",
    threads: Threads = 1,
    budget: Budget = 2.0,
    csv: Annotated[
        Path | None,
        typer.Option("--csv", help="Also write the rows (spec, metrics, environment) to this CSV."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the rows as JSON records.")
    ] = None,
    chunks: Annotated[
        str,
        typer.Option(
            "--chunks",
            help="Chunk counts for mbv2-streamed, e.g. 1,2,6: one row each (mbv2-streamed/kK).",
        ),
    ] = "1",
    device: Device = "cpu",
    cache: Cache = "warm",
    no_eager: NoEager = False,
) -> None:
    """Export, count and time block variants; show MACs beside latency and memory.

    Each variant is exported to ONNX (cached), its MACs, elementwise ops, peak activation memory
    and weight bytes are counted from the graph, and its onnxruntime CPU latency is measured in
    bursts that rotate between the variants (--cache says in which cache state); the torch
    module is then timed eagerly in a phase of its own. The ratio columns divide by the
    --baseline variant.
    With --device cuda a second table gives the GPU columns.
    """
    _check_device(device)
    specs = _specs(variants, channels, resolution, expansion, kernel, stride, batch)
    specs = with_chunks(specs, parse_chunk_list(chunks))
    labels = [s.label for s in specs]
    if baseline not in labels:
        raise UsageError(f"--baseline {baseline!r} is not among the rows ({', '.join(labels)})")
    timing = _timing(threads, budget, cache)
    from mnv2prof.report.console import check_writable

    check_writable(csv)
    check_writable(json_out)

    from mnv2prof.report.console import compare_table, records_frame, table_notes, write_frame

    run = _run_with_progress(specs, timing, device, eager=not no_eager)
    frame = records_frame(run.records, baseline)
    from mnv2prof.measure.roofline import add_roofline, load_machine, roofline_notes

    machine = load_machine(threads)  # measured by `calibrate`, never inside compare
    frame = add_roofline(frame, machine)
    title = (
        f"C={channels} {resolution}x{resolution} t={expansion} k={kernel} s={stride} N={batch}, "
        f"onnxruntime CPU, {threads} thread(s), cache {cache}; 1 MAC = 1 multiply-accumulate, "
        "FLOPs = 2 x MACs"
    )
    stdout.print(compare_table(frame, title, baseline))
    notes = table_notes(frame, run.harness_floor) + roofline_notes(frame, machine, threads)
    for note in notes + [n for n in run.notes if device != "cuda"]:
        stdout.print(note, highlight=False, soft_wrap=True)
    if device == "cuda":
        from mnv2prof.report.cuda_report import gpu_notes, gpu_table

        stdout.print(gpu_table(frame, title.split(", onnxruntime")[0] + ", GPU", baseline))
        for note in gpu_notes(frame, run.notes):
            stdout.print(note, highlight=False, soft_wrap=True)
    for path in (csv, json_out):
        if path is not None:
            write_frame(frame, path)
            stderr.print(f"wrote {len(frame)} rows to {path}", highlight=False)


def _progress_bar(unit: str = "") -> Progress:
    """The progress bar of every long command, on stderr: done / total, elapsed, ETA."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f}" + unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    )


def _run_with_progress(
    specs: Sequence[BlockSpec], timing, device: str = "cpu", eager: bool = True
):
    from mnv2prof.run.pipeline import Progress as Hooks
    from mnv2prof.run.pipeline import profile_run

    with _progress_bar() as bar:
        export_task = bar.add_task("export + count", total=len(specs))
        timing_task = bar.add_task("timing", total=100, start=False)

        def on_export(spec: BlockSpec, done: int, total: int) -> None:
            bar.update(export_task, completed=done, description=f"export + count {spec.name}")
            if done == total:
                bar.start_task(timing_task)

        def on_timing(fraction: float) -> None:
            bar.update(timing_task, completed=100 * fraction)

        return profile_run(
            specs, timing, progress=Hooks(on_export, on_timing), device=device, eager=eager
        )


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the .onnx files to.")],
    channels: Channels = 32,
    resolution: Resolution = 56,
    expansion: Expansion = 6,
    kernel: Kernel = 3,
    stride: Stride = 1,
    batch: Batch = 1,
    variants: Variants = DEFAULT_VARIANT_LIST,
) -> None:
    """Write each variant's checked ONNX file (parity with torch proven) to --out."""
    import shutil

    from mnv2prof.onnx.export import export_spec

    specs = _specs(variants, channels, resolution, expansion, kernel, stride, batch)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        result = export_spec(spec)
        target = out / f"{spec.name}.onnx"
        tmp = target.with_suffix(".onnx.tmp")
        shutil.copyfile(result.path, tmp)
        tmp.replace(target)
        parity = "cached" if result.cached else f"max abs diff {result.max_abs_diff:.2e}"
        stdout.print(f"{target}  ({parity})", highlight=False)


# `baseline` and `gate` take their rows from these flags or from a profile, never both.
_GATE_SPEC_FLAGS = {
    "channels": "--channels", "resolution": "--resolution", "expansion": "--expansion",
    "kernel": "--kernel", "stride": "--stride", "batch": "--batch", "variants": "--variants",
    "threads": "--threads",
}  # fmt: skip
GateProfile = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="A profile (name or .toml path) instead of the spec flags: every grid point, its "
        "variants timed together, with the profile's threads and budget_s (--budget overrides).",
    ),
]


def _explicit(ctx: typer.Context, names) -> list[str]:
    """The parameters among `names` given on the command line or by environment, not defaulted."""
    given = []
    for name in names:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name != "DEFAULT":
            given.append(name)
    return given


def _gate_profile(ctx: typer.Context, profile: str, budget: float, cache: str):
    """The profile to measure, its budget_s and cache replaced by an explicit --budget, --cache."""
    import dataclasses

    from mnv2prof.run.profiles import load_profile

    given = _explicit(ctx, _GATE_SPEC_FLAGS)
    if given:
        flags = ", ".join(_GATE_SPEC_FLAGS[n] for n in given)
        raise UsageError(
            f"--profile replaces the spec flags: drop {flags} (the profile's grid, variants and "
            "threads are measured)"
        )
    plan = load_profile(profile)
    if _explicit(ctx, ["budget"]):
        _positive(budget, "--budget")
        plan = dataclasses.replace(plan, timing=dataclasses.replace(plan.timing, budget_s=budget))
    if _explicit(ctx, ["cache"]):
        timing = _timing(plan.timing.threads, plan.timing.budget_s, cache)
        plan = dataclasses.replace(plan, timing=dataclasses.replace(plan.timing, cache=cache))
    return plan


def _measure_profile(plan) -> list:
    """(grid point, its records) for every point of `plan`, measured as `sweep` measures them
    (in batches of points timed together), onnxruntime only."""
    from mnv2prof.run.sweep import batches, measure_points

    measured = []
    with _progress_bar(" rows") as bar:
        task = bar.add_task(plan.name, total=plan.rows)
        for batch in batches([(p, p.specs) for p in plan.points()], plan.batch_rows):
            bar.update(task, description=f"{plan.name}: {batch[0][0].label} ..")
            records = iter(measure_points(plan, batch, eager=False))
            for point, specs in batch:
                measured.append((point, [next(records) for _ in specs]))
                bar.advance(task, len(specs))
    return measured


@app.command("baseline")
def baseline_command(
    ctx: typer.Context,
    out: Annotated[
        Path,
        typer.Option("--out", help="CSV to store the rows in (raw samples, cost, environment)."),
    ],
    profile: GateProfile = None,
    channels: Channels = 32,
    resolution: Resolution = 56,
    expansion: Expansion = 6,
    kernel: Kernel = 3,
    stride: Stride = 1,
    batch: Batch = 1,
    variants: Variants = DEFAULT_VARIANT_LIST,
    threads: Threads = 1,
    budget: Budget = 2.0,
    cache: Cache = "warm",
) -> None:
    """Measure block variants and store the rows as a baseline for `mnv2prof gate`.

    The CSV keeps every latency sample (one per round, in round order), the spec, the counted
    cost, the cache mode and the environment, so a later gate can test significance and refuse a
    foreign machine or another cache mode. Only onnxruntime is timed (the gate's runtime).
    With --profile, every grid point of the profile is measured (as `sweep` does) instead of
    the spec flags, and all its rows go to the one CSV, written once at the end.
    """
    from mnv2prof.report.console import check_writable, compare_table, records_frame, write_frame

    if profile is not None:
        plan = _gate_profile(ctx, profile, budget, cache)
        check_writable(out)
        measured = _measure_profile(plan)
        frame = records_frame([record for _, records in measured for record in records])
        write_frame(frame, out)
        for point, records in measured:
            title = f"baseline {plan.name}: {point.label}, {point.threads} thread(s)"
            stdout.print(compare_table(records_frame(records), title, None))
        stderr.print(
            f"wrote {len(frame)} baseline rows ({len(measured)} grid points) to {out}",
            highlight=False,
        )
        return
    specs = _specs(variants, channels, resolution, expansion, kernel, stride, batch)
    timing = _timing(threads, budget, cache)
    check_writable(out)
    run = _run_with_progress(specs, timing, eager=False)
    frame = records_frame(run.records)
    write_frame(frame, out)
    title = f"baseline C={channels} {resolution}x{resolution} t={expansion} k={kernel} s={stride} "
    stdout.print(
        compare_table(frame, title + f"N={batch}, {threads} thread(s), cache {cache}", None)
    )
    stderr.print(f"wrote {len(frame)} baseline rows to {out}", highlight=False)


@app.command("gate")
def gate_command(
    ctx: typer.Context,
    baseline: Annotated[
        Path, typer.Option("--baseline", help="Baseline CSV written by `mnv2prof baseline`.")
    ],
    profile: GateProfile = None,
    channels: Channels = 32,
    resolution: Resolution = 56,
    expansion: Expansion = 6,
    kernel: Kernel = 3,
    stride: Stride = 1,
    batch: Batch = 1,
    variants: Variants = DEFAULT_VARIANT_LIST,
    threads: Threads = 1,
    budget: Budget = 2.0,
    cache: Cache = "warm",
    max_slowdown: Annotated[
        float,
        typer.Option(
            "--max-slowdown", help="Tolerated slowdown, a fraction (0.10 = 10%) of the baseline."
        ),
    ] = 0.10,
    alpha: Annotated[
        float,
        typer.Option("--alpha", help="Significance level of the one-sided test, per row."),
    ] = 0.01,
    relative_to: Annotated[
        str | None,
        typer.Option(
            "--relative-to",
            help="Compare latencies as per-round ratios to this variant of the same run "
            "(survives a change of machine).",
        ),
    ] = None,
    allow_cost_change: Annotated[
        bool,
        typer.Option(
            "--allow-cost-change", help="Let MACs, params, memory or bytes moved differ."
        ),
    ] = False,
    allow_env_mismatch: Annotated[
        bool,
        typer.Option(
            "--allow-env-mismatch",
            help="Compare absolute latencies from another CPU, thread count or library stack.",
        ),
    ] = False,
    markdown_summary: Annotated[
        Path | None,
        typer.Option("--markdown-summary", help="Also write the verdicts as Markdown (CI summary)."),
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Also write JUnit XML, one test case per row."),
    ] = None,
) -> None:
    """Measure again and pass or fail each row against --baseline (exit 0 pass, 1 regression).

    A row fails when its counted cost changed (unless --allow-cost-change) or when it is slower
    than the baseline by more than --max-slowdown AND a one-sided Mann-Whitney U test on the raw
    samples says so at --alpha. Faster rows are reported, never failed. Rows are matched by
    variant; a missing or malformed baseline, rows that do not match, or a baseline timed in
    another --cache mode exit 2. Only onnxruntime is timed.
    With --profile (the one the baseline was taken with) rows are matched by spec and threads,
    and --relative-to divides each row by the reference variant of its own grid point.
    """
    from mnv2prof import gate
    from mnv2prof.measure.env import current_environment
    from mnv2prof.report.gate_report import junit_xml, notes, verdict_table
    from mnv2prof.report.gate_report import markdown_summary as to_markdown
    from mnv2prof.report.console import check_writable, records_frame, write_atomic

    if profile is not None:
        plan = _gate_profile(ctx, profile, budget, cache)
        mode = plan.timing.cache
        match_by, names = "spec", plan.variants
        keys = [
            gate.row_key({"spec": s.name, "threads": point.threads}, match_by)
            for point in plan.points()
            for s in point.specs
        ]
        where = f"the profile's variants ({', '.join(names)})"
    else:
        specs = _specs(variants, channels, resolution, expansion, kernel, stride, batch)
        timing = _timing(threads, budget, cache)
        mode = timing.cache
        match_by, keys = "variant", [s.variant for s in specs]
        names, where = keys, f"--variants ({variants})"
    policy = gate.GatePolicy(max_slowdown, alpha, allow_cost_change)
    if relative_to is not None and relative_to not in names:
        raise UsageError(f"--relative-to {relative_to!r} is not among {where}")
    check_writable(markdown_summary)
    check_writable(junit)
    stored = gate.load_baseline(baseline, match_by)
    gate.check_rows(stored, keys, match_by)
    gate.check_cache_mode(stored, mode, baseline)
    # a profile's threads are part of each row's key, matched above
    current_threads = None if profile is not None else threads
    differences = gate.environment_differences(stored, current_environment(), current_threads)
    gate.check_environment(differences, relative_to is not None, allow_env_mismatch)

    if profile is not None:
        records = [record for _, point_records in _measure_profile(plan) for record in point_records]
    else:
        records = _run_with_progress(specs, timing, eager=False).records
    result = gate.decide(
        stored, records_frame(records), policy, relative_to, differences, match_by
    )
    stdout.print(verdict_table(result))
    for line in notes(result):
        stdout.print(line, highlight=False, soft_wrap=True)
    if markdown_summary is not None:
        write_atomic(markdown_summary, to_markdown(result))
    if junit is not None:
        write_atomic(junit, junit_xml(result))
    raise typer.Exit(code=result.exit_code)


@app.command("profiles")
def list_profiles() -> None:
    """List the shipped profiles (profiles/*.toml): name, rows to measure, description."""
    from mnv2prof.run.profiles import ProfileError, iter_profiles, profiles_dir

    loaded = list(iter_profiles())
    good = [p for p in loaded if not isinstance(p, ProfileError)]
    if not loaded:
        raise UsageError(f"no profiles in {profiles_dir()} (set MNV2PROF_PROFILES to a folder)")
    width = max((len(p.name) for p in good), default=0)
    for p in good:
        stdout.print(f"{p.name:<{width}}  {p.rows:>4} rows  {p.description}", highlight=False,
                     soft_wrap=True)
    for error in loaded:
        if isinstance(error, ProfileError):
            raise error


@app.command()
def sweep(
    profile: Annotated[
        str, typer.Argument(help="A profile name (see `mnv2prof profiles`) or a .toml path.")
    ],
    out: Annotated[Path, typer.Option("--out", help="CSV the rows are appended to, one by one.")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Keep the rows already in --out; measure the rest.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing --out (from its first new row).")
    ] = False,
    device: Device = "cpu",
    cache: Annotated[
        str | None,
        typer.Option(
            "--cache", help="warm or cold: replaces the profile's [measure] cache (default warm)."
        ),
    ] = None,
) -> None:
    """Measure every row of a profile's grid, appending each row to --out as it is measured.

    Each grid point's variants are timed together, their bursts rotating round by round. A row
    is written whole and synced at once, so Ctrl-C or a kill leaves a valid CSV with every
    finished row; --resume then measures only the rows (by spec_hash: spec and threads) that
    are not in the file yet, and refuses a file timed in another cache mode.
    """
    import time

    from mnv2prof.run.profiles import load_profile
    from mnv2prof.run.sweep import Sweep, SweepHooks

    _check_device(device)
    if resume and force:
        raise UsageError("--resume and --force exclude each other")
    plan = load_profile(profile)
    if cache is not None:
        import dataclasses

        timing = _timing(plan.timing.threads, plan.timing.budget_s, cache)
        plan = dataclasses.replace(plan, timing=timing)
    for threads in sorted({point.threads for point in plan.points()})[-1:]:
        _check_threads(threads)
    run = Sweep(plan, out, resume, force, device=device)
    started = time.perf_counter()
    with _progress_bar(" rows") as bar:
        task = bar.add_task(plan.name, total=plan.rows)

        def on_start(total: int, skipped: int) -> None:
            bar.update(task, total=total, completed=skipped)

        def on_batch(points, rows: int) -> None:
            first, last = points[0], points[-1]
            label = first.label if first is last else f"{first.label} .. {last.label}"
            threads = f", {first.threads} thread(s)" if "threads" not in dict(first.values) else ""
            bar.update(task, description=f"{plan.name}: {label}{threads}")

        def on_row(record) -> None:
            bar.advance(task)

        result = run.run(SweepHooks(on_start, on_batch, on_row))
    stderr.print(
        f"{plan.name}: wrote {result.written} rows to {out} ({result.skipped} already there, "
        f"{result.total} in the profile) in {time.perf_counter() - started:.1f} s",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def report(
    results: Annotated[Path, typer.Argument(help="A CSV written by `sweep` or `compare --csv`.")],
    fmt: Annotated[
        str, typer.Option("--format", help="md, latex (booktabs), csv or json.")
    ] = "md",
    group_by: Annotated[
        list[str] | None,
        typer.Option("--group-by", help="Key column(s) to group and sort by (repeat or a,b); "
                     "default: the spec columns that vary."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of to stdout.")
    ] = None,
) -> None:
    """A paper-ready table of a results CSV: latency as median +- spread, units in headers."""
    from mnv2prof.report.console import check_writable, write_atomic
    from mnv2prof.report.paper import load_results, paper_table, render

    columns = [c.strip() for value in group_by or [] for c in value.split(",") if c.strip()]
    check_writable(out)
    text = render(paper_table(load_results(results), columns), fmt)
    if out is None:
        sys.stdout.write(text)
    else:
        write_atomic(out, text)
        stderr.print(f"wrote {out}", highlight=False)


@app.command("plot")
def plot_command(
    results: Annotated[Path, typer.Argument(help="A CSV written by `sweep` or `compare --csv`.")],
    out: Annotated[Path, typer.Option("--out", help="Figure file: .png, .pdf or .svg.")],
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
    from mnv2prof.report.plot import plot
    from mnv2prof.report.paper import load_results

    frame = load_results(results)
    kind = "roofline" if roofline else kind
    machine = None
    if kind == "roofline":
        from mnv2prof.measure.roofline import machine_for_frame

        machine = machine_for_frame(frame)
    plot(frame, out, kind, x, machine=machine)
    stderr.print(f"wrote {out}", highlight=False)


@app.command("profile")
def profile_command(
    model: Annotated[Path, typer.Argument(help="The ONNX file to profile.", show_default=False)],
    shape: Annotated[
        list[str] | None,
        typer.Option(
            "--shape",
            help="Dims of an input, INPUT=D0xD1x... (repeatable); needed for symbolic dims.",
        ),
    ] = None,
    layers: Annotated[
        bool,
        typer.Option(
            "--layers", help="Also show one row per node onnxruntime runs: MACs, bytes, time."
        ),
    ] = False,
    threads: Threads = 1,
    budget: Annotated[
        float, typer.Option("--budget", help="Seconds of timing (at least 5 runs are timed).")
    ] = 2.0,
    csv: Annotated[
        Path | None,
        typer.Option("--csv", help="Also write the model's row (the columns compare writes)."),
    ] = None,
    cache: Cache = "warm",
) -> None:
    """Count and time any ONNX model: params, MACs, elementwise ops, memory, latency.

    The file is checked first (ONNX checker; external data must sit in the model's folder).
    Inputs with symbolic dims need --shape, except a symbolic batch dim alone, which is set to 1
    (and said so). Ops without a cost handler are listed, never counted as zero in silence.
    """
    from mnv2prof.run import model_profile as mp
    from mnv2prof.measure.env import current_environment
    from mnv2prof.report.console import check_writable, compare_table, records_frame, write_frame

    shapes = mp.parse_shapes(shape or [])
    _timing(threads, budget, cache)
    check_writable(csv)
    count = mp.count_model_file(model, shapes)
    with stderr.status(f"timing {model.name} ({budget:g} s budget, cache {cache})"):
        latency = mp.time_model(count, mp.profile_timing(threads, budget, cache))
    record = mp.model_record(count, latency, threads, current_environment(), cache)
    frame = records_frame([record])
    stdout.print(compare_table(frame, mp.summary_title(count, threads), None))
    for note in count.notes:
        stdout.print(note, highlight=False, soft_wrap=True)
    if layers:
        from mnv2prof.report.console import layers_frame, layers_table

        runs = mp.layer_runs(latency, budget)
        title = (
            f"{model.name}: nodes onnxruntime runs (CPU, {threads} thread(s)), median of {runs} "
            "profiled runs; 1 MAC = 1 multiply-accumulate"
        )
        rows = mp.profile_model_layers(count, threads, runs)
        stdout.print(layers_table(layers_frame(rows), title))
    if csv is not None:
        write_frame(frame, csv)
        stderr.print(f"wrote 1 row to {csv}", highlight=False)


NetworkArch = Annotated[str, typer.Argument(help="mobilenetv2 or mobilenetv1.")]
Width = Annotated[
    float, typer.Option("--width", help="Width multiplier alpha (channels x alpha, rounded to 8).")
]
NetResolution = Annotated[int, typer.Option("--resolution", "-r", help="Input side, pixels.")]


@app.command("network")
def network_command(
    arch: NetworkArch,
    width: Width = 1.0,
    resolution: NetResolution = 224,
    classes: Annotated[int, typer.Option("--classes", help="Classifier outputs.")] = 1000,
    streamed: Annotated[
        bool,
        typer.Option("--streamed", help="Bottlenecks as mbv2-streamed in t chunks (paper 5.1)."),
    ] = False,
    threads: Threads = 1,
    budget: Annotated[
        float,
        typer.Option(
            "--budget",
            help="Seconds of timing (the network and each stage, their bursts rotating); "
            "0: count only.",
        ),
    ] = 5.0,
    csv: Annotated[
        Path | None,
        typer.Option("--csv", help="Also write the stage rows and the total to this CSV."),
    ] = None,
    device: Device = "cpu",
    cache: Cache = "warm",
) -> None:
    """A whole network from the paper's table: MACs, params, peak activations and latency per stage.

    The network is exported to ONNX once (cached, parity with torch proven); MACs are counted on
    the whole graph and grouped by stage through the exporter's name scopes; a stage's peak
    activation memory is the liveness peak of its own nodes; its latency share is its median when
    timed as its own ONNX sub-model (in bursts rotating with the others) over the sum of those
    medians.
    The total row is the whole network: its params, MACs, peak and latency as one session.
    With --device cuda one more line gives the whole network's GPU latency and peak memory.
    """
    _check_device(device)
    from mnv2prof.report.network_report import latency_note, stage_frame, stage_table
    from mnv2prof.models.networks import NetworkSpec, profile_network
    from mnv2prof.report.console import check_writable, write_frame

    spec = NetworkSpec(arch, width, resolution, classes, streamed)
    if budget < 0:
        raise UsageError(f"--budget must be 0 or positive, got {budget}")
    if device == "cuda" and budget == 0:
        raise UsageError("--device cuda times the network: give --budget > 0")
    timing = _timing(threads, budget, cache) if budget > 0 else None
    _positive(threads, "--threads")
    check_writable(csv)
    with stderr.status(f"export + count + time {spec.name}"):
        profile = profile_network(spec, timing)
    frame = stage_frame(profile)
    title = (
        f"{spec.name}: paper Table 2 rows, onnxruntime CPU, {threads} thread(s); 1 MAC = 1 "
        "multiply-accumulate; peak act at fp32; latency share = stage median / sum of stage medians"
    )
    stdout.print(stage_table(frame, title))
    if note := latency_note(profile):
        stdout.print(note, highlight=False, soft_wrap=True)
    if profile.unhandled_ops:
        stdout.print(
            f"ops without a cost handler (not counted): {profile.unhandled_ops}", highlight=False
        )
    if device == "cuda":
        from mnv2prof.measure.cuda import measure_module
        from mnv2prof.report.cuda_report import module_line
        from mnv2prof.models.networks import build_network

        with stderr.status(f"GPU: time {spec.name}"):
            gpu = measure_module(lambda: build_network(spec), spec.input_shape, timing)
        line = module_line(spec.name, gpu.eager, gpu.graph, gpu.peak_bytes, gpu.env.gpu_name)
        stdout.print(line, highlight=False, soft_wrap=True)
    if csv is not None:
        write_frame(frame, csv)
        stderr.print(f"wrote {len(frame)} rows to {csv}", highlight=False)


@app.command("memory-table")
def memory_table_command(
    arch: NetworkArch = "mobilenetv2",
    act_dtype: Annotated[
        str,
        typer.Option(
            "--act-dtype", help="Activation type the bytes are for: fp16 (the paper's) or fp32."
        ),
    ] = "fp16",
    width: Width = 1.0,
    resolution: NetResolution = 224,
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Also write the rows to this CSV.")
    ] = None,
) -> None:
    """Paper Table 3: the largest activations alive per spatial size, naive vs memory-efficient.

    Both schedules are read off exported graphs with the liveness walk: naive is the network as
    exported (each expanded tensor whole); memory-efficient builds every bottleneck as
    mbv2-streamed with t chunks (the paper's t pieces, section 5.1). kB = 1000 bytes, as the
    paper's table. The paper's column is shown for 224x224 at width 1.0.
    """
    from mnv2prof.run.memory_table import act_itemsize, memory_frame
    from mnv2prof.report.network_report import memory_table
    from mnv2prof.models.networks import NetworkSpec
    from mnv2prof.report.console import check_writable, write_frame

    act_itemsize(act_dtype)
    NetworkSpec(arch, width, resolution)  # validate before minutes of export
    check_writable(csv)
    with stderr.status(f"export + walk {arch} (naive and streamed)"):
        frame = memory_frame(arch, act_dtype, resolution, width)
    title = (
        f"{arch} w{width:g} {resolution}x{resolution}, {act_dtype} activations: max channels and "
        "kB (1000 B) per spatial size; peak set = every tensor alive at the worst op of that size"
    )
    stdout.print(memory_table(frame, title))
    if csv is not None:
        write_frame(frame, csv)
        stderr.print(f"wrote {len(frame)} rows to {csv}", highlight=False)


@app.command("layers")
def layers_command(
    variant: Annotated[str, typer.Argument(help="One variant (see `mnv2prof variants`).")],
    channels: Channels = 32,
    resolution: Resolution = 56,
    expansion: Expansion = 6,
    kernel: Kernel = 3,
    stride: Stride = 1,
    batch: Batch = 1,
    threads: Threads = 1,
    runs: Annotated[
        int, typer.Option("--runs", help="Profiled runs the kernel times are the median of.")
    ] = 50,
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Also write the per-node rows to this CSV.")
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="cpu: nodes onnxruntime runs; cuda: the block's layers run eagerly on the GPU "
            "(kernel time from torch's profiler, span from CUDA events).",
        ),
    ] = "cpu",
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
    _check_device(device)
    specs = _specs(variant, channels, resolution, expansion, kernel, stride, batch)
    if len(specs) != 1:
        raise UsageError(f"layers takes one variant, got {len(specs)}: {variant}")
    (spec,) = specs
    _check_threads(threads)
    _positive(runs, "--runs")
    from mnv2prof.run.pipeline import prepare
    from mnv2prof.report.console import check_writable, layers_frame, layers_table, write_frame

    check_writable(csv)
    if device == "cuda":
        frame = _gpu_layers(prepare(spec), runs)
    else:
        from mnv2prof.measure.layers import profile_layers

        frame = layers_frame(profile_layers(prepare(spec).model_path, threads, runs))
        title = (
            f"{spec.name}: nodes onnxruntime runs (CPU, {threads} thread(s)), median of {runs} "
            "profiled runs; 1 MAC = 1 multiply-accumulate"
        )
        stdout.print(layers_table(frame, title))
    if csv is not None:
        write_frame(frame, csv)
        stderr.print(f"wrote {len(frame)} rows to {csv}", highlight=False)


def _gpu_layers(prepared, runs: int):
    """`layers --device cuda`: print the per-layer GPU table and notes; return the rows."""
    from mnv2prof.measure import cuda
    from mnv2prof.report.cuda_report import eager_layers_frame, eager_layers_notes, eager_layers_table
    from mnv2prof.measure.eager_layers import profile_eager_layers

    spec = prepared.spec
    rows = profile_eager_layers(prepared.module, prepared.model_path, spec.input_shape, "cuda", runs)
    frame = eager_layers_frame(rows)
    title = (
        f"{spec.name}: layers run eagerly by torch on {cuda.gpu_environment().gpu_name}, median "
        f"of {runs} calls; 1 MAC = 1 multiply-accumulate"
    )
    stdout.print(eager_layers_table(frame, title))
    for note in eager_layers_notes(frame):
        stdout.print(note, highlight=False)
    return frame


@app.command()
def calibrate(
    threads: Threads = 1,
    budget: Annotated[
        float, typer.Option("--budget", help="Seconds of timing of the probes.")
    ] = 3.0,
) -> None:
    """Measure this machine's peak GFLOP/s and GB/s in onnxruntime; store them for the roofline.

    Peak compute is the best run of a 1024^3 MatMul or a 3x3 conv (the faster); bandwidth the
    best run of an Add over arrays beyond the last-level cache (memory) and of a chain of Adds
    on L2-resident arrays (cache). The profile is keyed by CPU model and --threads; `compare` then adds each block's
    roofline bound and efficiency.
    """
    _check_threads(threads)
    _positive(budget, "--budget")
    from mnv2prof.measure.roofline import calibrate as measure
    from mnv2prof.measure.roofline import save_machine

    with stderr.status(f"calibrating at {threads} thread(s) ({budget:g} s budget)"):
        machine = measure(threads, budget)
    path = save_machine(machine)
    stdout.print(f"peak compute: {machine.peak_gflops:,.1f} GFLOP/s", highlight=False)
    stdout.print(f"memory bandwidth: {machine.dram_gbs:,.1f} GB/s (beyond the last-level cache), "
                 f"{machine.cache_gbs:,.1f} GB/s (L2-resident)", highlight=False)
    stdout.print(f"ridge point: {machine.ridge_flop_per_byte:,.2f} FLOP/B; {machine.cpu_model}, "
                 f"{threads} thread(s)", highlight=False)
    stderr.print(f"wrote {path}", highlight=False)


@app.command()
def explain(
    results: Annotated[Path, typer.Argument(help="A CSV written by `sweep` or `compare --csv`.")],
) -> None:
    """Fit latency against MACs, MACs + bytes moved, MACs + bytes + nodes: R^2, error, costs.

    Least squares with an intercept over every row of the CSV; coefficients in ns per MAC,
    ns per byte, us per node and an intercept in us, so the terms can be weighed.
    """
    from rich.table import Table

    from mnv2prof.report.explain import explain as fit_all
    from mnv2prof.report.explain import explain_notes
    from mnv2prof.report.paper import load_results

    fits = fit_all(load_results(results), results)
    table = Table(title=f"{results}: latency median (ms) fitted by least squares, {fits[0].n} rows",
                  title_justify="left", header_style="bold")
    for header in ("model", "R^2", "mean abs error (%)", "coefficients"):
        table.add_column(header, justify="left" if header in ("model", "coefficients") else "right")
    for f in fits:
        table.add_row(f.name, "-" if f.missing else f"{f.r2:.3f}",
                      "-" if f.missing else f"{100 * f.mape:.1f}", f.coefficient_text())
    stdout.print(table)
    for note in explain_notes(fits):
        stdout.print(note, highlight=False, soft_wrap=True)


@app.command("guidelines")
def guidelines_command(
    threads: Threads = 1,
    budget: Annotated[
        float, typer.Option("--budget", help="Seconds of timing per guideline.")
    ] = 2.0,
) -> None:
    """ShuffleNet V2's guidelines G1-G4 at equal MACs: the paper's claim beside this machine.

    Each guideline's blocks are exported (cached), counted and timed (bursts rotating); the verdict
    reads the 95% CI of the round-paired latency ratio of the block the paper calls slower to
    the one it calls fastest (holds: slower by more than 5%).
    """
    _check_threads(threads)
    _positive(budget, "--budget")
    from rich.table import Table

    from mnv2prof.run.guidelines import guidelines, run_guideline

    for guideline in guidelines():
        with stderr.status(f"{guideline.key}: export + count + time ({budget:g} s budget)"):
            result = run_guideline(guideline, threads, budget)
        table = Table(title=f"{guideline.key}, onnxruntime CPU, {threads} thread(s); "
                      "1 MAC = 1 multiply-accumulate", title_justify="left", header_style="bold")
        table.add_column("block", no_wrap=True)
        for header in ("MACs (M)", "bytes moved (MiB)", "nodes", "latency median (ms)",
                       f"/ {guideline.reference} (x)", "95% CI (x)"):
            table.add_column(header, justify="right")
        for row in result.rows:
            table.add_row(row.config.label, f"{row.macs / 1e6:,.2f}",
                          f"{row.bytes_moved / 2**20:,.2f}", str(row.nodes),
                          f"{row.median_ms:.3f}", f"{row.ratio.median:.3f}",
                          f"{row.ratio.ci_low:.3f}-{row.ratio.ci_high:.3f}")
        stdout.print(table)
        stdout.print(result.sentence(), highlight=False, soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: run the app, turn every error into one line and an exit code."""
    try:
        code = app(
            args=list(argv) if argv is not None else None,
            prog_name="mnv2prof",
            standalone_mode=False,
        )
    except TyperException as exc:  # click's usage errors (bad flag, 'abc' for an integer...)
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            return 2  # typer has already printed the help
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        _error(exc.format_message() + hint)
        return exc.exit_code
    except typer.Abort:
        _error("aborted")
        return 130
    except Mnv2profError as exc:
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    return code if isinstance(code, int) else 0


def _error(message: str) -> None:
    from rich.markup import escape  # messages quote TOML tables such as [grid]: not markup

    stderr.print(f"[red]mnv2prof: error:[/] {escape(message)}", highlight=False, soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
