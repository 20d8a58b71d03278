"""What a block ships as: a precision (fp32, int8) on a runtime (onnxruntime, ExecuTorch), and
the artefact each pair runs, counted and checked.

- onnxruntime fp32: the one export (onnx.export); int8: onnxruntime's static quantization of it
  (onnx.quantize: QDQ, per-channel symmetric int8 weights, uint8 activations, calibrated on
  `onnx.quantize.CALIBRATION_INPUTS` seeded inputs, MinMax unless `calibration` says otherwise).
- ExecuTorch fp32: the torch module lowered to XNNPACK; int8: PT2E quantization with the XNNPACK
  quantizer, calibrated on the same seeded inputs, then lowered (measure.executorch).

**Counted columns at the real element sizes** (count.cost on the ONNX graph of the precision):
MACs and params are the fp32 model's in every precision; int8 weights count 1 byte each (their
scales apart); bytes moved count the activations between a Q/DQ pair at 1 byte, as onnxruntime's
fused integer kernels read and write them, and the Q/DQ nodes move nothing of their own. An
ExecuTorch row carries the counts of the ONNX graph of its precision (the same block, the same
element sizes). Peak activation memory walks the graph as written (float between the pairs).

**Accuracy** of an int8 artefact: against the fp32 model on held-out seeded inputs (never the
calibration ones), as the largest absolute error and the SQNR in dB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mnv2prof.errors import UsageError
from mnv2prof.models.variants import BlockSpec

if TYPE_CHECKING:
    from mnv2prof.count.cost import CountedCost

PRECISIONS = ("fp32", "int8")
RUNTIMES = ("onnxruntime", "executorch")
DEFAULT_PRECISION, DEFAULT_RUNTIME = "fp32", "onnxruntime"


def parse_list(text: str, allowed: tuple[str, ...], flag: str) -> tuple[str, ...]:
    """`--precision fp32,int8` or `--runtime ...`: known names, each once, in the order given."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        shown = ", ".join(unknown) or repr(text)
        raise UsageError(f"{flag} {shown}: choose from {', '.join(allowed)} (comma-separated)")
    return names


def check_runtimes(runtimes: tuple[str, ...]) -> None:
    """ExecuTorch must be installed for `--runtime executorch` (one line naming the extra)."""
    if "executorch" in runtimes:
        from mnv2prof.measure import executorch

        if not executorch.available():
            raise UsageError(executorch.INSTALL_HINT)


@dataclass(frozen=True)
class Target:
    precision: str = DEFAULT_PRECISION
    runtime: str = DEFAULT_RUNTIME

    @property
    def default(self) -> bool:
        return self.precision == DEFAULT_PRECISION and self.runtime == DEFAULT_RUNTIME

    @property
    def name(self) -> str:
        return f"{self.runtime} {self.precision}"


@dataclass(frozen=True)
class RowRequest:
    """One row to measure: a block, in a precision, on a runtime (run.deploy)."""

    spec: BlockSpec
    precision: str = "fp32"
    runtime: str = "onnxruntime"

    @property
    def target(self) -> Target:
        return Target(self.precision, self.runtime)


def requests(
    specs: Sequence[BlockSpec], precisions: Sequence[str] = ("fp32",),
    runtimes: Sequence[str] = ("onnxruntime",),
) -> list[RowRequest]:
    """Every spec in every precision on every runtime, spec by spec."""
    return [RowRequest(s, p, r) for s in specs for r in runtimes for p in precisions]


@dataclass(frozen=True)
class Artifact:
    target: Target
    path: Path  # .onnx (onnxruntime) or .pte (ExecuTorch)
    cost: CountedCost  # at the precision's element sizes; MACs and params the fp32 model's
    max_abs_err: float | None = None  # int8: against fp32 on held-out inputs
    sqnr_db: float | None = None


def int8_onnx(prepared, seed: int = 0, calibration: str = "minmax") -> tuple[Path, CountedCost]:
    """The int8 ONNX file of `prepared` (quantized, cached) and its counted cost: what an int8
    row counts on every runtime (the export's parameter metadata survives quantization)."""
    from mnv2prof.count.cost import count_model
    from mnv2prof.onnx import quantize

    path = quantize.quantize_cached(prepared.model_path, seed=seed, method=calibration).path
    return path, count_model(path)


def build_artifact(prepared, target: Target, seed: int = 0, calibration: str = "minmax",
                   int8: tuple[Path, CountedCost] | None = None) -> Artifact:
    """The artefact of `prepared` (pipeline.PreparedBlock) for `target`, cached; `int8`: its
    `int8_onnx` when the caller already has it (one per block, whatever the runtimes)."""
    if target.default:
        return Artifact(target, prepared.model_path, prepared.cost)
    int8_cost = accuracy = None
    onnx_path = prepared.model_path
    if target.precision == "int8":
        from mnv2prof.onnx import quantize

        onnx_path, int8_cost = int8 or int8_onnx(prepared, seed, calibration)
        if target.runtime == "onnxruntime":
            accuracy = quantize.accuracy(prepared.model_path, onnx_path, seed=seed)
    cost = int8_cost or prepared.cost
    if target.runtime == "onnxruntime":
        return Artifact(target, onnx_path, cost, *_accuracy(accuracy))
    from mnv2prof.measure import executorch
    from mnv2prof.onnx.sources import block_source

    spec = prepared.spec
    lowered = executorch.lower_cached(
        prepared.module, spec.input_shape, spec.name, block_source(spec).identity,
        target.precision, seed,
    )
    return Artifact(target, lowered.path, cost, *_accuracy(lowered.accuracy))


def _accuracy(accuracy) -> tuple[float | None, float | None]:
    if accuracy is None:
        return None, None
    return float(accuracy.max_abs_err), float(accuracy.sqnr_db)


def artifact_runner(artifact: Artifact, threads: int, input_shape: tuple[int, ...], seed: int = 0):
    """The runner `latency.measure` times for `artifact`."""
    if artifact.target.runtime == "executorch":
        from mnv2prof.measure.executorch import EtRunner

        return EtRunner(artifact.path, threads, input_shape, seed)
    from mnv2prof.measure.latency import OrtRunner

    return OrtRunner(artifact.path, threads, seed)
