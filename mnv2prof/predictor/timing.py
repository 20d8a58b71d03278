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

**Drift.** On a shared machine every kernel of a batch reads a few percent faster or slower
than the same kernel in another batch minutes later (the machine's clock and neighbours: four
timings of 40 kernels spread by 4% per kernel, 2.4% once each timing's common factor was taken
out). So every batch also times the same *probes* (`probe_graphs`, the kernels of one fixed
block), and a kernel's row keeps the probes' time beside its own: the build divides it out
(build.Table), as pyperf's and the harness's rotation share drift within one run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from mnv2prof import interrupts
from mnv2prof.measure.timing import TimingSpec

FLOOR = "harness floor"
PROBE = "probe:"  # the drift probes' keys among the runners
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
                 kernel_budget_s: float = KERNEL_BUDGET_S,
                 probes: Mapping[str, bytes] | None = None, seed: int = 0
                 ) -> tuple[dict[str, KernelTime], float, float]:
    """Time each kernel graph (by key) alone, `probes` in the same rotation: each kernel's
    `KernelTime`, the floor's fastest call, and the probes' (their geometric mean; 0 without)."""
    from mnv2prof.measure.latency import OrtRunner, measure

    runners = {}
    for key, graph in {**graphs, **{PROBE + k: g for k, g in (probes or {}).items()}}.items():
        interrupts.check()
        runners[key] = OrtRunner(graph, threads, seed)
    runners.update(_floor(threads, seed))
    measured = measure(runners, kernel_spec(threads, len(runners) - 1, kernel_budget_s),
                       converge=[k for k in runners if k != FLOOR])
    floor = measured[FLOOR]
    times = {
        key: KernelTime(key, max(SMALLEST_MS, m.min_ms - floor.min_ms),
                        max(SMALLEST_MS, m.median_ms - floor.median_ms),
                        m.minimum.spread_rel, m.n)
        for key, m in measured.items() if key in graphs
    }
    return times, floor.min_ms, _probe_ms(measured, floor.min_ms)


def _floor(threads: int, seed: int) -> dict[str, object]:
    from mnv2prof.artifacts.identity import identity_model
    from mnv2prof.measure.latency import OrtRunner

    return {FLOOR: OrtRunner(identity_model(), threads, seed)}


def _probe_ms(measured: Mapping[str, object], floor_ms: float) -> float:
    """The geometric mean of the probes' fastest calls (less the floor); 0 without probes."""
    values = [max(SMALLEST_MS, m.min_ms - floor_ms) for k, m in measured.items()
              if k.startswith(PROBE)]
    return float(math.exp(sum(map(math.log, values)) / len(values))) if values else 0.0


@lru_cache(maxsize=4)
def probe_graphs(threads: int = 1) -> dict[str, bytes]:
    """The drift probes: the kernels of one fixed block (an inverted residual, C=64, 28x28,
    t=3, k=3, alone: its reorders, convs and add), timed beside every batch. Their time moves
    with the machine's state (its clock, its neighbours), so a kernel's time over its batch's
    probes' is comparable across batches (docs/predictor.md, "drift")."""
    from mnv2prof.predictor.detect import detect, kernel_graph
    from mnv2prof.predictor.graphs import lone_block_model
    from mnv2prof.predictor.space import Block, LoneBlock

    model = lone_block_model(LoneBlock(64, 28, Block("ir", 64, 1, 3, 3.0)), seed=1)
    detected = detect(model.SerializeToString(), threads)
    return {str(i): kernel_graph(detected, k) for i, k in enumerate(detected.kernels)}


def undrift(ms: object, probe_ms: object, reference_ms: float) -> float:
    """A time taken beside probes that read `probe_ms`, as if they had read `reference_ms`."""
    probe = float(probe_ms or 0)
    return float(ms) * reference_ms / probe if probe > 0 and reference_ms > 0 else float(ms)


CHAIN_NODES = 101


def dispatch_ms(threads: int = 1, budget_s: float = 1.0, seed: int = 0) -> float:
    """What onnxruntime's dispatch of one more node costs (ms): the fastest call of a chain of
    `CHAIN_NODES` one-element nodes less a chain of 1, over the nodes between, both timed in
    one rotation on the harness."""
    from mnv2prof.measure.latency import OrtRunner, measure
    from mnv2prof.predictor.graphs import chain_model

    runners = {n: OrtRunner(chain_model(n), threads, seed) for n in (1, CHAIN_NODES)}
    measured = measure(runners, TimingSpec(threads=threads, budget_s=budget_s, warmup=TIMING_WARMUP,
                                           min_samples=TIMING_MIN_ROUNDS))
    return max(0.0, (measured[CHAIN_NODES].min_ms - measured[1].min_ms) / (CHAIN_NODES - 1))


NETWORK_BUDGET_S = 2.0  # `compare`'s default --budget


def time_network(model: bytes | str, threads: int = 1, budget_s: float = NETWORK_BUDGET_S,
                 input_shapes: Mapping[str, tuple[int, ...]] | None = None, seed: int = 0
                 ) -> float:
    """A whole model's fastest call (ms), as `compare` times an onnxruntime row of a model
    (run.pipeline.runtime_phases): `TRIALS` sessions rotated round by round, the harness floor
    in the same phase, the model's timing settings (run.model_file.model_timing)."""
    return time_network_probed(model, threads, budget_s, input_shapes, seed, {})[0]


def time_network_probed(model: bytes | str, threads: int, budget_s: float,
                        input_shapes: Mapping[str, tuple[int, ...]] | None, seed: int,
                        probes: Mapping[str, bytes]) -> tuple[float, float]:
    """`time_network`, the drift probes rotating beside it: (its fastest call, the probes')."""
    from mnv2prof.measure.latency import TRIALS, OrtRunner, Trials, measure
    from mnv2prof.run.model_file import model_timing

    shapes = dict(input_shapes) if input_shapes else None
    runners = {"model": Trials([OrtRunner(model, threads, seed, input_shapes=shapes)
                                for _ in range(TRIALS)]), **_floor(threads, seed)}
    runners.update({PROBE + k: OrtRunner(g, threads, seed) for k, g in probes.items()})
    spec = model_timing(TimingSpec(threads=threads, budget_s=budget_s))
    measured = measure(runners, spec, converge=["model"])
    return measured["model"].min_ms, _probe_ms(measured, measured[FLOOR].min_ms)
