import math

import numpy as np
import pytest

from mnv2prof.measure.stats import median_ci, median_ci_ranks, median_ci_rel, summarize


@pytest.mark.parametrize(
    "n, ranks",
    [(6, (0, 5)), (9, (1, 7)), (100, (39, 60))],  # 100: the 40th and 61st order statistics
)
def test_order_statistic_ranks_of_the_median_ci(n, ranks):
    assert median_ci_ranks(n) == ranks


def test_too_few_samples_have_no_ci():
    assert median_ci_ranks(5) is None
    low, high = median_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert math.isnan(low) and math.isnan(high)
    assert summarize([1.0, 2.0]).ci_rel == math.inf


def test_ci_picks_the_order_statistics_whatever_the_sample_order():
    values = np.arange(1.0, 101.0)  # 1..100
    shuffled = np.random.default_rng(0).permutation(values)
    assert median_ci(shuffled) == (40.0, 61.0)


def test_summary_of_a_skewed_sample():
    samples = [1.0] * 51 + [1.01] * 44 + [5.0] * 5  # a floor and a tail of interruptions
    s = summarize(samples)
    assert (s.n, s.median, s.q1, s.q3) == (100, 1.0, 1.0, 1.01)
    assert s.p95 == pytest.approx(1.01 + 0.05 * (5.0 - 1.01))  # numpy's linear interpolation
    assert (s.ci_low, s.ci_high) == (1.0, 1.01)
    assert s.ci_rel == pytest.approx(0.01)  # the larger side: (1.01 - 1.0) / 1.0


def test_ci_narrows_as_n_grows_on_the_same_distribution():
    rng = np.random.default_rng(1)
    widths = [summarize(rng.lognormal(0.0, 0.1, n)).ci_rel for n in (20, 200, 2000)]
    assert widths[0] > widths[1] > widths[2]


@pytest.mark.parametrize("n", [0, 1, 5, 6, 7, 20, 101, 300])
def test_median_ci_rel_equals_the_full_summary(n):
    samples = np.random.default_rng(n).lognormal(0.0, 0.3, n).tolist()
    assert median_ci_rel(samples) == pytest.approx(summarize(samples).ci_rel)


@pytest.mark.parametrize("n", [*range(1, 80), 99, 100, 101, 255, 256, 257, 511, 1000, 1999, 2000])
def test_ranks_are_scipys_quantile_test_ranks(n):
    """The integer ranks are scipy.stats.quantile_test's (checked for every n <= 2000 when
    written; a sample here, scipy imported only by the test)."""
    from scipy.stats import quantile_test

    ci = quantile_test(np.arange(n, dtype=float), q=n / 2, p=0.5).confidence_interval(0.95)
    expected = None if math.isnan(ci.low) or math.isnan(ci.high) else (int(ci.low), int(ci.high))
    assert median_ci_ranks(n) == expected


def test_importing_stats_does_not_import_scipy():
    import subprocess
    import sys

    code = "import sys, mnv2prof.measure.stats; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_minimum_and_how_well_a_run_reproduced_it():
    from mnv2prof.measure.stats import MIN_RANK, min_spread_rel, minimum

    mins = [1.30, 1.00, 1.01, 1.50, 1.015, 1.051, 2.0]  # the 4th best is 1.051: 5.1% above
    m = minimum(mins)
    assert MIN_RANK == 4 and m.value == 1.0 and m.n == 7
    # the 4th best is not within REPRODUCED_REL (5%), and `near` counts by the same arithmetic,
    # so the count and the flag agree (3, not reproduced)
    assert m.spread_rel == pytest.approx(0.051) and m.near == 3 and not m.reproduced
    assert minimum([1.30, 1.00, 1.01, 1.50, 1.015, 1.049]).near == 4
    assert min_spread_rel(mins) == pytest.approx(m.spread_rel)
    assert minimum([1.0, 1.0, 1.0]).spread_rel == math.inf  # fewer than MIN_RANK rounds
    assert math.isnan(minimum([]).value)


def test_a_ratio_of_minima_spans_both_spreads():
    from mnv2prof.measure.stats import ratio_interval

    low, high = ratio_interval(0.5, 0.02, 0.01)  # contrast within 2%, reference within 1%
    assert low == pytest.approx(0.5 * 0.98 / 1.01) and high == pytest.approx(0.5 * 1.02 / 0.99)
    assert ratio_interval(0.5, 0.0, 0.0) == (0.5, 0.5)
    assert all(math.isnan(v) for v in ratio_interval(0.5, math.inf, 0.0))


