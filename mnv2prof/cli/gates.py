"""CI latency gates: baseline, gate."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from mnv2prof.cli.app import show as show_all
from mnv2prof.cli.options import (
    DEFAULT_VARIANT_LIST,
    DeployOptions,
    Force,
    ModelOptions,
    SpecOptions,
    TimingOptions,
    Variants,
    block_plan,
    command,
    given,
    profile_file,
    show_option,
    source_files,
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
    """How a row is judged (gating.decide.GatePolicy), and against what: stored numbers
    (--baseline) or a base timed beside the change (--against)."""

    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="Baseline CSV written by `mnv2prof "
                                  "baseline`: stored numbers (another run, maybe another day).")
    ] = None
    against: Annotated[
        str | None,
        typer.Option("--against", metavar="REV|OTHER", help="Time the base beside the change, "
                     "in the same rounds, on this machine: the git revision REV of your "
                     "PATH.py:NAME code (origin/main, a pull request's base SHA), or another "
                     "file (OTHER.onnx, OTHER.py:NAME). Instead of --baseline; holds on any "
                     "runner (docs/gates.md)."),
    ] = None
    allow_dirty: Annotated[
        bool, typer.Option("--allow-dirty", help="With --against REV: gate the working tree "
                           "with its uncommitted changes.")
    ] = False
    markdown_summary: Annotated[
        str | None,
        typer.Option("--markdown-summary", help="Also write the verdicts as Markdown (a CI step "
                     "summary)."),
    ] = None
    junit: Annotated[
        str | None, typer.Option("--junit", help="Also write JUnit XML, one test case per row.")
    ] = None

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
        from mnv2prof.gating.decide import GatePolicy

        return GatePolicy(self.max_slowdown, self.alpha, self.allow_cost_change)


def gates_plan(ctx: typer.Context, profile: str | None, spec: SpecOptions,
               timing: TimingOptions, deploy: DeployOptions, models: ModelOptions, variants: str,
               force: bool):
    """The rows of `baseline` and `gate`: a profile's grid (its budget_s and cache replaced by an
    explicit --budget, --cache) or the spec flags, never both; not timed eagerly."""
    if profile is None:
        return block_plan(ctx, spec, timing, deploy, models, variants, eager=False, force=force)
    from mnv2prof.run.plan import profile_plan

    if flags := given(ctx, SPEC_FLAGS):
        shown = ", ".join(SPEC_FLAGS[n] for n in flags)
        raise UsageError(
            f"--profile replaces the spec flags: drop {shown} (the profile's grid, variants, "
            "threads, precisions and runtimes are measured)"
        )
    budget = timing.budget if given(ctx, ["budget"]) else None
    cache = timing.cache if given(ctx, ["cache"]) else None
    return profile_plan(profile, budget, cache, force=force)


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
    foreign machine or another cache mode. Torch modules are not timed eagerly (the gate times
    the rows' --runtime).
    With --profile, every grid point of the profile is measured (as `sweep` does) instead of
    the spec flags, and all its rows go to the one CSV, written once at the end.
    """
    plan = gates_plan(ctx, profile, spec, timing, deploy, models, variants, force)
    outputs = Outputs(out=out, inputs={**profile_file(profile), **source_files(plan.subjects)})
    from mnv2prof.cli.progress import plan_progress
    from mnv2prof.commands.gates import baseline
    from mnv2prof.report.results import baseline_view

    with plan_progress(plan) as hooks:
        result = baseline(plan, hooks)
    from mnv2prof.report.console import count_text

    outputs.write_frame(result.frame, f"{count_text(len(result.frame), 'baseline row')} "
                        f"({count_text(len(result.groups), 'grid point')})")
    show_all(baseline_view(result))


