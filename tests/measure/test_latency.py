import itertools

import pytest

from mnv2prof.artifacts.identity import identity_model
from mnv2prof.errors import UsageError
from mnv2prof.measure.latency import (
    MAX_BURST_CALLS,
    CacheFlusher,
    Measurement,
    OrtRunner,
    burst_calls,
    measure,
    measure_phases,
)
from mnv2prof.measure.stats import TARGET_CI_REL
from mnv2prof.measure.timing import TimingSpec


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


def test_bursts_rotate_round_by_round_after_an_untimed_switch_call():
    order = []
    runners = {name: (lambda name=name: order.append(name)) for name in "abc"}
    # warm-up of 2 calls at 1 ms each; bursts sized for 3 ms: 3 calls (budget 0.18 s / 3 / 20)
    spec = TimingSpec(budget_s=0.180, warmup=2, min_samples=1, max_samples=2, rounds_target=20)
    result = measure(runners, spec, clock=FakeClock())
    assert order[:6] == ["a", "a", "b", "b", "c", "c"]  # warm-up first, untimed, back to back
    timed = order[6:]
    # each burst: 1 untimed switch call + 3 timed ones; the order rotates every round
    assert "".join(timed) == "aaaa" "bbbb" "cccc" "bbbb" "cccc" "aaaa"
    assert {m.burst_calls for m in result.values()} == {3}
    assert result["a"].samples_ms == (1.0, 1.0)  # one sample per round, one clock tick per call


def test_a_sample_is_the_burst_median_and_the_switch_call_is_dropped():
    clock = StepClock()

    class SlowAfterSwitch:
        """50 ms on the first call after another runner ran, 1 ms back to back."""

        def __init__(self):
            self.last = None

        def __call__(self, name):
            clock.t += 50_000_000 if self.last != name else 1_000_000
            self.last = name

    state = SlowAfterSwitch()
    runners = {name: (lambda name=name: state(name)) for name in "ab"}
    spec = TimingSpec(budget_s=10.0, warmup=3, min_samples=4, max_samples=4, rounds_target=1000)
    result = measure(runners, spec, clock=clock)
    # warm-up medians are 1 ms (one slow call in three), so bursts are 5 calls of 1 ms each
    assert {m.burst_calls for m in result.values()} == {5}
    assert result["a"].samples_ms == result["b"].samples_ms == (1.0, 1.0, 1.0, 1.0)


def test_cold_mode_flushes_before_every_timed_call_outside_the_timed_region():
    clock = StepClock()
    events = []

    def flush():
        events.append("flush")
        clock.t += 7_000_000  # a flush takes 7 ms: never part of a sample

    def block():
        events.append("call")
        clock.t += 1_000_000

    spec = TimingSpec(budget_s=0.16, warmup=1, min_samples=2, max_samples=2, cache="cold",
                      rounds_target=1)
    result = measure({"block": block}, spec, clock=clock, flush=flush)
    # two flushes to size it, one warm-up call; bursts of 160 ms / 8 ms = 20 flushed calls
    assert events[:3] == ["flush", "flush", "call"]
    assert events[3:] == ["flush", "call"] * 40  # no untimed switch call in cold mode
    assert result["block"].samples_ms == (1.0, 1.0)
    assert result["block"].burst_calls == 20


