"""Measure CPU latency with onnxruntime: interleaved, budgeted, raw samples kept.

After torch.utils.benchmark: what was measured (`TimingSpec`) is kept apart from the samples
(`Measurement`), statistics are derived from the raw samples, and "unstable" has a named
threshold.

Hygiene:
- intra-op threads are pinned explicitly (default 1): onnxruntime otherwise takes every core,
  and on a shared 2-core machine that turns a measurement of the block into one of the neighbours;
  inter-op threads are 1 and execution is sequential, so the thread count means one thing;
- inputs and outputs are pre-bound (IO binding with OrtValues allocated once), so the timed
  region is the inference, not numpy conversions or output allocation;
- warm-up runs are excluded;
- variants are measured round robin (one call each per round, the order rotated every round), so
  slow drift of the machine (frequency, neighbours) hits every variant alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# IQR / median above this marks a measurement as too noisy to trust. 0.20, not pyperf's 10%:
# on a shared 2-core machine interleaved samples of sub-millisecond blocks show 10-20% routinely.
UNSTABLE_REL_IQR = 0.20


@dataclass(frozen=True)
class TimingSpec:
    threads: int = 1
    budget_s: float = 2.0  # wall-clock time for the timed rounds of all variants together
    warmup: int = 5  # untimed runs per variant before the first round
    min_samples: int = 10  # rounds run even past the budget
    max_samples: int = 2000


@dataclass(frozen=True)
class Measurement:
    samples_ms: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.samples_ms)

    def quantile(self, q: float) -> float:
        return float(np.quantile(self.samples_ms, q)) if self.samples_ms else float("nan")

    @property
    def median_ms(self) -> float:
        return self.quantile(0.5)

    @property
    def q1_ms(self) -> float:
        return self.quantile(0.25)

    @property
    def q3_ms(self) -> float:
        return self.quantile(0.75)

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms

    @property
    def rel_iqr(self) -> float:
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else float("inf")

    @property
    def unstable(self) -> bool:
        return self.rel_iqr > UNSTABLE_REL_IQR


class OrtRunner:
    """One onnxruntime CPU session with its input and output pre-bound; calling it runs once."""

    def __init__(
        self,
        model_path: Path,
        threads: int = 1,
        seed: int = 0,
        input_shapes: dict[str, tuple[int, ...]] | None = None,  # dims for symbolic inputs
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        rng = np.random.default_rng(seed)
        self.binding = self.session.io_binding()
        self._keep = []  # OrtValues must outlive the binding
        for value in self.session.get_inputs():
            given = (input_shapes or {}).get(value.name)
            shape = list(given) if given else [d if isinstance(d, int) else 1 for d in value.shape]
            array = rng.standard_normal(shape).astype(_numpy_dtype(value.type))
            ort_value = ort.OrtValue.ortvalue_from_numpy(array)
            self._keep.append(ort_value)
            self.binding.bind_ortvalue_input(value.name, ort_value)
        for value in self.session.get_outputs():
            self.binding.bind_output(value.name)
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


def measure_interleaved(
    runners: Mapping[Hashable, Callable[[], None]],
    spec: TimingSpec,
    progress: Callable[[float], None] | None = None,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> dict[Hashable, Measurement]:
    """Time every runner round robin until the budget is spent (at least `min_samples` rounds).

    `progress`, if given, is called after every round with the fraction of the budget used.
    """
    keys = list(runners)
    for key in keys:
        for _ in range(spec.warmup):
            runners[key]()
    samples: dict[Hashable, list[float]] = {key: [] for key in keys}
    budget_ns = spec.budget_s * 1e9
    start = clock()
    rounds = 0
    while rounds < spec.max_samples:
        offset = rounds % len(keys) if keys else 0
        for key in keys[offset:] + keys[:offset]:
            run = runners[key]
            t0 = clock()
            run()
            samples[key].append((clock() - t0) / 1e6)
        rounds += 1
        used = (clock() - start) / budget_ns if budget_ns else 1.0
        if progress is not None:
            progress(min(used, 1.0))
        if used >= 1.0 and rounds >= spec.min_samples:
            break
    return {key: Measurement(tuple(values)) for key, values in samples.items()}
