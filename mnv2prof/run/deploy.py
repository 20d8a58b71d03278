"""The one home of "a measured thing on a target": what it ships as (a precision on a runtime,
models.targets.Target), the artefact each target runs, counted and checked, and the runner that
times it. A measured thing (`Prepared`) is a block, a user's block or model, an ONNX file, or a
stage of a network: each is prepared once (its checked fp32 ONNX file, counted; its torch module
when it has one) and every command gets its artefacts and runners here.

- onnxruntime fp32: the one export (artifacts.export); int8: onnxruntime's static quantization of it
  (artifacts.quantize: QDQ, per-channel symmetric int8 weights, uint8 activations, calibrated on
  `artifacts.quantize.CALIBRATION_INPUTS` seeded inputs, MinMax unless `calibration` says otherwise).
- ExecuTorch fp32: the torch module lowered to XNNPACK; int8: PT2E quantization with the XNNPACK
  quantizer, calibrated on the same seeded inputs, then lowered (artifacts.lowering). A thing
  without a torch module (an ONNX file) has no ExecuTorch artefact.

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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mnv2prof.errors import UsageError
from mnv2prof.models.targets import Target

if TYPE_CHECKING:
    from torch import nn

    from mnv2prof.count.cost import CountedCost


def check_runtimes(runtimes: tuple[str, ...]) -> None:
    """ExecuTorch must be installed for `--runtime executorch` (one line naming the extra)."""
    if "executorch" in runtimes:
        from mnv2prof.artifacts import lowering

        if not lowering.available():
            raise UsageError(lowering.INSTALL_HINT)


@dataclass(frozen=True)
class Row:
    """One row to measure: a subject (a block's spec, a model's) on a target."""

    subject: object  # models.variants.BlockSpec or models.user_models.ModelSpec
    target: Target = Target()


def rows_of(subjects: Sequence[object], targets: Sequence[Target] = (Target(),)) -> list[Row]:
    """Every subject on every target, subject by subject."""
    return [Row(s, t) for s in subjects for t in targets]


@dataclass(frozen=True, eq=False)  # compared and hashed as itself: one per thing
class Prepared:
    """A measured thing, ready for every target: its checked fp32 ONNX file and counted cost,
    and, when it comes from torch, how to get its module and the module's one input shape."""

    subject: object  # what rows name it by: a spec, a model's spec, a network stage's key
    name: str  # the stem of its artefacts' file names
    identity: str  # what its artefacts depend on apart from the seed (ExecuTorch's cache key)
    onnx_path: Path
    cost: CountedCost | None  # None: counted elsewhere (a network's stage, on the whole graph)
    input_shape: tuple[int, ...]  # the torch module's input (an ONNX file's first input)
    module_of: Callable[[], nn.Module] | None = None  # None: an ONNX file, no torch module
    input_shapes: Mapping[str, tuple[int, ...]] | None = None  # onnxruntime's feed dims
    cached: bool = True  # the ONNX file came from the cache (no export ran)
    torch_module: list = field(default_factory=list, compare=False, repr=False)
    # the user's code (run.user_code.ModuleRef): its module is built, timed and lowered in the
    # worker; `module_of` then builds it here for the GPU paths alone (--device cuda)
    worker: object | None = None

    @property
    def module(self) -> nn.Module | None:
        """The torch module, built on first use and kept."""
        if self.module_of is None:
            return None
        if not self.torch_module:
            self.torch_module.append(self.module_of())
        return self.torch_module[0]

    @property
    def has_module(self) -> bool:
        return self.module_of is not None


@dataclass(frozen=True)
class Artifact:
    target: Target
    path: Path  # .onnx (onnxruntime) or .pte (ExecuTorch)
    cost: CountedCost  # at the precision's element sizes; MACs and params the fp32 model's
    max_abs_err: float | None = None  # int8: against fp32 on held-out inputs
    sqnr_db: float | None = None


def int8_onnx(prepared: Prepared, seed: int = 0, calibration: str = "minmax",
              counted: bool = True) -> tuple[Path, CountedCost | None]:
    """The int8 ONNX file of `prepared` (quantized, cached) and its counted cost: what an int8
    row counts on every runtime (the export's parameter metadata survives quantization);
    `counted=False`: the file alone (a network's stages are counted on the whole graph)."""
    from mnv2prof.count.cost import count_model
    from mnv2prof.artifacts import quantize

    path = quantize.quantize_cached(prepared.onnx_path, prepared.input_shapes, seed=seed,
                                    method=calibration).path
    return path, count_model(path, prepared.input_shapes) if counted else None


