"""Measure CPU latency with onnxruntime: interleaved, budgeted, raw samples kept.

After torch.utils.benchmark: what was measured (`TimingSpec`) is kept apart from the samples
(`Measurement`), statistics are derived from the raw samples (stats.py), and "unstable" has a
named threshold: the 95% CI of the median wider than +-`TARGET_CI_REL` of it.

Sampling is adaptive: rounds continue until every variant's median CI is within the target or the
budget is spent, whichever comes first, so quiet machines finish early and noisy ones use the
whole budget (and say so).

Hygiene:
- intra-op threads are pinned explicitly (default 1): onnxruntime otherwise takes every core,
  and on a shared 2-core machine that turns a measurement of the block into one of the neighbours;
  inter-op threads are 1 and execution is sequential, so the thread count means one thing;
- inputs and outputs are pre-bound (IO binding with OrtValues allocated once), so the timed
  region is the inference, not numpy conversions or output allocation;
- warm-up runs are excluded;
- the harness floor (`identity_model`: one Identity node on one element, run the same way) says
  how much of a sample is the call itself rather than the block;
- variants are measured round robin (one call each per round, the order rotated every round), so
  slow drift of the machine (frequency, neighbours) hits every variant alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Hashable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from mnv2prof.errors import Mnv2profError
from mnv2prof.stats import TARGET_CI_REL, Summary, median_ci_rel, summarize


@dataclass(frozen=True)
class TimingSpec:
    threads: int = 1
    budget_s: float = 2.0  # wall-clock time for the timed rounds of all variants together
    warmup: int = 5  # untimed runs per variant before the first round
    min_samples: int = 10  # rounds run even past the budget
    max_samples: int = 2000
    target_ci_rel: float = TARGET_CI_REL  # stop early once every median's CI is this tight


@dataclass(frozen=True)
class Measurement:
    samples_ms: tuple[float, ...]

    @cached_property
    def summary(self) -> Summary:
        return summarize(self.samples_ms)

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


def identity_model() -> bytes:
    """An ONNX model that copies one float: timing it gives the harness floor (the cost of a
    pre-bound `run_with_iobinding` call and of the clock, with no work to do)."""
    import onnx
    from onnx import TensorProto, helper

    from mnv2prof.export import OPSET

    value = [1]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"], name="identity")],
        "harness_floor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, value)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, value)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


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


def measure_interleaved(
    runners: Mapping[Hashable, Callable[[], float | None]],
    spec: TimingSpec,
    progress: Callable[[float], None] | None = None,
    clock: Callable[[], int] = time.perf_counter_ns,
    converge: Collection[Hashable] | None = None,
) -> dict[Hashable, Measurement]:
    """Time every runner round robin, at least `min_samples` rounds, within the budget.

    Adaptive: after `min_samples` rounds, a runner in `converge` (default: all) whose median CI
    is within `spec.target_ci_rel` leaves the rotation, so the rest of the budget goes to the
    noisy ones; sampling ends when none in `converge` is left or the budget is spent. Runners
    outside `converge` are timed until the end.

    A runner that returns a number has measured itself (CUDA events: the GPU's time, which the
    host clock around an asynchronous launch would not see): that number, in ms, is its sample.
    One that returns None is timed by `clock` around the call.

    `progress`, if given, is called after every round with the fraction of the budget used
    (1.0 at the end, also when the CIs converged first).
    """
    keys = list(runners)
    watched = set(keys if converge is None else [k for k in keys if k in converge])
    pending = set(watched)
    for key in keys:
        for _ in range(spec.warmup):
            runners[key]()
    samples: dict[Hashable, list[float]] = {key: [] for key in keys}
    active = keys
    budget_ns = spec.budget_s * 1e9
    start = clock()
    rounds = 0
    while rounds < spec.max_samples:
        offset = rounds % len(active) if active else 0
        for key in active[offset:] + active[:offset]:
            run = runners[key]
            t0 = clock()
            own_ms = run()
            elapsed_ms = (clock() - t0) / 1e6
            samples[key].append(elapsed_ms if own_ms is None else float(own_ms))
        rounds += 1
        if rounds >= spec.min_samples:
            pending -= {k for k in pending if median_ci_rel(samples[k]) <= spec.target_ci_rel}
            active = [k for k in active if k in pending or k not in watched]
        used = (clock() - start) / budget_ns if budget_ns else 1.0
        done = rounds >= spec.min_samples and (used >= 1.0 or not pending)
        if progress is not None:
            progress(1.0 if done else min(used, 1.0))
        if done:
            break
    return {key: Measurement(tuple(values)) for key, values in samples.items()}
