"""This machine's roofline: peak compute and memory bandwidth, measured, and each block's bound.

The roofline model (Williams, Waterman and Patterson, 2009) says a kernel that does F FLOPs and
moves B bytes takes at least max(F / peak, B / bandwidth). Both ceilings are measured here in
onnxruntime, with the harness every block is timed with (`latency.OrtRunner`,
`latency.measure`, warm bursts), at the thread count the blocks run at:

- peak compute: the faster of an N x N x N MatMul (2 N^3 FLOPs) and a 3x3 conv 128 -> 128 on
  56x56 (onnxruntime's blocked NCHWc conv kernels, which beat its MatMul by ~20% here), both
  large enough that their time is arithmetic;
- bandwidth from memory: one Add over arrays each as large as the last-level cache (reads two,
  writes one: 3 x 4 bytes per element), so the traffic cannot be served from cache;
- bandwidth from cache: a chain of Adds over arrays that fit in a quarter of the L2 cache.

A bound must never be beaten by a measurement, so each ceiling is the *best* sample (what the
machine can do), not the median, and the bound divides bytes by the higher of the two
bandwidths: a block's few MiB of activations live in cache, and dividing them by the DRAM
bandwidth would give a "bound" the block beats. Efficiency = bound / measured median latency,
at most 1 when the bound is right; a row above 1 is reported as a wrong bound, never hidden.

The ceilings are stored by run.machine_file (keyed by CPU model and threads, under the cache
root); run.frame.add_roofline adds each row's bound and efficiency; report.notes says them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

CEILINGS_FORMAT = 2  # bump when the measurement changes, to ignore older calibrations
GEMM_N = 1024  # 2.1 GFLOP per run: far above the harness floor, a few ms per run
CONV_C, CONV_HW = 128, 56  # 3x3 conv: 0.92 GFLOP per run, the blocks' own kernel path
FLOAT_BYTES = 4
CACHE_ADD_CHAIN = 64  # Adds in series on cache-resident arrays: 64 x 3 arrays of traffic a run
DEFAULT_L2_BYTES = 1 * 2**20


@dataclass(frozen=True)
class MachineCeilings:
    cpu_model: str
    threads: int
    peak_gflops: float  # 10^9 FLOP/s, best run of the MatMul or of the conv, the faster
    dram_gbs: float  # 10^9 bytes/s, best run of the Add over arrays beyond the last-level cache
    cache_gbs: float  # 10^9 bytes/s, best run of the Add chain on L2-resident arrays
    onnxruntime: str
    timestamp: str  # UTC, ISO 8601, when it was measured
    format: int = CEILINGS_FORMAT

    @property
    def bandwidth_gbs(self) -> float:
        """The bandwidth a bound may assume: the faster of cache and memory."""
        return max(self.dram_gbs, self.cache_gbs)

    @property
    def ridge_flop_per_byte(self) -> float:
        """Arithmetic intensity where the two ceilings meet."""
        return self.peak_gflops / self.bandwidth_gbs

    def bound_ms(self, flops: float, bytes_moved: float) -> float:
        """The roofline bound: max(FLOPs / peak, bytes / bandwidth), in milliseconds."""
        return max(flops / self.peak_gflops, bytes_moved / self.bandwidth_gbs) / 1e6


def matmul_model(n: int) -> bytes:
    """Y = A @ B on two n x n float inputs: 2 n^3 FLOPs."""
    return _model(
        [("MatMul", ["a", "b"], "y")], {"a": [n, n], "b": [n, n]}, ("y", [n, n]), "peak_compute"
    )


def conv_model(c: int, hw: int) -> bytes:
    """A 3x3 conv c -> c on hw x hw, weights in the graph: 2 * c^2 * 9 * hw^2 FLOPs."""
    import numpy as np
    from onnx import numpy_helper

    weight = np.random.default_rng(0).standard_normal((c, c, 3, 3)).astype(np.float32)
    return _model([("Conv", ["x", "w"], "y", {"pads": [1, 1, 1, 1]})], {"x": [1, c, hw, hw]},
                  ("y", [1, c, hw, hw]), "peak_conv", [numpy_helper.from_array(weight, "w")])


def add_model(numel: int, chain: int = 1) -> bytes:
    """x1 = a + b, x(i+1) = x(i) + b, `chain` Adds on float vectors of `numel`: each reads two
    vectors and writes one."""
    nodes = [("Add", ["a" if i == 0 else f"x{i}", "b"], f"x{i + 1}") for i in range(chain)]
    return _model(nodes, {"a": [numel], "b": [numel]}, (f"x{chain}", [numel]), "bandwidth")


def _model(nodes, inputs: dict[str, list[int]], output: tuple[str, list[int]], name: str,
           initializers=()) -> bytes:
    import onnx
    from onnx import TensorProto, helper

    from mnv2prof.artifacts.export import OPSET

    graph = helper.make_graph(
        [helper.make_node(op, ins, [out], name=f"{op.lower()}_{i}", **(attrs[0] if attrs else {}))
         for i, (op, ins, out, *attrs) in enumerate(nodes)],
        name,
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in inputs.items()],
        [helper.make_tensor_value_info(output[0], TensorProto.FLOAT, output[1])],
        list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def calibrate(threads: int, budget_s: float = 3.0) -> MachineCeilings:
    """Measure peak GFLOP/s and GB/s at `threads` intra-op threads (in warm bursts, `budget_s`)."""
    import onnxruntime

    from mnv2prof.measure.latency import OrtRunner, measure
    from mnv2prof.measure.timing import TimingSpec
    from mnv2prof.measure.machine import cache_bytes, cpu_model, last_level_cache_bytes

    llc = last_level_cache_bytes()
    l2 = cache_bytes(2) or DEFAULT_L2_BYTES
    dram_numel = max(llc, 64 * 2**20) // FLOAT_BYTES
    cache_numel = l2 // 4 // (3 * FLOAT_BYTES)  # a, b and the live result in a quarter of L2
    work = {  # runner -> FLOPs or bytes of one run
        "gemm": 2 * GEMM_N**3,
        "conv": 2 * CONV_C**2 * 9 * CONV_HW**2,
        "dram": 3 * FLOAT_BYTES * dram_numel,
        "cache": 3 * FLOAT_BYTES * cache_numel * CACHE_ADD_CHAIN,
    }
    runners = {
        "gemm": OrtRunner(matmul_model(GEMM_N), threads),
        "conv": OrtRunner(conv_model(CONV_C, CONV_HW), threads),
        "dram": OrtRunner(add_model(dram_numel), threads),
        "cache": OrtRunner(add_model(cache_numel, CACHE_ADD_CHAIN), threads),
    }
    # A ceiling is the best a call achieved, so each sample is one call: bursts of a single timed
    # call (after the untimed switch call, so each probe runs warm), hence the huge rounds_target.
    timing = TimingSpec(
        threads=threads, budget_s=budget_s, warmup=2, min_samples=5, rounds_target=10**6
    )
    best_s = {k: min(m.samples_ms) / 1e3 for k, m in measure(runners, timing).items()}
    return MachineCeilings(
        cpu_model=cpu_model(),
        threads=threads,
        peak_gflops=max(work[k] / best_s[k] for k in ("gemm", "conv")) / 1e9,
        dram_gbs=work["dram"] / best_s["dram"] / 1e9,
        cache_gbs=work["cache"] / best_s["cache"] / 1e9,
        onnxruntime=onnxruntime.__version__,
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
    )