def test_the_suggested_budget_reaches_the_minimum_min_rank_times():
    from mnv2prof.measure.stats import suggested_budget

    assert suggested_budget(2.0, 1) == 8.0  # 1 near round in 2 s: 4 take 8 s
    assert suggested_budget(2.0, 3) == 3.0  # 2.67 s, rounded up to half a second
    assert suggested_budget(2.0, 0) == 8.0 and suggested_budget(30.0, 1) == 60.0  # at most 60


def test_the_spread_covers_the_slowest_trial():
    from mnv2prof.measure.stats import min_spread_rel, minimum

    # three sessions, rounds rotating over them: session 2's fastest call is 1.5% above
    mins = [1.000, 1.001, 1.015, 1.000, 1.001, 1.016, 1.001, 1.000, 1.015]
    assert minimum(mins).spread_rel == pytest.approx(0.001)  # the 4th best round alone
    assert minimum(mins, trials=3).spread_rel == pytest.approx(0.015)  # the slowest session
    assert min_spread_rel(mins[:2], trials=3) == math.inf  # not every session timed yet


# ---- one verdict on the fastest call: the flag, its reason, the budget that would do ----------


def test_reproduction_reasons_and_the_advised_budget():
    from mnv2prof.measure.stats import Shortfall, minimum, reproduction

    steady = minimum([1.0, 1.01, 1.005, 1.3, 1.002, 1.4])  # 4 rounds within 5%
    assert steady.reproduced and reproduction(steady, 2.0).shortfall is Shortfall.NONE
    assert reproduction(steady, 2.0).advised_budget_s is None

    few = minimum([1.0, 1.5, 1.01, 1.6, 1.7, 1.8, 1.9, 2.0])  # 2 of 8 within 5%
    verdict = reproduction(few, 2.0)
    assert (verdict.shortfall, verdict.near, verdict.rounds) == (Shortfall.FEW_NEAR, 2, 8)
    assert verdict.advised_budget_s == 4.0  # 2 near rounds in 2 s: 4 take 4 s
    assert reproduction(few, None).advised_budget_s is None  # no budget known: none advised

    # 8 rounds within 5% of the fastest call, each session timed 4 times, but the third
    # session's fastest call lies 6.3% above: more rounds of the same sessions cannot bring it
    # down
    sessions = [1.000, 1.001, 1.063, 1.002, 1.000, 1.064, 1.001, 1.003, 1.065, 1.0, 1.0, 1.07]
    m = minimum(sessions, trials=3)
    verdict = reproduction(m, 2.0)
    assert not m.reproduced and m.near == 8 and m.session_spread_rel == pytest.approx(0.063)
    assert verdict.shortfall is Shortfall.SESSIONS and verdict.advised_budget_s is None
    # with 3 rounds a session, a session's own fastest call is not known yet: more rounds help
    verdict = reproduction(minimum(sessions[:9], trials=3), 2.0)
    assert verdict.shortfall is Shortfall.FEW_ROUNDS and verdict.advised_budget_s == 3.0


def test_the_advice_never_names_the_budget_just_used():
    from mnv2prof.measure.stats import BUDGET_ADVICE_MAX_S, minimum, reproduction

    for budget in (0.2, 2.0, 7.5, 59.0, 60.0, 100.0):
        for near in range(1, 4):
            mins = [1.0] * near + [1.5] * 6
            verdict = reproduction(minimum(mins), budget)
            advised = verdict.advised_budget_s
            assert advised is None or advised > budget, (budget, near, advised)
            assert (advised is None) == verdict.too_busy  # then the note says why
            assert advised is None or advised <= BUDGET_ADVICE_MAX_S


def test_the_flag_is_the_verdict_for_any_samples():
    import random

    from mnv2prof.measure.latency import Measurement
    from mnv2prof.measure.stats import Shortfall, reproduction

    rng = random.Random(7)
    for case in range(400):
        n, trials = rng.randint(1, 30), rng.choice([1, 2, 3])
        mins = tuple(1.0 + rng.choice([0.0, 0.01, 0.05, 0.051, 0.1, 0.3]) * rng.random()
                     for _ in range(n))
        m = Measurement(mins, 1, mins, trials)
        verdict = reproduction(m.minimum, 2.0)
        assert m.unstable == (verdict.shortfall is not Shortfall.NONE), (case, mins, trials)
        assert (verdict.near >= 4) == (m.minimum.spread_rel <= 0.05) or trials > 1 or n < 4