def build_artifact(prepared: Prepared, target: Target, seed: int = 0,
                   calibration: str = "minmax",
                   int8: tuple[Path, CountedCost | None] | None = None,
                   lowered=None) -> Artifact:
    """The artefact of `prepared` for `target`, cached; `int8`: its `int8_onnx` when the caller
    already has it (one per thing, whatever the runtimes); `lowered`: its ExecuTorch lowering when
    the caller already has it (`lowerings`). On ExecuTorch without `int8`, an int8
    artefact carries the fp32 ONNX cost."""
    if target.default:
        return Artifact(target, prepared.onnx_path, prepared.cost)
    if target.runtime == "executorch" and not prepared.has_module:
        raise UsageError(f"{prepared.name}: --runtime executorch lowers a torch module; an ONNX "
                         "file runs on onnxruntime only")
    int8_cost = accuracy = None
    onnx_path = prepared.onnx_path
    if target.precision == "int8" and (int8 is not None or target.runtime == "onnxruntime"):
        from mnv2prof.artifacts import quantize

        onnx_path, int8_cost = int8 or int8_onnx(prepared, seed, calibration)
        if target.runtime == "onnxruntime":
            accuracy = quantize.accuracy(prepared.onnx_path, onnx_path, prepared.input_shapes,
                                         seed=seed)
    cost = int8_cost or prepared.cost
    if target.runtime == "onnxruntime":
        return Artifact(target, onnx_path, cost, *_accuracy(accuracy))
    if lowered is None:
        lowered = lowerings([(prepared, target)], seed)[(prepared, target)]
    return Artifact(target, lowered.path, cost, *_accuracy(lowered.accuracy))


def _accuracy(accuracy) -> tuple[float | None, float | None]:
    if accuracy is None:
        return None, None
    return float(accuracy.max_abs_err), float(accuracy.sqnr_db)


def artifacts(pairs: Sequence[tuple[Prepared, Target]], seed: int = 0,
              calibration: str = "minmax", between: Callable[[], None] | None = None,
              counted: bool = True) -> list[tuple[Prepared, Artifact]]:
    """The artefact of each (thing, target), in order, each thing's int8 ONNX file made once
    whatever its runtimes; `between` runs before each (interrupts.check). `counted=False`: the
    artefacts carry the fp32 cost of their thing, and an ExecuTorch int8 artefact needs no int8
    ONNX file (a network's stages: their cost is read off the whole graph)."""
    made: list[tuple[Prepared, Artifact]] = []
    int8: dict[Prepared, tuple[Path, CountedCost | None]] = {}
    lowered = lowerings([(p, t) for p, t in pairs if p.worker is not None], seed)
    for p, target in pairs:
        if between is not None:
            between()
        needs_file = target.runtime == "onnxruntime" or counted
        if target.precision == "int8" and needs_file and p not in int8:
            int8[p] = int8_onnx(p, seed, calibration, counted)
        made.append((p, build_artifact(p, target, seed, calibration, int8.get(p),
                                       lowered.get((p, target)))))
    return made


def lowerings(pairs: Sequence[tuple[Prepared, Target]], seed: int = 0) -> dict:
    """{(thing, target): its ExecuTorch lowering} for each ExecuTorch target among `pairs`: a
    module of this process lowered here, the user's modules in the worker all at once
    (run.user_code.lower: one job, so ExecuTorch's lowering stack is imported once)."""
    wanted = list(dict.fromkeys((p, t) for p, t in pairs if t.runtime == "executorch"))
    here = [(p, t) for p, t in wanted if p.worker is None]
    there = [(p, t) for p, t in wanted if p.worker is not None]
    found = {}
    if there:
        from mnv2prof.run import user_code

        found = dict(zip(there, user_code.lower(
            [(p.worker, p.input_shape, p.name, p.identity, t.precision, seed) for p, t in there])))
    if here:
        from mnv2prof.artifacts import lowering

        found |= {(p, t): lowering.lower_cached(p.module, p.input_shape, p.name, p.identity,
                                                t.precision, seed) for p, t in here}
    return found


def artifact_runner(artifact: Artifact, prepared: Prepared, threads: int, seed: int = 0):
    """The runner `latency.measure` times for `artifact` of `prepared`."""
    if artifact.target.runtime == "executorch":
        from mnv2prof.measure.executorch import EtRunner

        return EtRunner(artifact.path, threads, prepared.input_shape, seed)
    from mnv2prof.measure.latency import TRIALS, OrtRunner, Trials

    from mnv2prof.errors import Mnv2profError

    try:  # independent sessions, rotated round by round: their spread is the run's (Trials)
        return Trials([OrtRunner(artifact.path, threads, seed, input_shapes=prepared.input_shapes)
                       for _ in range(TRIALS)])
    except Mnv2profError:
        raise
    except Exception as exc:  # onnxruntime's own exception types (Fail, InvalidGraph, ...)
        if prepared.has_module:  # our own export: onnxruntime failing on it is ours (exit 3)
            raise
        raise ort_error(artifact.path, exc) from exc


def ort_error(path: Path, exc: Exception):
    """onnxruntime refusing a file, as one line (a foreign file it cannot run: exit 2)."""
    from mnv2prof.errors import ModelFileError, first_line

    return ModelFileError(f"onnxruntime cannot run {path}: {first_line(exc)}")
