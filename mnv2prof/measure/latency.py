"""Measure latency: runners timed in bursts of back-to-back calls, one runtime at a time.

After torch.utils.benchmark: what was measured (`TimingSpec`) is kept apart from the samples
(`Measurement`), statistics are derived from the samples (stats.py), and "unstable" has a named
threshold: the 95% CI of the median wider than +-`TARGET_CI_REL` of it.

**A number a block owns.** A block's latency must depend on the block, the runtime, the machine
and a cache state the user chose, never on which other blocks or runtimes ran beside it. Calls
that alternate between sessions start from the caches (and predictors, TLBs, thread pools) the
previous block left: dwsep measured 1.8x slower that way than back to back, and an onnxruntime
call that follows an eager torch forward 1.6x slower. So (`measure`):

- every runner is timed in **bursts** of back-to-back calls (torch.utils.benchmark's
  `blocked_autorange` times blocks of calls too); the first call after a switch to the runner is
  run untimed and dropped, so a burst measures the block with its own state in the caches
  (`CACHE_WARM`);
- bursts still **rotate** between runners, round by round, the order rotated every round, so
  slow drift of the machine (frequency, neighbours) hits every runner alike;
- **one sample per round**: the median of that round's burst. Rounds, not calls, are the
  independent unit (calls of one burst share the machine's state of that moment), so the CI of
  the median is over rounds and the gate's round-by-round pairing pairs sample i with sample i;
- `CACHE_COLD`: before every timed call, outside the timed region, a buffer of twice the
  last-level cache is read and written (`CacheFlusher`), so each call starts with its weights and
  input in DRAM (Triton's `do_bench` and nvbench flush the GPU's L2 the same way). The number is
  then independent of the neighbours by construction;
- each runtime (onnxruntime, eager torch, each GPU runtime) is timed in **its own phase**
  (`measure_phases`) with its own budget: never call by call beside another runtime.

Sampling is adaptive: rounds continue until every runner's median CI is within the target or the
phase's budget is spent, whichever comes first, so quiet machines finish early and noisy ones use
the whole budget (and say so). Bursts are sized so the budget holds about `rounds_target` rounds.

Hygiene:
- intra-op threads are pinned explicitly (default 1): onnxruntime otherwise takes every core,
  and on a shared 2-core machine that turns a measurement of the block into one of the neighbours;
  inter-op threads are 1 and execution is sequential, so the thread count means one thing;
- inputs and outputs are pre-bound (IO binding with OrtValues allocated once), so the timed
  region is the inference, not numpy conversions or output allocation;
- warm-up calls are excluded (they also size each runner's burst);
- the harness floor (`identity_model`: one Identity node on one element, run the same way) says
  how much of a sample is the call itself rather than the block.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from mnv2prof import interrupts
from mnv2prof.errors import Mnv2profError
from mnv2prof.measure.stats import (
    TARGET_CI_REL,
    Minimum,
    Summary,
    median_ci_rel,
    min_spread_rel,
    minimum,
    summarize,
)
from mnv2prof.measure.timing import CACHE_COLD, TimingSpec


@dataclass(frozen=True)
class Measurement:
    """One sample per round: the median of that round's burst of `burst_calls` timed calls, and
    the burst's fastest call (`mins_ms`, empty for rows read from an older CSV)."""

    samples_ms: tuple[float, ...]
    burst_calls: int = 1  # timed calls per burst (the first call after a switch is not among them)
    mins_ms: tuple[float, ...] = ()  # each round's fastest call
    trials: int = 1  # independent instances the rounds rotated over (round i on trial i % trials)

    @cached_property
    def summary(self) -> Summary:
        return summarize(self.samples_ms)

    @cached_property
    def minimum(self) -> Minimum:
        """The headline: the fastest call, and whether the run reproduced it (stats.minimum)."""
        return minimum(self.mins_ms, trials=self.trials)

    @property
    def min_ms(self) -> float:
        return self.minimum.value

    @property
    def n(self) -> int:
        return len(self.samples_ms)

    @property
    def median_ms(self) -> float:
        return self.summary.median

    @property
    def q1_ms(self) -> float:
        return self.summary.q1

    @property
    def q3_ms(self) -> float:
        return self.summary.q3

    @property
    def iqr_ms(self) -> float:
        return self.summary.iqr

    @property
    def p95_ms(self) -> float:
        return self.summary.p95

    @property
    def ci_low_ms(self) -> float:
        return self.summary.ci_low

    @property
    def ci_high_ms(self) -> float:
        return self.summary.ci_high

    @property
    def ci_rel(self) -> float:
        """Half-width of the median's 95% CI over the median (inf when n is too small)."""
        return self.summary.ci_rel

    @property
    def rel_iqr(self) -> float:
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else float("inf")

    @property
    def unstable(self) -> bool:
        """The headline is not reliable: the minimum was not reproduced (its `MIN_RANK`-th best
        round is more than `TARGET_CI_REL` above it); without minima, the median's CI is wider
        than +-`TARGET_CI_REL`."""
        if self.mins_ms:
            return not self.minimum.reproduced  # stats.reproduction: the one rule
        return self.ci_rel > TARGET_CI_REL


