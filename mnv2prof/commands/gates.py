"""`baseline` and `gate`: rows measured and stored, then measured again and judged against the
stored ones. The rows come from the spec words or from a profile's grid (run.plan), one way or
the other, decided once in the plan."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mnv2prof.run.pipeline import Progress, measure_rows
from mnv2prof.run.plan import Plan

if TYPE_CHECKING:
    import pandas as pd

    from mnv2prof.gating.baseline import GateRows
    from mnv2prof.gating.decide import GatePolicy, GateResult


@dataclass(frozen=True)
class Group:
    """The rows measured together: one grid point of a profile (`point`), or the spec words'
    rows (`point` None)."""

    point: object | None  # run.profiles.GridPoint
    records: list


def measure_groups(plan: Plan, progress: Progress | None = None) -> list[Group]:
    """The plan's rows measured on onnxruntime, as `sweep` measures a profile's grid (in
    batches of points timed together), or the spec words' rows timed together."""
    if plan.profile is not None:
        from mnv2prof.run.sweep import measure_profile

        hooks = progress or Progress()
        return [Group(point, records) for point, records in
                measure_profile(plan.profile, hooks.on_batch, hooks.on_rows)]
    measured = measure_rows(plan.rows(), plan.timing, plan.seed, progress, plan.calibration,
                            eager=False)
    return [Group(None, measured.records)]


@dataclass(frozen=True)
class Baseline:
    plan: Plan
    frame: pd.DataFrame  # every group's rows: what the baseline file stores
    groups: list[Group]


def baseline(plan: Plan, progress: Progress | None = None) -> Baseline:
    """Check `plan` and measure the rows a later `gate` will measure again."""
    from mnv2prof.run.frame import records_frame

    plan.check()
    groups = measure_groups(plan, progress)
    return Baseline(plan, records_frame([r for g in groups for r in g.records]), groups)


def gate_rows(plan: Plan) -> GateRows:
    """The rows the gate measures now, keyed as the baseline's are matched."""
    from mnv2prof.gating.baseline import GateRows

    if plan.profile is not None:
        return GateRows.of_profile(plan.profile)
    names = ", ".join(dict.fromkeys(s.variant for s in plan.subjects))
    return GateRows.of_rows(plan.rows(), f"the rows measured ({names})", plan.timing.threads)


@dataclass(frozen=True)
class GateCheck:
    """Everything a gate checks before it measures: the plan, the stored baseline (read,
    validated, its rows the rows measured now), the environments' differences, and the user's
    files that changed since the baseline."""

    plan: Plan
    rows: GateRows
    stored: pd.DataFrame
    differences: tuple[tuple[str, str, str], ...]
    changed: tuple[str, ...]


def check_gate(plan: Plan, baseline_path: Path | str, relative_to: str | None = None,
               allow_env_mismatch: bool = False) -> GateCheck:
    from mnv2prof.gating.baseline import check_baseline, source_changes

    rows = gate_rows(plan)
    stored, differences = check_baseline(Path(baseline_path), rows, plan.timing.cache,
                                         relative_to, allow_env_mismatch)
    plan.check()
    return GateCheck(plan, rows, stored, differences, source_changes(stored, rows))


def gate(check: GateCheck, policy: GatePolicy, relative_to: str | None = None,
         progress: Progress | None = None) -> GateResult:
    """Measure the checked rows again and judge each against its stored row."""
    from mnv2prof.gating.decide import decide
    from mnv2prof.run.frame import records_frame

    records = [r for g in measure_groups(check.plan, progress) for r in g.records]
    return decide(check.stored, records_frame(records), policy, relative_to, check.differences,
                  check.rows.match_by)


def verdicts_frame(result: GateResult) -> pd.DataFrame:
    """A row per verdict, with units in the column names: what `mnv2prof.gate` returns."""
    import pandas as pd

    return pd.DataFrame([{
        "row": result.key(r), "variant": r.variant, "spec": r.current_spec,
        "threads": r.threads, "target": r.target.strip(), "baseline_ms": r.baseline_ms,
        "current_ms": r.current_ms, "baseline_rel_x": r.baseline_rel_x,
        "current_rel_x": r.current_rel_x, "ratio_x": r.ratio_x, "p_value": r.p_value,
        "latency": r.latency.value, "cost_changes": r.cost_summary(), "failed": r.failed,
        "verdict": r.verdict,
    } for r in result.rows])
