"""The paired per-round verdict of issue 33, on synthetic samples (never on real timings)."""

import math

import numpy as np
import pytest

from mnv2prof.measure.paired import (
    PairVerdict,
    judge,
    lower_bound_rank,
    paired_ratios,
    sign_test,
    upper_tail,
)


def _rounds(n, ratio, noise, seed=0, slow_rounds=()):
    """n rounds of a base near 1 ms and a change `ratio` times it; `slow_rounds` rounds run
    1.3x slower on both sides (the machine's slow state), which pairing must cancel."""
    rng = np.random.default_rng(seed)
    base = 1.0 + rng.normal(0, noise, n)
    change = ratio * (1.0 + rng.normal(0, noise, n))
    for i in slow_rounds:
        base[i] *= 1.3
        change[i] *= 1.3
    return base, change


def test_binomial_tails_are_exact():
    assert upper_tail(10, 0) == 1.0 and upper_tail(10, 11) == 0.0
    assert upper_tail(10, 10) == 1 / 1024
    assert upper_tail(4, 3) == 5 / 16


@pytest.mark.parametrize("n", [1, 5, 6, 10, 20, 57, 200])
def test_the_lower_bound_rank_is_the_binomial_quantile(n):
    scipy = pytest.importorskip("scipy.stats")
    rank = lower_bound_rank(n, 0.01)
    expected = [k for k in range(1, n + 1) if scipy.binom.sf(k - 1, n, 0.5) >= 0.99]
    assert rank == (max(expected) if expected else None)


def test_sign_test_counts_the_rounds_on_each_side():
    ratios = np.array([1.1, 1.2, 0.9, 1.0, 1.3])
    p_slower, p_faster = sign_test(ratios)
    assert p_slower == upper_tail(4, 3) and p_faster == upper_tail(4, 1)


def test_pairing_cancels_a_slow_state_both_sides_share():
    base, change = _rounds(30, 1.0, 0.005, slow_rounds=range(0, 30, 3))
    verdict = judge(base, change, max_slowdown=0.05)
    assert verdict.verdict is PairVerdict.PASS
    assert abs(verdict.ratio - 1.0) < 0.01 and verdict.mde_rel < 0.02 and verdict.n == 30
    assert verdict.ci_low <= 1.0 <= verdict.ci_high


def test_a_ten_percent_slowdown_fails_and_a_speed_up_is_said():
    base, change = _rounds(20, 1.10, 0.01, seed=1)
    assert judge(base, change, 0.05).verdict is PairVerdict.SLOWER
    base, change = _rounds(20, 0.85, 0.01, seed=2)
    assert judge(base, change, 0.05).verdict is PairVerdict.FASTER


def test_a_slowdown_inside_the_tolerance_passes():
    base, change = _rounds(20, 1.03, 0.005, seed=3)
    verdict = judge(base, change, 0.05)
    assert verdict.verdict is PairVerdict.PASS and verdict.p_slower < 0.01


def test_too_much_spread_is_inconclusive_with_its_detectable_effect():
    base, change = _rounds(12, 1.0, 0.08, seed=4)
    verdict = judge(base, change, 0.05)
    assert verdict.verdict is PairVerdict.INCONCLUSIVE and verdict.mde_rel > 0.05


def test_too_few_rounds_for_any_bound_is_inconclusive():
    verdict = judge([1.0] * 3, [1.2] * 3, 0.05)
    assert lower_bound_rank(3, 0.01) is None
    assert verdict.verdict is PairVerdict.INCONCLUSIVE and math.isinf(verdict.mde_rel)


def test_rounds_past_the_shorter_side_are_left_out():
    assert paired_ratios([1, 2, 4], [2, 2]).tolist() == [2.0, 1.0]
    assert judge([], [], 0.05).n == 0
