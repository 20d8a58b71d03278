"""Pass or fail a fresh measurement against a stored baseline (comparisons as data, after pyperf).

A row fails when its **counted cost** changed (MACs, params, peak activations, bytes moved,
weight bytes must match exactly unless the policy allows cost changes: an architecture change
must be visible, not buried in a latency number), or when its **latency** regressed.

Latency regresses when both hold (pyperf's `CompareResult`: a ratio, a significance and a
minimum change before anything is called a regression):

1. the ratio of medians, current / baseline, exceeds ``1 + max_slowdown``; and
2. a one-sided Mann-Whitney U test on the raw samples rejects, at level ``alpha``, the null
   hypothesis that the current samples are no larger than the baseline samples scaled by
   ``1 + max_slowdown``.

Why Mann-Whitney U, and why against the *scaled* baseline:

- latency samples are skewed with a long right tail (pre-emptions, neighbours), so a t-test on
  means is the wrong model; a rank test needs no distribution, is robust to the tail, is
  deterministic (a bootstrap CI on the ratio of medians answers much the same question but needs
  a random seed and thousands of resamples per row) and comes with scipy;
- testing against ``baseline x (1 + max_slowdown)`` puts the tolerated slowdown inside the null
  hypothesis: a row fails only on evidence that it is slower *by more than the tolerance*, not
  merely slower. With hundreds of samples a plain test calls a 2% drift "significant"; this one
  does not, which is what keeps a noisy runner from crying wolf. The ratio condition (1.) is
  then nearly implied, and kept so that the reported ratio and the verdict never disagree.

The test treats samples as independent; samples of one run are not quite (the machine drifts
during a run), so p-values are optimistic for slow drift between the baseline's run and this one.
That drift is what the relative mode removes:

**Relative mode** (``relative_to`` a reference variant measured in the same run). `latency` times
variants in bursts that rotate round by round, one sample (the burst's median) per round, so sample
``i`` of every variant comes from round ``i``, a few milliseconds apart (a variant that left the
rotation early has fewer samples: those of rounds 0..k-1, so pairing by index pairs rounds whenever
each variant left). Each row's samples are divided, round by round, by the reference's samples of
the same round: the per-round ratios cancel whatever slowed the whole round (a slower CI machine, a
busy neighbour, frequency scaling), and the same test runs on those ratios instead of on
milliseconds. A uniform slowdown of the machine then cancels exactly; a change that slows one block
and not the reference does not. It cannot see a change that slows every block alike (the reference
included): gate the reference itself in absolute mode on a fixed machine for that.

**Rows are matched** to the baseline by variant for a run of compare flags (one row per
variant), or by ``spec`` and ``threads`` for a profile's grid (``match_by="spec"``: one variant
appears at many grid points). In relative mode a profile row is divided by the reference variant's
row of the *same grid point* (the same spec apart from the variant, the same threads): only the
rows of one grid point were timed in the same rounds.

Faster rows are reported (``faster``, with the same test in the other direction), never failed.
``alpha`` is per row: with R rows and no regression, at most about R x alpha false failures are
expected from sampling alone, fewer in practice since the null already allows the tolerance.

Inputs are frames in `records.Record.row()` form (a baseline read back from CSV, and the current
run); nothing here measures, prints or reads flags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np
import pandas as pd

from mnv2prof.gating.baseline import check_rows, listed
from mnv2prof.errors import ExitCode, UsageError
from mnv2prof.files.results import grid_point, row_key, target_suffix
from mnv2prof.measure.stats import per_round_ratios, shifted_mann_whitney
from mnv2prof.gating.stored_rows import COUNTED_COLUMNS, counted_of, samples_of


class Latency(str, Enum):
    PASS = "pass"
    FASTER = "faster"
    NOT_SIGNIFICANT = "slower, not significant"
    REGRESSION = "regression"
    REFERENCE = "reference"  # the relative mode's reference row: its ratio is 1 by definition


@dataclass(frozen=True)
class GatePolicy:
    max_slowdown: float = 0.10  # tolerated slowdown, a fraction (0.10 = 10%)
    alpha: float = 0.01  # per-row significance level of the one-sided test
    allow_cost_change: bool = False

    def __post_init__(self) -> None:
        if not (self.max_slowdown >= 0 and math.isfinite(self.max_slowdown)):
            raise UsageError(f"max slowdown must be >= 0, got {self.max_slowdown}")
        if not 0 < self.alpha < 1:
            raise UsageError(f"alpha must be between 0 and 1, got {self.alpha}")


@dataclass(frozen=True)
class CostChange:
    column: str
    baseline: int
    current: int


@dataclass(frozen=True)
class RowVerdict:
    variant: str
    baseline_spec: str
    current_spec: str
    baseline_ms: float  # median of the baseline samples
    current_ms: float  # median of the current samples
    baseline_rel_x: float | None  # relative mode: median per-round ratio to the reference
    current_rel_x: float | None
    ratio_x: float  # current / baseline, of medians (of per-round ratios in relative mode)
    p_value: float  # of the one-sided test in the direction of the change
    latency: Latency
    cost_changes: tuple[CostChange, ...]
    cost_change_allowed: bool
    threads: int | None = None  # onnxruntime intra-op threads of the current row
    target: str = ""  # files.results.target_suffix: " int8 executorch", or "" for fp32 onnxruntime

    @property
    def cost_failed(self) -> bool:
        return bool(self.cost_changes) and not self.cost_change_allowed

    @property
    def failed(self) -> bool:
        return self.latency is Latency.REGRESSION or self.cost_failed

    @property
    def verdict(self) -> str:
        """One short label: the latency verdict, led by "cost changed" when that fails the row."""
        if self.cost_failed:
            return "cost changed" + (", regression" if self.latency is Latency.REGRESSION else "")
        return self.latency.value

    def cost_summary(self) -> str:
        if not self.cost_changes:
            return "same"
        return ", ".join(
            f"{c.column} {c.current / c.baseline:.2f}x" if c.baseline else f"{c.column} 0->{c.current}"
            for c in self.cost_changes
        )


@dataclass(frozen=True)
class GateResult:
    rows: tuple[RowVerdict, ...]
    policy: GatePolicy
    relative_to: str | None
    env_differences: tuple[tuple[str, str, str], ...]  # (key, baseline, current)
    match_by: str = "variant"  # how rows were matched: see files.results.MATCH_BY

    def key(self, row: RowVerdict) -> str:
        """The row's name in reports: its variant, or its spec and threads."""
        if self.match_by == "spec":
            return f"{row.current_spec} threads={row.threads}{row.target}"
        return row.variant

    @property
    def failures(self) -> tuple[RowVerdict, ...]:
        return tuple(r for r in self.rows if r.failed)

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    @property
    def exit_code(self) -> int:
        return ExitCode.REGRESSION if self.failed else ExitCode.OK

    @property
    def mode(self) -> str:
        return f"relative to {self.relative_to}" if self.relative_to else "absolute"

    def summary(self) -> str:
        faster = sum(r.latency is Latency.FASTER for r in self.rows)
        state = "FAIL" if self.failed else "PASS"
        text = (
            f"{state}: {len(self.failures)} of {len(self.rows)} rows failed ({self.mode}, "
            f"max slowdown {self.policy.max_slowdown:.0%}, alpha {self.policy.alpha:g})"
        )
        if faster:
            text += f"; {faster} faster (consider a new baseline)"
        return text


