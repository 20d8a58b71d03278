"""Calibration on whole networks: context factors and the scale, in closed form."""

import pytest

from mnv2prof.predict.calibration import context_fits, summary
from mnv2prof.predict.fitting import CONTEXT_RANGE, context_factor, fit_context


def _kind(sample, kind, inside, alone):
    return {"sample": sample, "kind": kind, "kernels": 1, "inside_ms": inside, "alone_ms": alone}


def test_context_ratios_are_shares_of_each_model():
    """A: conv 2 inside / 1 alone, gemm 2 / 1 (both as their share): 1 and 1. B: conv 1 / 1,
    gemm 3 / 1: shares of B's 4 inside over its 2 alone give conv 0.5, gemm 1.5. Two sizes
    only: a constant, the ratios' mean weighted by time alone."""
    kinds = [_kind("a", "conv", 2, 1), _kind("a", "gemm", 2, 1),
             _kind("b", "conv", 1, 1), _kind("b", "gemm", 3, 1)]
    fits = context_fits(kinds, {"a": 1e6, "b": 1e7})
    assert context_factor(fits["conv"]) == pytest.approx(0.75)
    assert context_factor(fits["gemm"]) == pytest.approx(1.25)
    assert fits["gemm"]["b"] == 0.0


def test_context_factor_is_a_line_in_log_size_read_inside_its_range():
    fit = fit_context([5, 6, 7], [1.0, 1.5, 2.0], [1, 1, 1])  # 1 + 0.5 per decade past 1e5
    assert (fit["a"], fit["b"]) == pytest.approx((-1.5, 0.5))
    assert context_factor(fit, 1e6) == pytest.approx(1.5)
    assert context_factor(fit, 1e3) == pytest.approx(1.0)  # below the range: its end
    assert context_factor(fit, 1e9) == pytest.approx(2.0)
    assert context_factor(fit) == pytest.approx(1.5)  # no size: the middle


def test_context_factors_are_clamped():
    fit = fit_context([6, 6.5, 7], [100.0, 100.0, 100.0], [1, 1, 1])
    assert context_factor(fit, 1e6) == CONTEXT_RANGE[1]


def test_scale_is_the_median_of_measured_over_contextual():
    """Two models, one kind, factor 1: predicted 1 + floor 0.1 (1.1 in all); measured 1.21
    and 1.32 beside probes at the reference: scale 1.15 (the median), interval around it."""
    rows = [{"sample": s, "predicted_ms": 1.1, "flops_ms": 1.0, "measured_ms": m,
             "probe_ms": 0.5, "weight_bytes": 1e6} for s, m in (("a", 1.21), ("b", 1.32))]
    kinds = [_kind("a", "conv", 1.0, 1.0), _kind("b", "conv", 1.0, 1.0)]
    record = summary(rows, kinds, context_fits(kinds, {"a": 1e6, "b": 1e6}), reference_ms=0.5)
    assert record["scale"] == pytest.approx(1.15)
    low, high = record["interval"]
    assert low == pytest.approx(1.21 / 1.265 + 0.05 * (1.32 - 1.21) / 1.265, rel=1e-3)
    assert high >= 1.0
    assert record["calibrated"]["n"] == 2
