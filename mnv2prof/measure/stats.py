"""Statistics of latency samples: quantiles and a distribution-free confidence interval.

Latency samples are skewed (a floor, and a tail of interruptions), so the median is reported and
its confidence interval is the order-statistic one: the ranks (l, u) such that the true median
lies between the l-th and u-th smallest samples with probability >= `CONFIDENCE` whatever the
distribution (binomial, p = 1/2). The ranks are `scipy.stats.quantile_test`'s
(`confidence_interval`: l = ppf(tail) - 1, u = isf(tail) of Binomial(n, 1/2)), computed here in
exact integers (equal to scipy's for every n from 1 to 2000, tested) so that nothing imports
scipy (1.5 s) before a number is measured; they depend only on n, so they are computed once per
n and reused, which keeps the check cheap enough to run while sampling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from fractions import Fraction

import numpy as np

from mnv2prof.measure.timing import REPRODUCED_REL, TARGET_CI_REL  # noqa: F401 (thresholds)

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    q1: float
    q3: float
    p95: float
    ci_low: float  # CONFIDENCE interval of the median; nan when n is too small for one
    ci_high: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def ci_rel(self) -> float:
        """Half-width of the CI relative to the median: the larger side (the CI is asymmetric)."""
        if not self.median > 0 or math.isnan(self.ci_low):
            return math.inf
        return max(self.median - self.ci_low, self.ci_high - self.median) / self.median


@lru_cache(maxsize=4096)
def median_ci_ranks(n: int, confidence: float = CONFIDENCE) -> tuple[int, int] | None:
    """0-based ranks (l, u) of the order-statistic CI of the median; None when n is too small."""
    if n < 1:
        return None
    # the tail as scipy sees it (a float), compared exactly: cdf(k) = cum / 2^n
    tail = Fraction((1 - confidence) / 2)
    total = 1 << n
    bound_num, bound_den = tail.numerator * total, tail.denominator
    cum, pmf, low, high = 0, 1, None, n  # pmf: C(n, k), updated in place
    for k in range(n + 1):
        cum += pmf
        if low is None and cum * bound_den >= bound_num:  # ppf: the first cdf(k) >= tail
            low = k
        if (total - cum) * bound_den <= bound_num:  # isf: the first sf(k) <= tail
            high = k
            break
        pmf = pmf * (n - k) // (k + 1)
    if low is None or low - 1 < 0 or high >= n:
        return None
    return low - 1, high


def median_ci(samples: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The distribution-free `confidence` interval of the median of `samples` (nan, nan if n < 6)."""
    ranks = median_ci_ranks(len(samples), confidence)
    if ranks is None:
        return math.nan, math.nan
    low, high = np.partition(np.asarray(samples, dtype=float), ranks)[list(ranks)]
    return float(low), float(high)


def median_ci_rel(samples: Sequence[float], confidence: float = CONFIDENCE) -> float:
    """`Summary.ci_rel` alone, from one partial sort: the adaptive sampler checks it every round.

    Equal to `summarize(samples).ci_rel` (tested); skips the quartiles and p95 that `summarize`
    also computes, which made the per-round check cost ~0.13 ms per runner at n = 300.
    """
    n = len(samples)
    ranks = median_ci_ranks(n, confidence)
    if ranks is None:
        return math.inf
    low_rank, high_rank = ranks
    mid = (n - 1) // 2, n // 2  # np.quantile(0.5): the mean of the two middle order statistics
    values = np.partition(np.asarray(samples, dtype=float), [low_rank, *mid, high_rank])
    median = (values[mid[0]] + values[mid[1]]) / 2
    if not median > 0:
        return math.inf
    return float(max(median - values[low_rank], values[high_rank] - median) / median)


def summarize(samples: Sequence[float]) -> Summary:
    if len(samples) == 0:
        nan = math.nan
        return Summary(0, nan, nan, nan, nan, nan, nan)
    q1, median, q3, p95 = (float(v) for v in np.quantile(samples, [0.25, 0.5, 0.75, 0.95]))
    low, high = median_ci(samples)
    return Summary(len(samples), median, q1, q3, p95, low, high)


# --- the minimum: the headline estimator -------------------------------------------------------
# Noise on a shared machine only adds time: the fastest call is the block with nothing in its
# way, and it moves least from run to run (docs/latency.md measures it against the median, low
# quantiles and per-round pairing). Its spread says whether the run reached it more than once.

MIN_RANK = 4  # the k-th best round minimum bounds another run's minimum: all n rounds of a run
# like this one land above the k-th best of this run with probability about e^-k (1.8% for 4)