# --- the decision ----------------------------------------------------------------------------


def decide(
    baseline: pd.DataFrame,
    current: pd.DataFrame,
    policy: GatePolicy,
    relative_to: str | None = None,
    env_differences: tuple[tuple[str, str, str], ...] = (),
    match_by: str = "variant",
) -> GateResult:
    """One `RowVerdict` per current row, matched to the baseline row of the same `row_key`."""
    cur_rows = {row_key(r, match_by): r for r in current.to_dict("records")}
    check_rows(baseline, list(cur_rows), match_by)
    base_rows = {row_key(r, match_by): r for r in baseline.to_dict("records")}
    base_samples = {k: samples_of(r, "baseline") for k, r in base_rows.items()}
    cur_samples = {k: samples_of(r, "current run") for k, r in cur_rows.items()}
    if relative_to is not None:
        references = _references(cur_rows, relative_to, match_by)
        base_rel, cur_rel = {}, {}
        for key, ref in references.items():
            # per_round_ratios pairs rounds within one timed run: the row and its reference only
            base_rel[key] = per_round_ratios({"row": base_samples[key], "ref": base_samples[ref]},
                                             "ref")["row"]
            cur_rel[key] = per_round_ratios({"row": cur_samples[key], "ref": cur_samples[ref]},
                                            "ref")["row"]

    verdicts = []
    for key, cur in cur_rows.items():
        base = base_rows[key]
        b, c = base_samples[key], cur_samples[key]
        changes = _cost_changes(counted_of(base, "baseline"), counted_of(cur, "current run"))
        if relative_to is None:
            latency, ratio, p = compare_samples(b, c, policy)
            b_rel = c_rel = None
        else:
            b_rel, c_rel = float(np.median(base_rel[key])), float(np.median(cur_rel[key]))
            if references[key] == key:
                latency, ratio, p = Latency.REFERENCE, 1.0, 1.0
            else:
                latency, ratio, p = compare_samples(base_rel[key], cur_rel[key], policy)
        verdicts.append(
            RowVerdict(
                variant=row_key(cur, "variant"),
                baseline_spec=str(base["spec"]),
                current_spec=str(cur["spec"]),
                baseline_ms=float(np.median(b)),
                current_ms=float(np.median(c)),
                baseline_rel_x=b_rel,
                current_rel_x=c_rel,
                ratio_x=ratio,
                p_value=p,
                latency=latency,
                cost_changes=changes,
                cost_change_allowed=policy.allow_cost_change,
                threads=int(cur["threads"]),
                target=target_suffix(cur),
            )
        )
    return GateResult(tuple(verdicts), policy, relative_to, env_differences, match_by)


