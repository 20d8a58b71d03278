"""One frozen row per measured thing, and its flat form for CSV/JSON (every column names its unit).

Column units: `*_bytes` bytes, `*_ms` milliseconds, `macs` multiply-accumulates (1 MAC = 1),
`flops` = 2 x macs, `elementwise_ops` operations, `params` learnable scalars,
`nodes` a count of graph nodes, `gmacs_per_s` 10^9 MACs per second, `*_x` a ratio (times),
`*_rel` a fraction (0.02 = 2%), `*_flop_per_byte` FLOPs per byte. `latency_*` is onnxruntime,
`eager_*` the torch module run eagerly; `*_ci_low_ms` / `*_ci_high_ms` bound the 95% confidence
interval of the median. Each of the `*_n` samples is the median of one round's burst of
`*_burst_calls` back-to-back calls (latency.py); `*_min_ms` is the fastest call, the headline
(docs/latency.md), `latency_min_spread_rel` how far above it the 4th-best round's fastest call was
(the run reproduced its minimum when that is within 5%), `latency_min_near_n` the rounds that came
within 5% of it (or the slowest of `latency_trials` onnxruntime sessions, if further), and
`latency_mins_ms` every round's fastest call (round i on session i % latency_trials); `cache_mode` is the cache state they were timed
in (warm or cold); `precision` (fp32, int8) and `runtime` (onnxruntime, executorch) what ran
it, `int8_speedup_x` the fp32 latency over the int8 one (same runtime), `int8_max_abs_err` and
`int8_sqnr_db` (dB) the int8 model's error against fp32; `host` the machine. `source` is where a
user's block or model comes from (`PATH.py:NAME`, `module:NAME`, an ONNX file; empty for a built-in)
and `source_hash` the hash of that file's bytes; `input_shape` the dims it is fed (a block's
N x C x H x W). A model's row leaves the block spec columns empty. `cuda_eager_*`, `cuda_graph_*`, `cuda_ort_*` and `cuda_peak_bytes` are
measured on the GPU (empty unless --device cuda).
"""

from __future__ import annotations

from dataclasses import dataclass

from mnv2prof.count.cost import CountedCost
from mnv2prof.measure.env import Environment
from mnv2prof.measure.latency import Measurement
from mnv2prof.models.targets import Target, row_hash

BLOCK_COLUMNS = ("in_chs", "out_chs", "resolution", "exp_ratio", "kernel_size", "stride", "batch",
                 "chunks")


def subject_columns(subject) -> dict[str, object]:
    """The columns that say what a row measured, the same for a block and a model: the block
    spec's fields (empty for a model), `source`, `source_hash` and `input_shape`."""
    from mnv2prof.models.user_models import format_shape
    from mnv2prof.models.variants import BlockSpec

    if isinstance(subject, BlockSpec):
        fields = subject.to_dict()
        columns = {k: fields[k] for k in BLOCK_COLUMNS}
        shape = format_shape(subject.input_shape)
    else:
        columns = dict.fromkeys(BLOCK_COLUMNS)
        shape = subject.shape_text
    return {**columns, "source": subject.source, "source_hash": subject.source_hash,
            "input_shape": shape}


