"""Calibration on whole networks: context factors and the scale, in closed form."""

import numpy as np
import pytest

from mnv2prof.predictor.calibration import context_fits, summary
from mnv2prof.predictor.fitting import CONTEXT_RANGE, context_factor, fit_context


def _kind(sample, kind, inside, alone):
    return {"sample": sample, "kind": kind, "kernels": 1, "inside_ms": inside, "alone_ms": alone}


def test_context_ratios_are_shares_of_each_model():
    """A: conv 2 inside / 1 alone, gemm 2 / 1 (both as their share): 1 and 1. B: conv 1 / 1,
    gemm 3 / 1: shares of B's 4 inside over its 2 alone give conv 0.5, gemm 1.5. C: 1 and 1.
    Three models, under LINE_MODELS: a constant, the ratios' mean weighted by time alone."""
    kinds = [_kind("a", "conv", 2, 1), _kind("a", "gemm", 2, 1),
             _kind("b", "conv", 1, 1), _kind("b", "gemm", 3, 1),
             _kind("c", "conv", 1, 1), _kind("c", "gemm", 1, 1)]
    fits = context_fits(kinds, {"a": 1e6, "b": 1e7, "c": 1e8})
    assert context_factor(fits["conv"]) == pytest.approx(2.5 / 3, abs=1e-5)
    assert context_factor(fits["gemm"]) == pytest.approx(3.5 / 3, abs=1e-5)
    assert fits["gemm"]["b"] == 0.0


def test_kinds_too_rare_or_too_small_keep_factor_one():
    kinds = [_kind("a", "conv", 1, 1), _kind("b", "conv", 1, 1),  # two models only
             *(_kind(m, "reshape", 0.004, 0.001) for m in "abc")]  # 1 us a kernel
    assert context_fits(kinds, {"a": 1e6, "b": 1e7, "c": 1e8}) == {}


def test_context_factor_is_a_line_in_log_size_read_inside_its_range():
    x = [5, 5.5, 6, 6.5, 7]
    fit = fit_context(x, [1 + 0.5 * (v - 5) for v in x], [1] * 5)  # +0.5 a decade past 1e5
    assert (fit["a"], fit["b"]) == pytest.approx((-1.5, 0.5))
    assert context_factor(fit, 1e6) == pytest.approx(1.5)
    assert context_factor(fit, 1e3) == pytest.approx(1.0)  # below the range: its end
    assert context_factor(fit, 1e9) == pytest.approx(2.0)
    assert context_factor(fit) == pytest.approx(1.5)  # no size: the middle


def test_a_few_models_close_in_size_give_a_constant():
    fit = fit_context([6.9, 6.95, 7.0, 7.02, 7.05], [1, 2, 3, 4, 5], [1] * 5)
    assert fit["b"] == 0.0 and context_factor(fit, 1e7) == pytest.approx(3.0)


def test_context_factors_are_clamped():
    fit = fit_context([6, 6.5, 7], [100.0, 100.0, 100.0], [1, 1, 1])
    assert context_factor(fit, 1e6) == CONTEXT_RANGE[1]


def test_scale_is_the_median_of_measured_over_contextual():
    """Two models, one kind, no factor: predicted 1 + floor 0.1 (1.1 in all); measured 1.21
    and 1.32 beside probes at the reference: scale 1.15 (the median), interval around it."""
    rows = [{"sample": s, "predicted_ms": 1.1, "flops_ms": 1.0, "measured_ms": m, "kernels": 1,
             "probe_ms": 0.5, "weight_bytes": 1e6} for s, m in (("a", 1.21), ("b", 1.32))]
    kinds = [_kind("a", "conv", 1.0, 1.0), _kind("b", "conv", 1.0, 1.0)]
    record = summary(rows, kinds, {}, reference_ms=0.5)
    assert record["scale"] == pytest.approx(1.15)
    low, high = record["interval"]
    assert low == pytest.approx(1.21 / 1.265 + 0.1 * (1.32 - 1.21) / 1.265, rel=1e-3)
    assert high >= 1.0
    assert record["calibrated"]["n"] == 2


def test_dispatch_is_taken_out_before_the_scale():
    """11 kernels at 0.01 ms of dispatch each after the first: 0.1 ms of a measured 1.25."""
    rows = [{"sample": "a", "predicted_ms": 1.0, "flops_ms": 1.0, "measured_ms": 1.25,
             "kernels": 11, "probe_ms": 0.5, "weight_bytes": 1e6}]
    record = summary(rows, [_kind("a", "conv", 1.0, 1.0)], {}, 0.5, dispatch_ms=0.01)
    assert record["scale"] == pytest.approx(1.15) and record["dispatch_ms"] == 0.01


def test_scale_is_a_robust_line_in_log_size():
    """Ratios exp(0.05 x (log10 size - 5)) over sizes 1e4-1e8, one model at 6.6x (a kernel no
    sample resembled): the line is recovered as if it were not there."""
    from mnv2prof.predictor.fitting import fit_scale, scale_factor

    x = np.linspace(4, 8, 21)
    ratios = np.exp(0.05 * (x - 5))
    ratios[3] = 6.6
    fit = fit_scale(x, ratios)
    assert fit["b"] == pytest.approx(0.05, abs=1e-6) and fit["a"] == pytest.approx(-0.25, abs=1e-6)
    assert scale_factor(fit, 1e5) == pytest.approx(1.0, abs=1e-5)
    assert scale_factor(fit, 1e12) == pytest.approx(np.exp(0.15), abs=1e-5)  # read at 1e8
    assert scale_factor(fit) == pytest.approx(np.exp(0.05), abs=1e-5)  # the median size


def test_scale_of_models_close_in_size_is_their_median_ratio():
    from mnv2prof.predictor.fitting import fit_scale, scale_factor

    fit = fit_scale([7.0, 7.1, 7.2, 7.3, 7.4, 7.5], [1.1, 1.2, 1.13, 1.15, 1.3, 9.0])
    assert fit["b"] == 0.0 and scale_factor(fit, 1e7) == pytest.approx(1.175)


def test_a_model_is_predicted_at_the_scale_of_its_size():
    rows = [{"sample": f"m{i}", "predicted_ms": 1.0, "flops_ms": 1.0, "kernels": 1,
             "measured_ms": float(np.exp(0.05 * i)), "probe_ms": 0.5,
             "weight_bytes": 10.0 ** (4 + i)}
            for i in range(5)]
    kinds = [_kind(r["sample"], "conv", 1.0, 1.0) for r in rows]
    record = summary(rows, kinds, {}, reference_ms=0.5)
    assert record["scale"] == pytest.approx(np.exp(0.1), rel=1e-5)  # the middle size, 1e6
    assert record["scale_fit"]["b"] == pytest.approx(0.05, abs=1e-6)
    assert record["calibrated"]["rmspe"] == pytest.approx(0.0, abs=1e-5)