class ProviderError(Mnv2profError):
    """onnxruntime lists an execution provider but could not load it (missing CUDA libraries)."""


class OrtRunner:
    """One onnxruntime CPU session with its input and output pre-bound; calling it runs once.

    `model_path` is a path, or the serialized model as bytes.
    """

    def __init__(
        self,
        model_path: Path | bytes,
        threads: int = 1,
        seed: int = 0,
        input_shapes: dict[str, tuple[int, ...]] | None = None,  # dims for symbolic inputs
        profile_prefix: str | None = None,  # write onnxruntime's JSON trace (kernel times)
        optimized_model_path: Path | None = None,  # save the graph onnxruntime runs (fused)
        device: str = "cpu",  # "cuda": CUDAExecutionProvider, inputs and outputs bound on the GPU
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if profile_prefix is not None:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        if optimized_model_path is not None:
            options.optimized_model_filepath = str(optimized_model_path)
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ProviderError("onnxruntime could not load CUDAExecutionProvider (not installed)")
        self.session = ort.InferenceSession(
            model_path if isinstance(model_path, bytes) else str(model_path),
            options,
            providers=["CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"],
        )
        if device == "cuda" and "CUDAExecutionProvider" not in self.session.get_providers():
            # onnxruntime falls back to the CPU in silence when the provider fails to load
            raise ProviderError("onnxruntime could not load CUDAExecutionProvider")
        place = ("cuda", 0) if device == "cuda" else ("cpu", 0)
        rng = np.random.default_rng(seed)
        self.binding = self.session.io_binding()
        self._keep = []  # OrtValues must outlive the binding
        for value in self.session.get_inputs():
            given = (input_shapes or {}).get(value.name)
            shape = list(given) if given else [d if isinstance(d, int) else 1 for d in value.shape]
            array = rng.standard_normal(shape).astype(_numpy_dtype(value.type))
            ort_value = ort.OrtValue.ortvalue_from_numpy(array, *place)
            self._keep.append(ort_value)
            self.binding.bind_ortvalue_input(value.name, ort_value)
        for value in self.session.get_outputs():
            self.binding.bind_output(value.name, place[0])
        self()  # first run allocates the outputs; bind them so later runs reuse the buffers
        for value, ort_value in zip(
            self.session.get_outputs(), self.binding.get_outputs(), strict=True
        ):
            self._keep.append(ort_value)
            self.binding.bind_ortvalue_output(value.name, ort_value)

    def __call__(self) -> None:
        self.session.run_with_iobinding(self.binding)


def _numpy_dtype(ort_type: str) -> type:
    return {
        "tensor(float)": np.float32,
        "tensor(double)": np.float64,
        "tensor(float16)": np.float16,
        "tensor(int64)": np.int64,
        "tensor(int32)": np.int32,
        "tensor(uint8)": np.uint8,
        "tensor(int8)": np.int8,
        "tensor(bool)": np.bool_,
    }.get(ort_type, np.float32)




Runner = Callable[[], float | None]  # returns its own ms (CUDA events), or None: host-timed

TRIALS = 3  # onnxruntime sessions per block, rotated round by round (`Trials`)


class Trials:
    """Independent instances of one runner, rotated round by round: `measure` calls
    `select(round)` before each round's burst, so round i runs on trial i % len(trials).

    Fresh onnxruntime sessions of one file each get their own buffers, and so their own place
    in memory: on the 2-core development machine a block's fastest call moves by up to 0.6%
    from one session to the next (dwsep: 0.1238-0.1245 ms over six sessions in one process,
    each reproducible within 0.2%), which is what made one run's interval miss the next run's
    ratio. Timing several sessions in one budget puts that spread inside the run
    (stats.minimum), as pyperf's worker processes do."""

    def __init__(self, runners: Sequence[Runner]) -> None:
        self.runners = list(runners)
        self.current = self.runners[0]

    def __len__(self) -> int:
        return len(self.runners)

    def select(self, round_index: int) -> Runner:
        """The trial of round `round_index`, made current: `measure` times it directly, so the
        timed call has no wrapper around it."""
        self.current = self.runners[round_index % len(self.runners)]
        return self.current

    def __call__(self) -> float | None:
        return self.current()

FLUSH_LLC_MULTIPLE = 2  # the cold mode's buffer, in last-level caches
MAX_BURST_CALLS = 1000  # a burst's timed calls at most (the harness floor would take thousands)


class CacheFlusher:
    """Evicts the CPU caches: reads and writes every line of a buffer `FLUSH_LLC_MULTIPLE` times
    the last-level cache (an in-place add, so regular stores: a large fill may use non-temporal
    stores that bypass the cache and evict nothing)."""

    def __init__(self, llc_bytes: int | None = None) -> None:
        from mnv2prof.measure.machine import last_level_cache_bytes

        self.llc_bytes = llc_bytes or last_level_cache_bytes()
        self.buffer = np.zeros(FLUSH_LLC_MULTIPLE * self.llc_bytes // 8, dtype=np.int64)

    @property
    def nbytes(self) -> int:
        return self.buffer.nbytes

    def __call__(self) -> None:
        np.add(self.buffer, 1, out=self.buffer)


def measure(
    runners: Mapping[Hashable, Runner],
    spec: TimingSpec,
    progress: Callable[[float], None] | None = None,
    clock: Callable[[], int] = time.perf_counter_ns,
    converge: Collection[Hashable] | None = None,
    flush: Callable[[], None] | None = None,
    paired: bool = False,
) -> dict[Hashable, Measurement]:
    """Time every runner in bursts, rotated round robin, at least `min_samples` rounds, within
    `spec.budget_s` (see the module docstring).

    Each runner's bursts are sized by `_burst_sizes`. In each round a runner makes one untimed
    call (warm mode: the call that pays for the switch) and then its burst of timed calls; the
    burst's median is its sample of the round. In cold mode `flush` (default: a `CacheFlusher`)
    runs before every timed call, outside the timed region.

    Adaptive: after `min_samples` rounds, a runner in `converge` (default: all) whose median CI
    is within `spec.target_ci_rel` leaves the rotation for good (so its samples are those of
    rounds 0..k-1), and the rest of the budget goes to the noisy ones; sampling ends when none
    in `converge` is left or the budget is spent. Runners outside `converge` run to the end;
    with `paired` (an A/B gate) none leaves, so round i is the same round for every runner.
    A runner returning a number measured itself (CUDA events, ms); None: `clock` times it.
    `progress` gets the fraction of the budget used after every round (1.0 at the end).
    """
    keys = list(runners)
    if not keys:
        return {}
    watched = set(keys if converge is None else [k for k in keys if k in converge])
    pending = set(watched)
    flush = (flush or CacheFlusher()) if spec.cache == CACHE_COLD else None
    calls = _burst_sizes(runners, spec, clock, flush)
    samples: dict[Hashable, list[float]] = {key: [] for key in keys}
    mins: dict[Hashable, list[float]] = {key: [] for key in keys}
    trials = {key: len(r) if isinstance(r, Trials) else 1 for key, r in runners.items()}
    active = keys
    budget_ns = spec.budget_s * 1e9
    start = clock()
    rounds, done = 0, False
    while not done:
        interrupts.check()  # a signal stops the timing between rounds, never inside a call
        for key in _round_order(active, rounds, paired):
            run = runners[key]
            median, fastest = _burst(run.select(rounds) if isinstance(run, Trials) else run,
                                     calls[key], clock, flush)
            samples[key].append(median)
            mins[key].append(fastest)
        rounds += 1
        if rounds >= spec.min_samples:
            pending -= {k for k in pending if _converged(samples[k], mins[k], trials[k], spec)}
            if not paired:  # paired: every runner stays, so round i is round i of each
                active = [k for k in active if k in pending or k not in watched]
        used = (clock() - start) / budget_ns if budget_ns else 1.0
        done = rounds >= spec.max_samples or (
            rounds >= spec.min_samples and (used >= 1.0 or not pending)
        )
        if progress is not None:
            progress(1.0 if done else min(used, 1.0))
    return {key: Measurement(tuple(values), calls[key], tuple(mins[key]), trials[key])
            for key, values in samples.items()}


def _round_order(active: list, rounds: int, paired: bool) -> list:
    """Who goes first rotates round by round; `paired` (runners listed base, change, base,
    change...): the order reverses every round, so each change runs after its base in one round
    and before it in the next."""
    if paired:
        return active if rounds % 2 == 0 else active[::-1]
    offset = rounds % len(active) if active else 0
    return active[offset:] + active[:offset]


def _burst_sizes(runners: Mapping[Hashable, Runner], spec: TimingSpec,
                 clock: Callable[[], int], flush: Callable[[], None] | None) -> dict:
    """Each runner's timed calls per burst, from the median of its `spec.warmup` untimed calls,
    so that a round of every runner takes about budget / `rounds_target`."""
    flush_ms = 0.0
    if flush is not None:
        flush()  # the first pass faults the buffer's pages in: not what a flush costs
        flush_ms = _timed(flush, clock)
    burst_ms = spec.budget_s * 1e3 / (len(runners) * spec.rounds_target)
    calls = {}
    for key, run in runners.items():
        interrupts.check()
        warm_ms = [_timed(run, clock) for _ in range(spec.warmup)]
        calls[key] = burst_calls(float(np.median(warm_ms)) if warm_ms else None, flush_ms, burst_ms)
    return calls


def _converged(samples: list[float], mins: list[float], trials: int, spec: TimingSpec) -> bool:
    """Both the median's CI and the fastest call's spread are within `spec.target_ci_rel`."""
    return (median_ci_rel(samples) <= spec.target_ci_rel
            and min_spread_rel(mins, trials) <= spec.target_ci_rel)


def measure_phases(
    phases: Sequence[Mapping[Hashable, Runner]],
    spec: TimingSpec,
    progress: Callable[[float], None] | None = None,
    clock: Callable[[], int] = time.perf_counter_ns,
    converge: Collection[Hashable] | None = None,
    paired: bool = False,
) -> dict[Hashable, Measurement]:
    """`measure` each phase (one runtime's runners) on its own, one after the other, each with
    the whole `spec.budget_s`: no runtime is ever timed call by call beside another. Keys must be
    unique across phases; `progress` sees the fraction of all phases; `paired`: every runner
    takes part in every round (measure)."""
    flush = CacheFlusher() if spec.cache == CACHE_COLD else None
    measured: dict[Hashable, Measurement] = {}
    for index, runners in enumerate(phases):

        def scaled(fraction: float, index: int = index) -> None:
            if progress is not None:
                progress((index + fraction) / len(phases))

        measured.update(measure(runners, spec, scaled, clock, converge, flush, paired))
    return measured


def burst_calls(call_ms: float | None, flush_ms: float, burst_ms: float) -> int:
    """Timed calls in a burst of about `burst_ms` for a call of `call_ms` (+ a flush each)."""
    if call_ms is None or not call_ms + flush_ms > 0:
        return 1
    return int(min(MAX_BURST_CALLS, max(1, round(burst_ms / (call_ms + flush_ms)))))


def _timed(run: Runner, clock: Callable[[], int]) -> float:
    """One call, in ms: its own number if it measured itself, else the clock around it."""
    t0 = clock()
    own_ms = run()
    elapsed_ms = (clock() - t0) / 1e6
    return elapsed_ms if own_ms is None else float(own_ms)


def _burst(
    run: Runner, calls: int, clock: Callable[[], int], flush: Callable[[], None] | None
) -> tuple[float, float]:
    """The median and the minimum of `calls` timed calls: back to back after one untimed call
    (warm), or each after a flush of the caches (cold)."""
    if flush is None:
        run()  # the switch: this call starts from the caches the previous runner left
    times = []
    for _ in range(calls):
        if flush is not None:
            flush()
        times.append(_timed(run, clock))
    return statistics.median(times), min(times)