@dataclass(frozen=True)
class Record:
    subject: object  # what was measured: a BlockSpec or a ModelSpec (label, variant, spec, hash)
    cost: CountedCost
    latency: Measurement
    threads: int
    env: Environment
    cache_mode: str = "warm"  # latency.CACHE_MODES: the cache state every latency was timed in
    eager: Measurement | None = None  # the torch module's latency, when it was timed
    measured_peak_bytes: int | None = None  # eager.measure_memory: live bytes at op boundaries
    measured_alloc_peak_bytes: int | None = None  # ... and at any allocation (kernel scratch)
    cuda_eager: Measurement | None = None  # --device cuda: torch eagerly on the GPU (CUDA events)
    cuda_graph: Measurement | None = None  # ... the same module replayed as a CUDA graph
    cuda_ort: Measurement | None = None  # ... onnxruntime's CUDAExecutionProvider
    cuda_peak_bytes: int | None = None  # cuda.measure_peak_memory: one forward, input included
    target: Target = Target()  # the precision and runtime it ran in
    int8_speedup_x: float | None = None  # int8 rows: fp32 latency / int8 latency, same runtime
    int8_max_abs_err: float | None = None  # int8 rows: against fp32, held-out inputs
    int8_sqnr_db: float | None = None

    @property
    def label(self) -> str:
        """The row's unique name: the variant, with /kK for chunks (mbv2-streamed/k2)."""
        return self.subject.label

    @property
    def variant(self) -> str:
        return self.subject.variant

    @property
    def spec(self) -> str:
        """The canonical spec string, e.g. mbv2_c32_r56_e6_k3_s1_b1."""
        return self.subject.name

    @property
    def spec_hash(self) -> str:
        return row_hash(self.subject, self.threads, self.target)

    @property
    def gmacs_per_s(self) -> float:
        median = self.latency.median_ms
        return self.cost.macs / (median * 1e-3) / 1e9 if median > 0 else 0.0

    def row(self) -> dict[str, object]:
        c, m = self.cost, self.latency
        return {
            "variant": self.variant,
            "spec": self.spec,
            "spec_hash": self.spec_hash,
            **subject_columns(self.subject),
            "threads": self.threads,
            "cache_mode": self.cache_mode,
            "precision": self.target.precision,
            "runtime": self.target.runtime,
            "params": c.params,
            "macs": c.macs,
            "flops": c.flops,
            "elementwise_ops": c.elementwise_ops,
            "peak_act_bytes": c.peak_act_bytes,
            "weight_bytes": c.weight_bytes,
            "bytes_moved": c.bytes_moved,
            "nodes": c.nodes,
            "arith_intensity_flop_per_byte": round(c.arithmetic_intensity, 4),
            "latency_median_ms": round(m.median_ms, 6),
            "latency_q1_ms": round(m.q1_ms, 6),
            "latency_q3_ms": round(m.q3_ms, 6),
            "latency_iqr_ms": round(m.iqr_ms, 6),
            "latency_p95_ms": round(m.p95_ms, 6),
            "latency_ci_low_ms": round(m.ci_low_ms, 6),
            "latency_ci_high_ms": round(m.ci_high_ms, 6),
            "latency_ci_rel": round(m.ci_rel, 6),
            "latency_n": m.n,
            "latency_burst_calls": m.burst_calls,
            "latency_min_ms": _rounded(m.min_ms, 6),
            "latency_min_spread_rel": _rounded(m.minimum.spread_rel, 6),
            "latency_min_near_n": m.minimum.near,
            "latency_trials": m.trials,
            "latency_unstable": m.unstable,
            "int8_speedup_x": _rounded(self.int8_speedup_x, 4),
            "int8_max_abs_err": _rounded(self.int8_max_abs_err, 6),
            "int8_sqnr_db": _rounded(self.int8_sqnr_db, 2),
            **_eager_columns(self.eager),
            "measured_peak_bytes": self.measured_peak_bytes,
            "measured_alloc_peak_bytes": self.measured_alloc_peak_bytes,
            "cuda_peak_bytes": self.cuda_peak_bytes,
            **_measurement_columns("cuda_eager", self.cuda_eager),
            **_measurement_columns("cuda_graph", self.cuda_graph),
            **_measurement_columns("cuda_ort", self.cuda_ort),
            "gmacs_per_s": round(self.gmacs_per_s, 4),
            "unhandled_ops": c.unhandled_ops,
            "latency_samples_ms": " ".join(f"{s:.5f}" for s in m.samples_ms),
            "latency_mins_ms": " ".join(f"{s:.6f}" for s in m.mins_ms),
            "host": _hostname(),  # the machine that measured the row (row() runs there)
            **self.env.columns(),
        }


def _eager_columns(m: Measurement | None) -> dict[str, object]:
    return _measurement_columns("eager", m)


def _measurement_columns(prefix: str, m: Measurement | None) -> dict[str, object]:
    """A measurement's summary columns (empty, n 0, when it was not taken)."""
    names = ("median", "q1", "q3", "p95", "ci_low", "ci_high", "min")
    if m is None:
        return {f"{prefix}_{k}_ms": None for k in names} | {
            f"{prefix}_ci_rel": None,
            f"{prefix}_n": 0,
            f"{prefix}_burst_calls": 0,
            f"{prefix}_unstable": None,
        }
    return {
        **{f"{prefix}_{k}_ms": round(getattr(m, f"{k}_ms"), 6) for k in names},
        f"{prefix}_ci_rel": round(m.ci_rel, 6),
        f"{prefix}_n": m.n,
        f"{prefix}_burst_calls": m.burst_calls,
        f"{prefix}_unstable": m.unstable,
    }


def row_columns() -> list[str]:
    """The columns of every row (`Record.row()`, a block's or a model's), in order, known before
    anything is measured: what a sweep journal must have to be resumed."""
    import dataclasses

    from mnv2prof.models.variants import BlockSpec

    env = Environment(**{
        f.name: 0 if f.type in (int, "int") else "" for f in dataclasses.fields(Environment)
    })
    placeholder = Record(
        subject=BlockSpec("conv"), cost=CountedCost(0, 0, 0, 0, 0, 0, ""),
        latency=Measurement((1.0,)), threads=1, env=env,
    )
    return list(placeholder.row())


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _hostname() -> str:
    import socket

    return socket.gethostname()
