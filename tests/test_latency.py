import itertools

import pytest

from mnv2prof.latency import UNSTABLE_REL_IQR, Measurement, TimingSpec, measure_interleaved


def test_statistics_on_synthetic_samples():
    m = Measurement(tuple(float(x) for x in range(1, 10)))  # 1..9
    assert m.n == 9
    assert m.median_ms == 5.0
    assert (m.q1_ms, m.q3_ms, m.iqr_ms) == (3.0, 7.0, 4.0)
    assert m.rel_iqr == pytest.approx(0.8)
    assert m.unstable


def test_tight_samples_are_stable():
    m = Measurement((1.0, 1.01, 0.99, 1.0, 1.02))
    assert m.rel_iqr < UNSTABLE_REL_IQR and not m.unstable


class FakeClock:
    """Each call advances 1 ms; lets the budget logic run without real timing."""

    def __init__(self):
        self.t = itertools.count(step=1_000_000)

    def __call__(self):
        return next(self.t)


def test_interleaved_round_robin_with_rotation_and_budget():
    order = []
    runners = {name: (lambda name=name: order.append(name)) for name in "abc"}
    spec = TimingSpec(budget_s=0.020, warmup=2, min_samples=1, max_samples=100)
    result = measure_interleaved(runners, spec, clock=FakeClock())
    assert order[:6] == ["a", "a", "b", "b", "c", "c"]  # warm-up first, untimed
    timed = order[6:]
    assert timed[:9] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]  # rotated each round
    n = {m.n for m in result.values()}
    assert len(n) == 1  # every variant got the same number of samples
    assert result["a"].samples_ms[0] == 1.0  # one clock tick per call


def test_min_samples_beat_the_budget():
    runners = {"a": lambda: None}
    spec = TimingSpec(budget_s=1e-9, warmup=0, min_samples=7, max_samples=100)
    assert measure_interleaved(runners, spec, clock=FakeClock())["a"].n == 7


def test_progress_reports_fractions():
    seen = []
    spec = TimingSpec(budget_s=0.005, warmup=0, min_samples=1)
    measure_interleaved({"a": lambda: None}, spec, progress=seen.append, clock=FakeClock())
    assert seen[-1] == 1.0 and all(0 < f <= 1 for f in seen)
