"""CI latency gates: baseline, gate."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from mnv2prof.cli.app import show as show_all
from mnv2prof.run.fits import subjects_fit
from mnv2prof.cli.options import (
    Force,
    DEFAULT_VARIANT_LIST,
    DeployOptions,
    ModelOptions,
    SpecOptions,
    TimingOptions,
    Variants,
    command,
    given,
    budget_seconds,
    row_name,
    profile_file,
    show_option,
    source_files,
    subjects,
)
from mnv2prof.cli.output import Outputs
from mnv2prof.errors import UsageError
from mnv2prof.report.views import GATE_GROUPS, parse_show

# `baseline` and `gate` take their rows from the spec flags or from a profile, never both.
SPEC_FLAGS = {
    "channels": "--channels", "resolution": "--resolution", "expansion": "--expansion",
    "kernel": "--kernel", "stride": "--stride", "batch": "--batch", "variants": "--variants",
    "threads": "--threads", "precision": "--precision", "runtime": "--runtime",
    "calibration": "--calibration", "model": "--model", "shape": "--shape",
}  # fmt: skip
GateProfile = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="A profile (name or .toml path) instead of the spec flags: every grid point, its "
        "variants timed together, with the profile's threads and budget_s (--budget overrides).",
    ),
]


@dataclasses.dataclass(frozen=True)
class GateOptions:
    """How a row is judged (gate.GatePolicy), and against what."""

    max_slowdown: Annotated[
        float, typer.Option("--max-slowdown", help="Tolerated slowdown, a fraction (0.10 = 10%) "
                            "of the baseline.")
    ] = 0.10
    alpha: Annotated[
        float, typer.Option("--alpha", help="Significance level of the one-sided test, per row.")
    ] = 0.01
    relative_to: Annotated[
        str | None,
        typer.Option("--relative-to", help="Compare latencies as per-round ratios to this variant "
                     "(or model, or PATH.py:NAME) of the same run (survives a change of "
                     "machine)."),
    ] = None
    allow_cost_change: Annotated[
        bool, typer.Option("--allow-cost-change", help="Let MACs, params, memory or bytes moved "
                           "differ.")
    ] = False
    allow_env_mismatch: Annotated[
        bool, typer.Option("--allow-env-mismatch", help="Compare absolute latencies from another "
                           "CPU, thread count or library stack.")
    ] = False

    def policy(self):
        from mnv2prof.gate import GatePolicy

        return GatePolicy(self.max_slowdown, self.alpha, self.allow_cost_change)


def gate_profile(ctx: typer.Context, profile: str, timing: TimingOptions):
    """The profile to measure, its budget_s and cache replaced by an explicit --budget, --cache."""
    from mnv2prof.run.profiles import load_profile, with_cache

    if flags := given(ctx, SPEC_FLAGS):
        shown = ", ".join(SPEC_FLAGS[n] for n in flags)
        raise UsageError(
            f"--profile replaces the spec flags: drop {shown} (the profile's grid, variants, "
            "threads, precisions and runtimes are measured)"
        )
    plan = with_cache(load_profile(profile), timing.cache if given(ctx, ["cache"]) else None)
    if not given(ctx, ["budget"]):
        return plan
    budget_seconds(timing.budget)
    return dataclasses.replace(plan, timing=dataclasses.replace(plan.timing, budget_s=timing.budget))


@command("baseline")
def baseline_command(
    ctx: typer.Context,
    out: Annotated[
        str, typer.Option("--out", help="CSV to store the rows in (samples, cost, environment).")
    ],
    spec: SpecOptions,
    timing: TimingOptions,
    deploy: DeployOptions,
    models: ModelOptions,
    profile: GateProfile = None,
    variants: Variants = DEFAULT_VARIANT_LIST,
    force: Force = False,
) -> None:
    """Measure block variants (and --model models) and store the rows as a baseline for
    `mnv2prof gate`.

    The CSV keeps every latency sample (one per round, in round order), the spec, the counted
    cost, the cache mode and the environment, so a later gate can test significance and refuse a
    foreign machine or another cache mode. Only onnxruntime is timed (the gate's runtime).
    With --profile, every grid point of the profile is measured (as `sweep` does) instead of
    the spec flags, and all its rows go to the one CSV, written once at the end.
    """
    if profile is not None:
        plan = gate_profile(ctx, profile, timing)
        inputs = {**profile_file(profile), **source_files(plan.subjects())}
        outputs = Outputs(out=out, inputs=inputs)
        subjects_fit(plan.subjects(), force)
    else:
        measured, timing_spec = subjects(ctx, spec, variants, models), timing.spec()
        targets = deploy.target_list()
        outputs = Outputs(out=out, inputs=source_files(measured))
        subjects_fit(measured, force)
    from mnv2prof.cli.progress import measure_profile_with_progress, measure_with_progress
    from mnv2prof.report.console import baseline_report, count_text, subjects_title
    from mnv2prof.run.deploy import rows_of

    if profile is not None:
        groups = [
            (f"baseline {plan.name}: {point.label}, {point.threads} thread(s)", records)
            for point, records in measure_profile_with_progress(plan)
        ]
    else:
        records = measure_with_progress(rows_of(measured, targets), timing_spec, eager=False,
                                        calibration=deploy.calibration).records
        title = (f"baseline {subjects_title(spec.title, measured)}, {timing.threads} "
                 f"thread(s), cache {timing.cache}")
        groups = [(title, records)]
    frame, shown = baseline_report(groups)
    show_all(shown)
    outputs.write_frame(frame, f"{count_text(len(frame), 'baseline row')} "
                               f"({count_text(len(groups), 'grid point')})")


@command("gate")
def gate_command(
    ctx: typer.Context,
    baseline: Annotated[
        Path, typer.Option("--baseline", help="Baseline CSV written by `mnv2prof baseline`.")
    ],
    spec: SpecOptions,
    timing: TimingOptions,
    judging: GateOptions,
    deploy: DeployOptions,
    models: ModelOptions,
    profile: GateProfile = None,
    variants: Variants = DEFAULT_VARIANT_LIST,
    markdown_summary: Annotated[
        str | None,
        typer.Option("--markdown-summary", help="Also write the verdicts as Markdown (a CI step "
                     "summary)."),
    ] = None,
    junit: Annotated[
        str | None, typer.Option("--junit", help="Also write JUnit XML, one test case per row.")
    ] = None,
    show: show_option(GATE_GROUPS) = None,
    force: Force = False,
) -> None:
    """Measure again and pass or fail each row against --baseline (exit 0 pass, 1 regression).

    Rows are blocks (--variants, built in or PATH.py:NAME) and --model models, as the baseline
    was taken; a row whose source file changed since the baseline is said so, and gated.
    A row fails when its counted cost changed (unless --allow-cost-change) or when it is slower
    than the baseline by more than --max-slowdown AND a one-sided Mann-Whitney U test on the
    samples says so at --alpha. Faster rows are reported, never failed. Rows are matched by
    variant; a missing or malformed baseline, rows that do not match, or a baseline timed in
    another --cache mode exit 2. Only onnxruntime is timed.
    With --profile (the one the baseline was taken with) rows are matched by spec and threads,
    and --relative-to divides each row by the reference variant of its own grid point.
    """
    from mnv2prof import gate
    from mnv2prof.baseline import GateRows, check_baseline, source_changes

    relative_to = row_name(judging.relative_to) if judging.relative_to else None
    if profile is not None:
        plan = gate_profile(ctx, profile, timing)
        rows, mode = GateRows.of_profile(plan), plan.timing.cache
        measured = plan.subjects()
    else:
        from mnv2prof.run.deploy import rows_of

        measured, timing_spec = subjects(ctx, spec, variants, models), timing.spec()
        wanted = rows_of(measured, deploy.target_list())
        names = ", ".join(dict.fromkeys(s.variant for s in measured))
        rows, mode = GateRows.of_rows(wanted, f"the rows measured ({names})",
                                      timing.threads), timing.cache
    policy = judging.policy()  # checked before any work, like everything below
    groups = parse_show(show, GATE_GROUPS)
    inputs = {"--baseline": baseline, **profile_file(profile), **source_files(measured)}
    outputs = Outputs(markdown_summary=markdown_summary, junit=junit, inputs=inputs)
    stored, differences = check_baseline(baseline, rows, mode, relative_to,
                                         judging.allow_env_mismatch)
    changed = source_changes(stored, rows)
    subjects_fit(measured, force)
    from mnv2prof.cli.app import tell
    from mnv2prof.cli.progress import measure_profile_with_progress, measure_with_progress
    from mnv2prof.run.frame import records_frame
    from mnv2prof.report.gate_report import gate_outputs, gate_report

    for line in changed:
        tell(f"mnv2prof: {line}")
    if profile is not None:
        records = [r for _, point in measure_profile_with_progress(plan) for r in point]
    else:
        records = measure_with_progress(wanted, timing_spec, eager=False,
                                        calibration=deploy.calibration).records
    result = gate.decide(stored, records_frame(records), policy, relative_to,
                         differences, rows.match_by)
    show_all(gate_report(result, groups))
    outputs.write(gate_outputs(result), "the verdicts")
    raise typer.Exit(code=result.exit_code)
