"""Regressors per kind, the FLOPs baseline and the scores, on synthetic data with known
answers."""

import numpy as np
import pytest

from mnv2prof.predictor.fitting import (
    CANDIDATES,
    HOLDOUT_SHARE,
    MIN_SAMPLES_TO_SCORE,
    fit_flops,
    fit_kind,
    pick,
    scores,
    split,
)


def test_scores_closed_form():
    s = scores([1.04, 0.8, 1.0, 1.2], [1.0, 1.0, 1.0, 1.0])
    assert (s.n, s.within_10, s.within_5) == (4, 0.5, 0.5)
    assert s.rmse_ms == pytest.approx(np.sqrt((0.04**2 + 0.2**2 + 0 + 0.2**2) / 4))
    assert s.rmspe == pytest.approx(np.sqrt((0.04**2 + 0.2**2 + 0 + 0.2**2) / 4))


def test_flops_baseline_recovers_a_line():
    macs = np.array([0, 1e6, 2e6, 5e6])
    fit = fit_flops(macs, 2e-7 * macs + 0.01)
    assert fit.ms_per_mac == pytest.approx(2e-7) and fit.ms_per_kernel == pytest.approx(0.01)
    assert fit.network_ms(3e6, 4, 0.005) == pytest.approx(0.6 + 0.04 + 0.005)


def test_split_holds_out_a_fifth_seeded():
    train, test = split(100, seed=3)
    assert len(test) == 100 * HOLDOUT_SHARE and len(train) == 80
    assert not set(train) & set(test)
    assert (split(100, 3)[1] == test).all() and not (split(100, 4)[1] == test).all()


def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(1, 100, size=(n, 3))
    return x, 0.01 * x[:, 0] * x[:, 1] / x[:, 2] + 0.001


def test_fit_kind_picks_the_lowest_held_out_error():
    x, y = _data(200)
    fit = fit_kind("conv", x, y, seed=0)
    assert fit.regressor in CANDIDATES and set(fit.candidates) == set(CANDIDATES)
    assert fit.regressor == pick(fit.candidates)
    assert fit.held_out.n == 40 and fit.held_out.rmspe == pytest.approx(
        fit.candidates[fit.regressor])
    assert len(fit.misses) <= fit.held_out.n


def test_pick_breaks_near_ties_toward_the_faster():
    assert pick({"extra_trees": 0.102, "forest": 0.2, "boosting": 0.100}) == "extra_trees"
    assert pick({"extra_trees": 0.110, "forest": 0.2, "boosting": 0.100}) == "boosting"
    assert pick({"forest": 0.09, "boosting": 0.05}) == "boosting"


def test_misses_are_the_held_out_rows_past_the_threshold_worst_first():
    x, y = _data(200, 1)
    fit = fit_kind("conv", x, y, seed=0, candidates=["forest"], refit=False, miss_rel=0.0)
    assert fit.model is None and len(fit.misses) == fit.held_out.n  # every row misses by > 0
    assert set(fit.misses) == set(split(200, 0)[1])


def test_too_few_samples_are_fitted_but_not_scored():
    x, y = _data(MIN_SAMPLES_TO_SCORE - 1)
    fit = fit_kind("gemm", x, y)
    assert fit.held_out is None and fit.model is not None
