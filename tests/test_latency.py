import itertools

import pytest

from mnv2prof.latency import (
    Measurement,
    OrtRunner,
    TimingSpec,
    identity_model,
    measure_interleaved,
)
from mnv2prof.stats import TARGET_CI_REL


def test_statistics_on_synthetic_samples():
    m = Measurement(tuple(float(x) for x in range(1, 10)))  # 1..9
    assert m.n == 9
    assert m.median_ms == 5.0
    assert (m.q1_ms, m.q3_ms, m.iqr_ms) == (3.0, 7.0, 4.0)
    assert m.rel_iqr == pytest.approx(0.8)
    assert m.p95_ms == pytest.approx(8.6)
    # n = 9: the order-statistic 95% CI of the median is (x(2), x(8)) -> 2 .. 8
    assert (m.ci_low_ms, m.ci_high_ms) == (2.0, 8.0)
    assert m.ci_rel == pytest.approx(0.6)
    assert m.unstable


def test_tight_samples_are_stable():
    m = Measurement((1.0, 1.01, 0.99, 1.0, 1.015, 1.0, 0.995, 1.005))  # CI = min..max
    assert m.ci_rel <= TARGET_CI_REL and not m.unstable


def test_too_few_samples_for_a_ci_are_unstable():
    m = Measurement((1.0, 1.0, 1.0))
    assert m.ci_rel == float("inf") and m.unstable


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


class NoisyRunner:
    """Takes 1 ms on even calls and 3 ms on odd ones under a `StepClock`: its CI never closes."""

    def __init__(self, clock):
        self.clock, self.calls = clock, 0

    def __call__(self):
        self.clock.t += 1_000_000 if self.calls % 2 == 0 else 3_000_000
        self.calls += 1


class StepClock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def test_converged_runners_leave_the_rotation_and_noisy_ones_use_the_budget():
    clock = StepClock()
    steady = {"calls": 0}

    def quiet():
        clock.t += 1_000_000
        steady["calls"] += 1

    runners = {"quiet": quiet, "noisy": NoisyRunner(clock)}
    spec = TimingSpec(budget_s=0.2, warmup=0, min_samples=10, max_samples=1000)
    result = measure_interleaved(runners, spec, clock=clock)
    assert result["quiet"].n == 10  # converged (CI width 0) at the first check
    assert not result["quiet"].unstable
    assert result["noisy"].n > 10 and result["noisy"].unstable


def test_runners_outside_converge_do_not_hold_sampling_open():
    clock = StepClock()
    runners = {"block": lambda: setattr(clock, "t", clock.t + 1_000_000),
               "floor": NoisyRunner(clock)}
    spec = TimingSpec(budget_s=10.0, warmup=0, min_samples=12, max_samples=1000)
    result = measure_interleaved(runners, spec, clock=clock, converge=["block"])
    assert result["block"].n == result["floor"].n == 12


def test_identity_model_runs_pre_bound():
    runner = OrtRunner(identity_model())
    runner()
    (out,) = runner.binding.get_outputs()
    assert out.shape() == [1]
