"""`baseline` and `gate`: rows measured and stored, then measured again and judged against the
stored ones. The rows come from the spec words or from a profile's grid (run.plan), one way or
the other, decided once in the plan."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
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

    point: object | None  # profiles.grid.GridPoint
    records: list


def measure_groups(plan: Plan, progress: Progress | None = None) -> list[Group]:
    """The plan's rows measured on onnxruntime, as `sweep` measures a profile's grid (in
    batches of points timed together), or the spec words' rows timed together."""
    if plan.profile is not None:
        from mnv2prof.sweeps.sweep import measure_profile

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


@dataclass(frozen=True)
class Gated:
    result: GateResult
    current: pd.DataFrame  # the rows measured now (their fastest calls lead the table)


def gate(check: GateCheck, policy: GatePolicy, relative_to: str | None = None,
         progress: Progress | None = None) -> Gated:
    """Measure the checked rows again and judge each against its stored row."""
    from mnv2prof.gating.decide import decide
    from mnv2prof.run.frame import records_frame

    records = [r for g in measure_groups(check.plan, progress) for r in g.records]
    current = records_frame(records)
    return Gated(decide(check.stored, current, policy, relative_to, check.differences,
                        check.rows.match_by), current)


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


# --- the A/B gate: the base timed beside the change -------------------------------------------


@dataclass(frozen=True)
class AbCheck:
    """An A/B gate's rows, checked: `plan` holds each base subject before its change (paired
    rounds), `pairs` says which is which; `against` names the base for the report."""

    plan: Plan
    pairs: tuple[tuple[object, object], ...]
    against: str


@contextlib.contextmanager
def ab_checked(plan: Plan, against: str, allow_dirty: bool = False) -> Iterator[AbCheck]:
    """The base of every subject of `plan`: the same user code at the git revision `against`
    (extracted for the duration), or another file (`OTHER.onnx`, `OTHER.py:NAME`) for the
    plan's one subject; every rule checked before anything is exported."""
    from mnv2prof.run.revision import checked_out
    from mnv2prof.run.user_code import rooted

    if other_file(against):
        yield _ab_check(plan, [(other_subject(against, plan), s) for s in plan.subjects],
                        against)
        return
    with checked_out(against, [_source_path(s, against) for s in plan.subjects],
                     allow_dirty) as checkout, rooted(checkout.root):
        pairs = [(at_revision(s, checkout), s) for s in plan.subjects]
        yield _ab_check(plan, pairs, f"{against} ({checkout.short})")


def _ab_check(plan: Plan, pairs: list[tuple[object, object]], against: str) -> AbCheck:
    subjects = tuple(s for pair in pairs for s in pair)
    paired = dataclasses.replace(plan, subjects=subjects, eager=False)
    return AbCheck(paired.check(), tuple(pairs), against)


def other_file(against: str) -> bool:
    """Whether `--against` names a file (OTHER.onnx, OTHER.py:NAME) rather than a revision."""
    from mnv2prof.models.plugins import is_reference

    if against.lower().endswith(".onnx"):
        return True
    path = against.rpartition(":")[0]
    return is_reference(against) and (path.endswith(".py") or Path(path).is_file())


def other_subject(against: str, plan: Plan):
    """The base from another file: the plan's one subject's kind, from `against`."""
    from mnv2prof.errors import UsageError
    from mnv2prof.models.variants import BlockSpec, resolve_variant

    if len(plan.subjects) != 1:
        raise UsageError(f"--against {against}: another file is the base of one row; "
                         f"{len(plan.subjects)} are measured")
    subject = plan.subjects[0]
    if isinstance(subject, BlockSpec) and not against.lower().endswith(".onnx"):
        ref = resolve_variant(against)
        return dataclasses.replace(subject, variant=f"{ref.name}@base", source=ref.source,
                                   source_hash=ref.source_hash)
    from mnv2prof.run.plan import model_subjects

    base = model_subjects([against], getattr(subject, "shape_text", None) or None)[0]
    return dataclasses.replace(base, variant=f"{base.variant}@base")


def _source_path(subject, against: str) -> Path:
    """The user's file a subject is built from (what must exist at the revision)."""
    from mnv2prof.errors import UsageError

    path = Path(subject.source.rpartition(":")[0]) if subject.source else None
    if path is None or not path.suffix == ".py" or getattr(subject, "onnx_file", False):
        what = ("a built-in block: built-in blocks have no revision" if not subject.source
                else "not a PATH.py:NAME file in the repository")
        raise UsageError(f"--against {against}: {subject.variant} is {what} (gate it with "
                         "--baseline)")
    return path


def at_revision(subject, checkout):
    """`subject` as the revision's file builds it: the same NAME from the same path under the
    revision's folder, its hash that file's, its row named NAME@SHA."""
    from mnv2prof.models.plugins import file_digest

    path, _, name = subject.source.rpartition(":")
    base = checkout.path_of(Path(path))
    return dataclasses.replace(subject, variant=f"{subject.variant}@{checkout.short}",
                               source=f"{base}:{name}", source_hash=file_digest(base))


def ab_measure(check: AbCheck, progress: Progress | None = None) -> list[tuple]:
    """Every base and change timed in the same rounds (no row leaves the rotation early): a
    (base Record, change Record) per row."""
    plan = check.plan
    measured = measure_rows(plan.rows(), plan.timing, plan.seed, progress, plan.calibration,
                            eager=False, paired=True)
    by_row = {(r.subject, r.target): r for r in measured.records}
    return [(by_row[(base, t)], by_row[(change, t)])
            for base, change in check.pairs for t in plan.targets]


def ab_gate(check: AbCheck, policy: GatePolicy, progress: Progress | None = None):
    """`ab_measure`, each change judged on its paired per-round ratios (gating.ab)."""
    from mnv2prof.gating.ab import decide_pairs

    return decide_pairs(ab_measure(check, progress), policy, check.against,
                        check.plan.timing.budget_s)


def ab_frame(result) -> pd.DataFrame:
    """A row per A/B verdict, with units in the column names: what `mnv2prof.gate(against=)`
    returns."""
    import pandas as pd

    return pd.DataFrame([{
        "row": r.name, "target": r.target.strip(), "base_min_ms": r.base_ms,
        "change_min_ms": r.change_ms, "ratio_x": r.paired.ratio,
        "ratio_ci_low_x": r.paired.ci_low, "ratio_ci_high_x": r.paired.ci_high,
        "rounds_n": r.paired.n, "p_slower": r.paired.p_slower,
        "detectable_rel": r.paired.mde_rel, "cost_changes": len(r.cost_changes),
        "verdict": r.verdict, "failed": r.failed, "against": result.against,
    } for r in result.rows])
