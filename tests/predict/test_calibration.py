"""Calibration on whole networks: context factors and the scale, in closed form."""

import pytest

from mnv2prof.predict.calibration import CONTEXT_RANGE, context_factors, summary


def _kind(sample, kind, inside, alone):
    return {"sample": sample, "kind": kind, "kernels": 1, "inside_ms": inside, "alone_ms": alone}


def test_context_factors_are_shares_of_each_network():
    """A: conv 2 inside / 1 alone, gemm 2 / 1 (both as their share): 1 and 1. B: conv 1 / 1,
    gemm 3 / 1: shares of B's 4 inside over its 2 alone give conv 0.5, gemm 1.5. Together:
    conv (1 + 0.5) / 2, gemm (1 + 1.5) / 2."""
    kinds = [_kind("a", "conv", 2, 1), _kind("a", "gemm", 2, 1),
             _kind("b", "conv", 1, 1), _kind("b", "gemm", 3, 1)]
    assert context_factors(kinds) == {"conv": 0.75, "gemm": 1.25}


def test_context_factors_are_clamped():
    kinds = [_kind("a", "conv", 100, 1), _kind("a", "gemm", 0.001, 100)]
    factors = context_factors(kinds)
    assert factors == {"conv": CONTEXT_RANGE[1], "gemm": round(CONTEXT_RANGE[0], 4)}


def test_scale_is_the_median_of_measured_over_contextual():
    """Two networks, one kind, factor 1: predicted 1 + floor 0.1 (1.1 in all); measured 1.21
    and 1.32 beside probes at the reference: scale 1.15 (the median), interval around it."""
    rows = [{"sample": s, "predicted_ms": 1.1, "flops_ms": 1.0, "measured_ms": m,
             "probe_ms": 0.5} for s, m in (("a", 1.21), ("b", 1.32))]
    kinds = [_kind("a", "conv", 1.0, 1.0), _kind("b", "conv", 1.0, 1.0)]
    record = summary(rows, kinds, {"conv": 1.0}, reference_ms=0.5)
    assert record["scale"] == pytest.approx(1.15)
    low, high = record["interval"]
    assert low == pytest.approx(min(1.0, 0.05 * 1.32 / 1.265 + 0.95 * 1.21 / 1.265), rel=1e-3)
    assert high >= 1.0
    assert record["calibrated"]["n"] == 2