@dataclass(frozen=True)
class Minimum:
    """The fastest timed call, and how well the run reproduced it."""

    value: float  # ms: the smallest round minimum (= the fastest call); nan without rounds
    spread_rel: float  # the larger of the two below; inf if n < MIN_RANK or a trial had no round
    near: int  # rounds whose minimum is within `REPRODUCED_REL` of value (as `spread_rel` reads it)
    n: int  # rounds
    session_spread_rel: float = 0.0  # the slowest trial's fastest call over value, - 1
    trials: int = 1  # the sessions the rounds rotated over

    @property
    def reproduced(self) -> bool:
        """The run reached its fastest call again: `MIN_RANK` rounds within `REPRODUCED_REL` of
        it, in every trial. The one rule: `Measurement.unstable` is its negation, and the note
        under a table reads its reason from `reproduction`."""
        return self.spread_rel <= REPRODUCED_REL


def minimum(round_mins: Sequence[float], target: float = REPRODUCED_REL, trials: int = 1
            ) -> Minimum:
    """The `Minimum` of a runner's round minima (one per round: its burst's fastest call).

    With `trials` > 1 the rounds rotate over that many independent instances of the runner (round
    i on trial i % trials: fresh onnxruntime sessions, each with its own buffers and so its own
    placement in memory, which moves a block's fastest call by up to 0.6% from one session to the
    next and so from one run to the next); the spread is then at least the range of the trials'
    own minima, so that the interval covers what another run, with other sessions, would read.
    `near` counts rounds by the same arithmetic as the spread (round / fastest - 1 <= target), so
    `near >= MIN_RANK` exactly when the MIN_RANK-th best round is within the target."""
    n = len(round_mins)
    if n == 0:
        return Minimum(math.nan, math.inf, 0, 0, trials=trials)
    values = np.sort(np.asarray(round_mins, dtype=float))
    best = float(values[0])
    if not best > 0:
        return Minimum(best, math.inf, 0, n, math.inf, trials)
    near = int(np.count_nonzero(values / values[0] - 1 <= target))
    sessions = _session_spread(np.asarray(round_mins, dtype=float), trials)
    return Minimum(best, min_spread_rel(round_mins, trials), near, n, sessions, trials)


def _session_spread(array: np.ndarray, trials: int) -> float:
    """How far the slowest trial's fastest call lies above the fastest call (inf before every
    trial has had a round; 0 with one trial)."""
    if trials <= 1:
        return 0.0
    if array.size < trials:
        return math.inf
    return max(float(array[t::trials].min()) for t in range(trials)) / float(array.min()) - 1


def min_spread_rel(round_mins: Sequence[float], trials: int = 1) -> float:
    """`minimum(round_mins, trials=trials).spread_rel`: how far above the fastest call the
    MIN_RANK-th best round lies, or the slowest trial's fastest call if that is further (inf
    before MIN_RANK rounds, or before every trial has had a round). Cheap: the sampler checks it
    every round."""
    n = len(round_mins)
    if n < max(MIN_RANK, trials):
        return math.inf
    array = np.asarray(round_mins, dtype=float)
    values = np.partition(array, [0, MIN_RANK - 1])
    if not values[0] > 0:
        return math.inf
    spread = float(values[MIN_RANK - 1] / values[0] - 1)
    if trials > 1:
        slowest = max(float(array[t::trials].min()) for t in range(trials))
        spread = max(spread, slowest / float(values[0]) - 1)
    return spread


def ratio_interval(
    ratio: float, spread: float, reference_spread: float
) -> tuple[float, float]:
    """The interval of a ratio of minima, contrast / reference, each known to within its spread
    (another run's minimum lies within value x (1 +- spread)): the ratio at the extremes."""
    if not (math.isfinite(ratio) and math.isfinite(spread) and math.isfinite(reference_spread)):
        return math.nan, math.nan
    high = ratio * (1 + spread) / (1 - reference_spread) if reference_spread < 1 else math.inf
    return ratio * (1 - min(spread, 1.0)) / (1 + reference_spread), high


BUDGET_ADVICE_MAX_S = 60.0  # past a minute per phase, advice to wait longer is no advice


def suggested_budget(budget_s: float, near: int, rank: int = MIN_RANK) -> float:
    """The budget in which a run like this one reaches its minimum `rank` times: rounds within
    the target came `near` times in `budget_s`, so `rank` of them take budget x rank / near
    (rounded up to half a second, at most `BUDGET_ADVICE_MAX_S`)."""
    needed = budget_s * rank / max(near, 1)
    return min(BUDGET_ADVICE_MAX_S, math.ceil(max(needed, budget_s) * 2) / 2)