def test_each_phase_runs_alone_and_progress_spans_all_phases():
    order, seen = [], []
    ort = {("ort", k): (lambda k=k: order.append(f"ort-{k}")) for k in "ab"}
    eager = {("eager", k): (lambda k=k: order.append(f"eager-{k}")) for k in "ab"}
    spec = TimingSpec(budget_s=0.02, warmup=1, min_samples=3, max_samples=3)
    result = measure_phases([ort, eager], spec, progress=seen.append, clock=FakeClock())
    first_eager = order.index("eager-a")
    assert all(o.startswith("ort") for o in order[:first_eager])
    assert all(o.startswith("eager") for o in order[first_eager:])  # never call by call
    assert set(result) == set(ort) | set(eager)
    assert seen[-1] == 1.0 and max(seen[: len(seen) // 2]) <= 0.5


def test_burst_calls_fill_the_burst_within_limits():
    assert burst_calls(0.1, 0.0, 10.0) == 100
    assert burst_calls(0.1, 4.9, 10.0) == 2  # cold: a flush per call counts
    assert burst_calls(50.0, 0.0, 10.0) == 1  # a slow call still gets one
    assert burst_calls(1e-6, 0.0, 10.0) == MAX_BURST_CALLS
    assert burst_calls(None, 0.0, 10.0) == 1  # no warm-up: nothing to size it by


def test_unknown_cache_mode_is_refused():
    with pytest.raises(UsageError, match="cache must be one of warm, cold, got 'hot'"):
        TimingSpec(cache="hot")


def test_min_samples_beat_the_budget():
    runners = {"a": lambda: None}
    spec = TimingSpec(budget_s=1e-9, warmup=0, min_samples=7, max_samples=100)
    assert measure(runners, spec, clock=FakeClock())["a"].n == 7


def test_progress_reports_fractions():
    seen = []
    spec = TimingSpec(budget_s=0.005, warmup=0, min_samples=1)
    measure({"a": lambda: None}, spec, progress=seen.append, clock=FakeClock())
    assert seen[-1] == 1.0 and all(0 < f <= 1 for f in seen)


class NoisyRunner:
    """Takes 1 ms, 1 ms, 3 ms, 3 ms, ... under a `StepClock`: with an untimed switch call
    before each timed one, its samples alternate 1 and 3 ms, so its CI never closes."""

    def __init__(self, clock):
        self.clock, self.calls = clock, 0

    def __call__(self):
        self.clock.t += 1_000_000 if (self.calls // 2) % 2 == 0 else 3_000_000
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

    runners = {"quiet": quiet, "noisy": NoisyRunner(clock), "drifting": DriftingRunner(clock)}
    spec = TimingSpec(budget_s=0.2, warmup=0, min_samples=10, max_samples=1000)
    result = measure(runners, spec, clock=clock)
    assert result["quiet"].n == 10  # converged (CI width 0) at the first check
    assert not result["quiet"].unstable
    noisy = result["noisy"]  # the median's CI never closes, so it samples to the budget...
    assert noisy.n > 10 and noisy.ci_rel > spec.target_ci_rel
    assert noisy.mins_ms == (1.0, 3.0) * (noisy.n // 2)  # ...but its 1 ms floor recurs:
    assert noisy.min_ms == 1.0 and not noisy.unstable  # the headline is reproduced
    drifting = result["drifting"]  # every round a new fastest call: never reproduced
    assert drifting.n == noisy.n and drifting.unstable and drifting.minimum.near == 1


class DriftingRunner:
    """Each call 5% faster than the last, from 2 ms: no minimum is ever reached twice."""

    def __init__(self, clock):
        self.clock, self.ms = clock, 2.0

    def __call__(self):
        self.clock.t += int(self.ms * 1e6)
        self.ms *= 0.95


def test_runners_outside_converge_do_not_hold_sampling_open():
    clock = StepClock()
    runners = {"block": lambda: setattr(clock, "t", clock.t + 1_000_000),
               "floor": NoisyRunner(clock)}
    spec = TimingSpec(budget_s=10.0, warmup=0, min_samples=12, max_samples=1000)
    result = measure(runners, spec, clock=clock, converge=["block"])
    assert result["block"].n == result["floor"].n == 12


def test_identity_model_runs_pre_bound():
    runner = OrtRunner(identity_model())
    runner()
    (out,) = runner.binding.get_outputs()
    assert out.shape() == [1]


def test_cache_flusher_is_twice_the_last_level_cache():
    flusher = CacheFlusher(llc_bytes=2**20)
    assert flusher.nbytes == 2 * 2**20
    flusher()
    flusher()
    assert int(flusher.buffer[0]) == 2  # every element read and written each time
    from mnv2prof.report.notes import cold_cache_note

    note = cold_cache_note(flusher.llc_bytes)
    assert "2 MiB are read and written (2 x the 1 MiB last-level cache" in note


def test_trials_rotate_round_by_round_and_their_spread_is_kept():
    from mnv2prof.measure.latency import Trials

    clock = StepClock()
    used = []

    def session(ms, name):
        def run():
            used.append(name)
            clock.t += int(ms * 1e6)
        return run

    trials = Trials([session(1.0, "a"), session(1.0, "b"), session(1.06, "c")])
    spec = TimingSpec(budget_s=0.05, warmup=0, min_samples=6, max_samples=6)
    (m,) = measure({"block": trials}, spec, clock=clock).values()
    assert m.trials == 3 and m.mins_ms == (1.0, 1.0, 1.06) * 2  # round i on session i % 3
    assert m.min_ms == 1.0 and m.minimum.spread_rel == pytest.approx(0.06)
    assert m.unstable  # the slowest session is 6% above the fastest call: not within 5%
    assert used[:2] == ["a", "a"] and "c" in used  # the switch call and the burst: one session