def _references(rows: dict[str, dict], relative_to: str, match_by: str) -> dict[str, str]:
    """Each row's key -> the key of its reference row: the `relative_to` variant's row timed in
    the same rounds (the only one for compare flags; of the same grid point for a profile)."""
    variants = list(dict.fromkeys(str(r["variant"]) for r in rows.values()))
    if relative_to not in variants:
        raise UsageError(
            f"--relative-to {relative_to!r} is not among the variants ({', '.join(variants)})"
        )

    def group(row: dict) -> str:  # rows timed in the same rounds: one target, one grid point
        return grid_point(row) if match_by == "spec" else target_suffix(row)

    reference = {group(r): k for k, r in rows.items() if str(r["variant"]) == relative_to}
    missing = sorted({group(r) for r in rows.values()} - set(reference))
    if missing:
        raise UsageError(
            f"--relative-to {relative_to!r}: no {relative_to} row at grid point(s) "
            f"{listed(set(missing))}; its rows can only be compared with rows timed in the same "
            f"rounds (add {relative_to} to the profile's variants)"
        )
    return {k: reference[group(r)] for k, r in rows.items()}


def compare_samples(
    baseline: np.ndarray, current: np.ndarray, policy: GatePolicy
) -> tuple[Latency, float, float]:
    """(verdict, ratio of medians current / baseline, p-value): see the module docstring."""
    baseline, current = np.asarray(baseline, float), np.asarray(current, float)
    ratio = float(np.median(current) / np.median(baseline))
    tolerance = 1.0 + policy.max_slowdown
    if ratio >= 1.0:
        p = shifted_mann_whitney(baseline, current, tolerance, "greater")
        if ratio > tolerance and p < policy.alpha:
            return Latency.REGRESSION, ratio, p
        return (Latency.NOT_SIGNIFICANT if ratio > tolerance else Latency.PASS), ratio, p
    p = shifted_mann_whitney(baseline, current, tolerance, "less")
    if ratio < 1.0 / tolerance and p < policy.alpha:
        return Latency.FASTER, ratio, p
    return Latency.PASS, ratio, p


def _cost_changes(baseline: dict[str, int], current: dict[str, int]) -> tuple[CostChange, ...]:
    return tuple(
        CostChange(c, baseline[c], current[c]) for c in COUNTED_COLUMNS if baseline[c] != current[c]
    )
