"""The A/B gate (`gate --against`): the base (a git revision, or another file) and the change
timed in the same rounds on this runner, each row judged on its paired per-round ratios
(measure/paired.py), so whatever slows a round, on whatever CPU, cancels. Nothing stored on
another machine or at another time enters the verdict.

A row fails when it is SLOWER (evidence of a slowdown past `max_slowdown`) or, unless allowed,
when its counted cost changed between base and change (that is shown in every case). A row whose
run could not have seen a slowdown of the tolerance's size is INCONCLUSIVE: the gate passes
(exit 0) but says so in one line, with the budget that would tell, and in its Markdown and JUnit
(a skipped case): never a silent pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mnv2prof.errors import ExitCode
from mnv2prof.gating.decide import CostChange, GatePolicy
from mnv2prof.gating.stored_rows import COUNTED_COLUMNS
from mnv2prof.measure.paired import ESTIMATOR, Paired, PairVerdict, judge


@dataclass(frozen=True)
class AbRow:
    """One row: a subject on a target, base against change."""

    name: str  # the change's row label
    target: str  # "" for fp32 onnxruntime, else " int8 executorch"...
    base_ms: float  # each side's fastest call (the headline), for the table
    change_ms: float
    paired: Paired
    cost_changes: tuple[CostChange, ...]
    cost_change_allowed: bool

    @property
    def cost_failed(self) -> bool:
        return bool(self.cost_changes) and not self.cost_change_allowed

    @property
    def failed(self) -> bool:
        return self.paired.verdict is PairVerdict.SLOWER or self.cost_failed

    @property
    def verdict(self) -> str:
        if self.cost_failed:
            return "cost changed" + (", slower" if self.paired.verdict is PairVerdict.SLOWER
                                     else "")
        return self.paired.verdict.value


@dataclass(frozen=True)
class AbResult:
    rows: tuple[AbRow, ...]
    policy: GatePolicy
    against: str  # what the base is: REV (its commit) or the other file
    rounds: int  # paired rounds per row (the fewest)
    budget_s: float

    @property
    def failures(self) -> tuple[AbRow, ...]:
        return tuple(r for r in self.rows if r.failed)

    @property
    def inconclusive(self) -> tuple[AbRow, ...]:
        return tuple(r for r in self.rows if not r.failed
                     and r.paired.verdict is PairVerdict.INCONCLUSIVE)

    @property
    def exit_code(self) -> int:
        return ExitCode.REGRESSION if self.failures else ExitCode.OK

    @property
    def estimator(self) -> str:
        return ESTIMATOR

    def suggested_budget(self) -> float:
        """The budget whose rounds would bring the widest row's detectable effect down to the
        tolerance: the interval narrows as 1 / sqrt(rounds); at most an hour."""
        worst = max((r.paired.mde_rel for r in self.inconclusive), default=0.0)
        tolerance = max(self.policy.max_slowdown, 1e-3)
        if not math.isfinite(worst):
            return min(3600.0, self.budget_s * 4)
        return min(3600.0, math.ceil(self.budget_s * (worst / tolerance) ** 2 * 2) / 2)


def cost_changes(base: dict[str, int], change: dict[str, int]) -> tuple[CostChange, ...]:
    return tuple(CostChange(c, base[c], change[c]) for c in COUNTED_COLUMNS
                 if base[c] != change[c])


def decide_pairs(pairs: Sequence[tuple[object, object]], policy: GatePolicy, against: str,
                 budget_s: float) -> AbResult:
    """`pairs`: (base Record, change Record) timed in the same rounds, one per row."""
    rows = []
    for base, change in pairs:
        paired = judge(base.latency.samples_ms, change.latency.samples_ms, policy.max_slowdown,
                       policy.alpha)
        counted = [{c: int(getattr(r.cost, c)) for c in COUNTED_COLUMNS} for r in (base, change)]
        rows.append(AbRow(change.label, _target(change.target), base.latency.min_ms,
                          change.latency.min_ms, paired, cost_changes(*counted),
                          policy.allow_cost_change))
    rounds = min((r.paired.n for r in rows), default=0)
    return AbResult(tuple(rows), policy, against, rounds, budget_s)


def _target(target) -> str:
    return "" if target.default else f" {target.precision} {target.runtime}"
