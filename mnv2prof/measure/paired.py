"""Two sides timed in the same rounds (a base and a change, or two rows of compare), judged on
their paired per-round ratios: whatever slowed a round slowed both sides, so it cancels, on any
CPU and in the machine's slow state alike.

The statistic is the median of the per-round ratios change / base (each round's burst median,
`ESTIMATOR`; benchmarks/gate_reliability.py measured it beside the ratio of fastest calls, the
per-round ratio of burst minima and asv's unpaired rule, docs/gates.md). It is distribution-free:
its lower confidence bound is an order statistic, and the test is the sign test (exact binomial
sums in integers, as stats.median_ci_ranks: no scipy).

A row is SLOWER only on evidence: its median ratio exceeds 1 + max_slowdown AND the sign test
says the change is slower at `alpha`. The run states what it could have seen: its minimum
detectable effect (`mde_rel`) is the relative distance from the median ratio down to its one-sided
(1 - alpha) lower bound, the smallest slowdown the test would call significant at this spread;
when that exceeds the tolerance the row is INCONCLUSIVE (a longer budget would tell), never a
silent pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

import numpy as np

ESTIMATOR = "median of paired round ratios"


class PairVerdict(str, Enum):
    SLOWER = "slower"  # evidence of a slowdown past the tolerance: the row fails
    PASS = "pass"  # no such evidence, and the run could have seen one
    FASTER = "faster"  # evidence of a speed-up past the tolerance (never a failure)
    INCONCLUSIVE = "inconclusive"  # the run's spread hides a slowdown the size of the tolerance


@dataclass(frozen=True)
class Paired:
    """The paired comparison of one row: change / base, per round."""

    ratio: float  # median of the per-round ratios
    ci_low: float  # two-sided 95% interval of that median (order statistics)
    ci_high: float
    n: int  # paired rounds
    p_slower: float  # one-sided sign test: H0 median ratio <= 1
    p_faster: float  # one-sided sign test: H0 median ratio >= 1
    mde_rel: float  # the smallest slowdown the run could call significant, a fraction
    verdict: PairVerdict


@lru_cache(maxsize=4096)
def upper_tail(n: int, k: int) -> float:
    """P(Binomial(n, 1/2) >= k), exactly (integers), as a float."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return sum(math.comb(n, j) for j in range(k, n + 1)) / 2**n


@lru_cache(maxsize=4096)
def lower_bound_rank(n: int, alpha: float) -> int | None:
    """The largest rank k (1-based) whose order statistic X_(k) is a one-sided (1 - alpha)
    lower confidence bound of the median: P(Binomial(n, 1/2) >= k) >= 1 - alpha; None when n is
    too small for any."""
    best = None
    for k in range(1, n + 1):
        if upper_tail(n, k) >= 1 - alpha:
            best = k
        else:
            break
    return best


def sign_test(ratios: np.ndarray, threshold: float = 1.0) -> tuple[float, float]:
    """One-sided sign-test p-values that the median ratio is above / below `threshold` (rounds
    equal to it carry no sign and are left out)."""
    above = int(np.sum(ratios > threshold))
    below = int(np.sum(ratios < threshold))
    n = above + below
    return upper_tail(n, above), upper_tail(n, below)


def paired_ratios(base: Sequence[float], change: Sequence[float]) -> np.ndarray:
    """change / base of the same round; rounds past the shorter side are left out."""
    b, c = np.asarray(base, float), np.asarray(change, float)
    n = min(b.size, c.size)
    return c[:n] / b[:n]


def judge(base: Sequence[float], change: Sequence[float], max_slowdown: float,
          alpha: float = 0.01) -> Paired:
    """The paired verdict of one row from its per-round samples (same rounds, same order)."""
    from mnv2prof.measure.stats import median_ci

    ratios = paired_ratios(base, change)
    n = ratios.size
    if n == 0:
        nan = math.nan
        return Paired(nan, nan, nan, 0, 1.0, 1.0, math.inf, PairVerdict.INCONCLUSIVE)
    median = float(np.median(ratios))
    low, high = median_ci(ratios)
    p_slower, p_faster = sign_test(ratios)
    rank = lower_bound_rank(n, alpha)
    mde = (median - float(np.sort(ratios)[rank - 1])) / median if rank else math.inf
    verdict = _verdict(median, p_slower, p_faster, max(mde, 0.0), max_slowdown, alpha)
    return Paired(median, low, high, n, p_slower, p_faster, max(mde, 0.0), verdict)


def _verdict(median: float, p_slower: float, p_faster: float, mde: float, tolerance: float,
             alpha: float) -> PairVerdict:
    if median > 1 + tolerance and p_slower < alpha:
        return PairVerdict.SLOWER
    if median < 1 / (1 + tolerance) and p_faster < alpha:
        return PairVerdict.FASTER
    if mde > tolerance:
        return PairVerdict.INCONCLUSIVE
    return PairVerdict.PASS
