"""Time kernels alone, on the harness `compare` times blocks with (measure/latency.py).

Each kernel's graph (detect.kernel_graph) gets an `OrtRunner` (the harness's session options,
its input and output pre-bound), and a batch of them is timed by `latency.measure` as `compare`
times a grid point's variants: warm-up calls, then rounds of bursts rotating between the
kernels, each burst after one untimed call (so it starts with its own data in the caches), the
batch's harness floor (an Identity model) riding along. A kernel's time is its fastest call less
the floor's fastest call: the cost of the node, without the cost of a `run` call that the
network pays once, not once per kernel (prediction.py adds the floor back once).

Sampling stops early per kernel once its median's CI and its minimum are within +-2% (the
harness's own rule, `TARGET_CI_REL`), so quiet kernels free the batch's budget for noisy ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mnv2prof import interrupts
from mnv2prof.measure.timing import TimingSpec

FLOOR = "harness floor"
KERNEL_BUDGET_S = 0.08  # seconds of timed rounds per kernel in a batch (the harness's budget)
MIN_BATCH_BUDGET_S = 0.5
SMALLEST_MS = 1e-4  # a kernel no dearer than the floor: 0.1 us, so that its log is finite
TIMING_WARMUP = 3
TIMING_MIN_ROUNDS = 6  # the fewest rounds with a CI of the median (stats.median_ci_ranks)
TIMING_ROUNDS = 12  # bursts are sized for about this many rounds


@dataclass(frozen=True)
class KernelTime:
    key: str
    ms: float  # fastest call less the harness floor's fastest call (at least SMALLEST_MS)
    median_ms: float  # median of the rounds' medians, less the floor's
    spread_rel: float  # how far the 4th-best round lies above the fastest (stats.minimum)
    rounds: int


def kernel_spec(threads: int, kernels: int, kernel_budget_s: float = KERNEL_BUDGET_S
                ) -> TimingSpec:
    """The harness's settings for a batch of `kernels` kernels."""
    return TimingSpec(threads=threads, budget_s=max(MIN_BATCH_BUDGET_S, kernel_budget_s * kernels),
                      warmup=TIMING_WARMUP, min_samples=TIMING_MIN_ROUNDS,
                      rounds_target=TIMING_ROUNDS)


def time_kernels(graphs: Mapping[str, bytes], threads: int = 1,
                 kernel_budget_s: float = KERNEL_BUDGET_S, seed: int = 0
                 ) -> tuple[dict[str, KernelTime], float]:
    """Time each kernel graph (by key) alone: its `KernelTime`, and the floor's fastest call."""
    from mnv2prof.measure.latency import OrtRunner, identity_model, measure

    runners = {}
    for key, graph in graphs.items():
        interrupts.check()
        runners[key] = OrtRunner(graph, threads, seed)
    runners[FLOOR] = OrtRunner(identity_model(), threads, seed)
    measured = measure(runners, kernel_spec(threads, len(graphs), kernel_budget_s),
                       converge=list(graphs))
    floor = measured[FLOOR]
    times = {
        key: KernelTime(key, max(SMALLEST_MS, m.min_ms - floor.min_ms),
                        max(SMALLEST_MS, m.median_ms - floor.median_ms),
                        m.minimum.spread_rel, m.n)
        for key, m in measured.items() if key != FLOOR
    }
    return times, floor.min_ms


NETWORK_BUDGET_S = 2.0  # `compare`'s default --budget


def time_network(model: bytes | str, threads: int = 1, budget_s: float = NETWORK_BUDGET_S,
                 input_shapes: Mapping[str, tuple[int, ...]] | None = None, seed: int = 0
                 ) -> float:
    """A whole model's fastest call (ms), as `compare` times an onnxruntime row of a model
    (run.pipeline.runtime_phases): `TRIALS` sessions rotated round by round, the harness floor
    in the same phase, the model's timing settings (run.model_file.model_timing)."""
    from mnv2prof.measure.latency import TRIALS, OrtRunner, Trials, identity_model, measure
    from mnv2prof.run.model_file import model_timing

    shapes = dict(input_shapes) if input_shapes else None
    runners = {"model": Trials([OrtRunner(model, threads, seed, input_shapes=shapes)
                                for _ in range(TRIALS)]),
               FLOOR: OrtRunner(identity_model(), threads, seed)}
    spec = model_timing(TimingSpec(threads=threads, budget_s=budget_s))
    return measure(runners, spec, converge=["model"])["model"].min_ms