class Shortfall(str, Enum):
    """Why a run did not reproduce its fastest call (`Minimum.reproduced` is False)."""

    NONE = "reproduced"
    FEW_NEAR = "few near"  # fewer than MIN_RANK rounds within the target: more rounds would help
    FEW_ROUNDS = "few rounds"  # a session (trial) had fewer than MIN_RANK rounds: its fastest
    # call is not known yet, so more rounds would help
    SESSIONS = "sessions"  # each session had its rounds, and one's fastest call is further:
    # where each session's buffers lie in memory, which more rounds of the same sessions keep


@dataclass(frozen=True)
class Reproduction:
    """Whether a run reproduced its fastest call, why not, and the budget that would: the one
    verdict the flag (`!`) and the note under every table read."""

    shortfall: Shortfall
    near: int  # rounds within the target of the fastest call
    rounds: int
    trials: int
    session_spread_rel: float
    budget_s: float | None  # the budget the run had (None: not known here)
    advised_budget_s: float | None  # a larger budget that should reproduce it; None when none
    # is known (no budget given), would not help (SESSIONS), or exceeds BUDGET_ADVICE_MAX_S

    @property
    def too_busy(self) -> bool:
        """More rounds would help, but more than `BUDGET_ADVICE_MAX_S` of them."""
        return (self.shortfall in (Shortfall.FEW_NEAR, Shortfall.FEW_ROUNDS)
                and bool(self.budget_s) and self.advised_budget_s is None)


def reproduction(m: Minimum, budget_s: float | None = None) -> Reproduction:
    """The verdict on `m`, a run of `budget_s` seconds over `m.trials` sessions: reproduced; or
    too few rounds came near the fastest call, or a session had too few rounds to know its own,
    with the budget at which MIN_RANK of them would come (always more than `budget_s`: never the
    budget just used); or the sessions' fastest calls differ, which no budget fixes."""
    # (rounds of the kind that came, rounds of it needed): the budget scales by their ratio
    if m.reproduced:
        shortfall, came, needed = Shortfall.NONE, 0, 0
    elif m.near < MIN_RANK:
        shortfall, came, needed = Shortfall.FEW_NEAR, m.near, MIN_RANK
    elif m.n < MIN_RANK * m.trials:
        shortfall, came, needed = Shortfall.FEW_ROUNDS, m.n, MIN_RANK * m.trials
    else:
        shortfall, came, needed = Shortfall.SESSIONS, 0, 0
    advised = None
    if needed and budget_s:
        advised = suggested_budget(budget_s, came, needed)
        advised = advised if advised > budget_s else None
    return Reproduction(shortfall, m.near, m.n, m.trials, m.session_spread_rel, budget_s,
                        advised)


# --- comparisons of two sample sets ------------------------------------------------------------


def per_round_ratios(samples: dict[str, np.ndarray], reference: str) -> dict[str, np.ndarray]:
    """Each key's samples divided by the reference's sample of the same round.

    `latency.measure` takes one sample per round and lets a runner whose median has converged
    leave the rotation for good, so a runner's k samples are those of rounds 0..k-1: the first
    min(k, k_ref) samples of a runner and of the reference pair round by round, whenever either
    left.
    """
    ref = samples[reference]
    ratios = {}
    for key, values in samples.items():
        n = min(values.size, ref.size)
        ratios[key] = values[:n] / ref[:n]
    return ratios


@dataclass(frozen=True)
class Ratio:
    """Median of round-paired latency ratios (contrast / reference) and its 95% CI."""

    median: float
    ci_low: float
    ci_high: float
    n: int


def paired_ratio(contrast: Sequence[float], reference: Sequence[float]) -> Ratio:
    """The median of the round-paired ratios contrast / reference, with its order-statistic CI."""
    ratios = per_round_ratios(
        {"contrast": np.asarray(contrast, float), "reference": np.asarray(reference, float)},
        "reference",
    )["contrast"]
    low, high = median_ci(ratios)
    return Ratio(float(np.median(ratios)), low, high, len(ratios))


def shifted_mann_whitney(
    baseline: np.ndarray, current: np.ndarray, tolerance: float, alternative: str
) -> float:
    """One-sided Mann-Whitney U p-value with the tolerated change inside the null hypothesis.

    `alternative="greater"`: H1 is that `current` is stochastically larger than `baseline` x
    `tolerance` (slower by more than the tolerance); `"less"`: that `current` x `tolerance` is
    stochastically smaller than `baseline` (faster by more than it). Rank-based, so skewed
    latency samples with a tail need no distribution (gating/decide.py says why).
    """
    from scipy.stats import mannwhitneyu

    baseline, current = np.asarray(baseline, float), np.asarray(current, float)
    if alternative == "greater":
        return float(mannwhitneyu(current, baseline * tolerance, alternative="greater").pvalue)
    if alternative == "less":
        return float(mannwhitneyu(current * tolerance, baseline, alternative="less").pvalue)
    raise ValueError(f"alternative must be 'greater' or 'less', got {alternative!r}")