@command("gate")
def gate_command(
    ctx: typer.Context,
    spec: SpecOptions,
    timing: TimingOptions,
    judging: GateOptions,
    deploy: DeployOptions,
    models: ModelOptions,
    profile: GateProfile = None,
    variants: Variants = DEFAULT_VARIANT_LIST,
    show: show_option(GATE_GROUPS) = None,
    force: Force = False,
) -> None:
    """Measure again and pass or fail each row (exit 0 pass, 1 regression): against stored
    numbers (--baseline), or against a base revision or file timed beside it (--against).

    Rows are blocks (--variants, built in or PATH.py:NAME) and --model models, as the baseline
    was taken; a row whose source file changed since the baseline is said so, and gated.
    A row fails when its counted cost changed (unless --allow-cost-change) or when it is slower
    than the baseline by more than --max-slowdown AND a one-sided Mann-Whitney U test on the
    samples says so at --alpha. Faster rows are reported, never failed. Rows are matched by
    variant; a missing or malformed baseline, rows that do not match, or a baseline timed in
    another --cache mode exit 2. Torch modules are not timed eagerly.
    With --profile (the one the baseline was taken with) rows are matched by spec and threads,
    and --relative-to divides each row by the reference variant of its own grid point.
    """
    from mnv2prof.run.plan import row_name

    baseline, against = judging.baseline, judging.against
    if (baseline is None) == (against is None):
        raise UsageError("gate takes --baseline CSV (stored numbers) or --against REV|OTHER "
                         "(the base timed beside the change), one of them")
    relative_to = row_name(judging.relative_to) if judging.relative_to else None
    plan = gates_plan(ctx, profile, spec, timing, deploy, models, variants, force)
    policy = judging.policy()  # checked before any work, like everything below
    groups = parse_show(show, GATE_GROUPS)
    inputs = {**({"--baseline": baseline} if baseline else {}), **profile_file(profile),
              **source_files(plan.subjects)}
    outputs = Outputs(markdown_summary=judging.markdown_summary, junit=judging.junit,
                      inputs=inputs)
    if against is not None:
        _gate_against(plan, against, judging.allow_dirty, policy, relative_to, outputs)
    from mnv2prof.cli.app import tell
    from mnv2prof.cli.progress import plan_progress
    from mnv2prof.commands.gates import check_gate, gate
    from mnv2prof.report.gate_report import gate_headline, gate_outputs, gate_report

    checked = check_gate(plan, baseline, relative_to, judging.allow_env_mismatch)
    from mnv2prof.report.results import cross_cpu_warning

    for line in [*checked.changed, cross_cpu_warning(checked.differences, relative_to)]:
        if line:
            tell(line if line.startswith("mnv2prof:") else f"mnv2prof: {line}")
    with plan_progress(plan) as hooks:
        gated = gate(checked, policy, relative_to, hooks)
    headline = gate_headline(checked.stored, gated.current, checked.rows.match_by)
    outputs.write(gate_outputs(gated.result, headline), "the verdicts")
    show_all(gate_report(gated.result, groups, headline))
    raise typer.Exit(code=gated.result.exit_code)


def _gate_against(plan, against: str, allow_dirty: bool, policy, relative_to, outputs) -> None:
    """The A/B gate: the base at --against timed beside the change, in the same rounds."""
    from mnv2prof.cli.app import tell
    from mnv2prof.cli.progress import plan_progress
    from mnv2prof.commands.gates import ab_checked, ab_gate
    from mnv2prof.report.ab_report import ab_outputs, ab_report

    if relative_to is not None or plan.profile is not None:
        raise UsageError("--against compares each row with its own base, in the same rounds: "
                         "drop --relative-to and --profile (give --model or --variants)")
    with ab_checked(plan, against, allow_dirty) as checked:
        with plan_progress(checked.plan) as hooks:
            result = ab_gate(checked, policy, hooks)
    outputs.write(ab_outputs(result), "the verdicts")
    show_all(ab_report(result))
    if result.inconclusive:
        tell(f"mnv2prof: warning: {len(result.inconclusive)} row(s) inconclusive: see the note "
             "under the table")
    raise typer.Exit(code=result.exit_code)

