"""The int8 twin of an fp32 ONNX export: onnxruntime's static quantization, cached.

`quantize_cached` turns a checked fp32 file (`export.export_cached`'s) into a QDQ graph:
`QuantizeLinear`/`DequantizeLinear` pairs around every conv, weights stored as int8 per output
channel (symmetric, `QuantType.QInt8`), activations as uint8 per tensor (`QuantType.QUInt8`),
biases as int32. onnxruntime's CPU provider fuses each DQ -> Conv -> Q into a `QLinearConv`
when it loads the file, so the QDQ graph is both portable and what runs int8. The ranges of the
activations are calibrated on `calibration_inputs` seeded standard-normal inputs (the blocks'
own input distribution: `measure.eager.example_input`'s), seeds `seed + 100 ...`;
`accuracy` compares the int8 model with the fp32 one on held-out inputs, seeds
`seed + 1000 ...`, which calibration never saw.

**Calibration methods** (`models.targets.CALIBRATIONS`, onnxruntime's `CalibrationMethod`), measured on the
2-core development machine (AMD EPYC, AVX2; onnxruntime 1.32; mbv2 block C=32 56x56 t=6, 16
calibration inputs; time: the whole `quantize_static` call, median of 3, import excluded;
error against the fp32 model on 4 held-out inputs):

| method | time (s) | SQNR (dB) | max abs err |
|---|---|---|---|
| minmax | 0.20 | 34.4 | 0.11 |
| entropy | 0.83 | 34.4 | 0.11 |
| percentile | 1.02 | 34.3 | 0.46 |

(At C=8 8x8 each takes about 0.1 s.) MinMax is the default: 4-5x faster than the histogram
methods and at least as accurate here. Entropy writes exactly MinMax's ranges: `quantize_static`
gives no way to set its histogram's bins, which stay at 128, the number of quantized bins, so
its KL search has one candidate threshold, the full range; it only costs more. Percentile
(99.999%, symmetric) clips the tails, which pays on the long-tailed activations of a trained
network, but a block fed Gaussian inputs has light tails and ReLU6 bounds them anyway, so the
clipping only adds error (4x the max error, the same SQNR). More calibration inputs do not help
MinMax either: its ranges widen with every extreme draw (SQNR on 16 held-out inputs: 33.4 dB
with 4 inputs, 34.4 with 8 or 16, 32.5 with 32, 32.8 with 64), hence `CALIBRATION_INPUTS` = 16.
Entropy and Percentile print progress lines on stdout, and the quantizer warns "consider
pre-processing" through the root logger; both are silenced here (`_quiet_quantizer`). The
exports are already shape-inferred and BN-folded, which is what that pre-processing would do.

Every artefact is cached in `files.cache.cache_dir() / "int8"` under a key of the fp32 file's bytes,
the method, the number of calibration inputs, the seed, the input shapes, the library versions
and `QUANT_FORMAT`, and written atomically (the quantizer writes a temporary name, renamed when
it is complete), so a second call loads it and a killed run never leaves half a file; a cached
file is used only when its record names this key and its bytes (`files.cache.vouched`), else it
is set aside and made again.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from mnv2prof import interrupts
from mnv2prof.errors import UsageError, first_line
from mnv2prof.files.atomic import atomic_target
from mnv2prof.artifacts.export import library_versions
from mnv2prof.files.cache import cache_dir, vouch, vouched
from mnv2prof.models.targets import CALIBRATIONS, DEFAULT_CALIBRATION, check_name
from mnv2prof.onnx.graph import load_model
from mnv2prof.quiet import silenced

QUANT_FORMAT = 1  # bump when the settings below change, to invalidate cached int8 files
CALIBRATION_INPUTS = 16  # seeded inputs the activation ranges are calibrated on
HELDOUT_INPUTS = 4  # seeded inputs `accuracy` compares on (never used for calibration)
CALIBRATION_SEED_OFFSET = 100  # calibration input i has seed `seed + 100 + i`
HELDOUT_SEED_OFFSET = 1000  # held-out input i has seed `seed + 1000 + i`
DEFAULT_METHOD = DEFAULT_CALIBRATION

# our name -> onnxruntime's CalibrationMethod member (resolved lazily: the import takes 0.2 s)

# Op types that only a quantized graph holds: the ONNX standard's and onnxruntime's contrib ops.
QUANT_OP_TYPES = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger",
    "MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QGemm", "QAttention",
    "MatMulNBits", "MatMulBnb4", "DynamicQuantizeLSTM", "QEmbedLayerNormalization",
    "QOrderedMatMul", "QOrderedGelu", "QOrderedLayerNormalization",
})  # fmt: skip
# Element types of quantized weights (int32 is not among them: biases and shapes use it too).
QUANT_ELEM_TYPES = frozenset({
    onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT4,
    onnx.TensorProto.UINT4,
})  # fmt: skip


@dataclass(frozen=True)
class QuantResult:
    path: Path
    cached: bool  # True: loaded from the cache, no quantizer ran


@dataclass(frozen=True)
class Accuracy:
    """The int8 output against the fp32 one, over every held-out input and output element."""

    max_abs_err: float
    sqnr_db: float  # 10 log10(sum(ref^2) / sum((ref - q)^2)); inf when they are equal


# --- what a quantized model looks like ---------------------------------------------------------


def _is_quant_op(op_type: str) -> bool:
    return op_type in QUANT_OP_TYPES or op_type.startswith("QLinear")


def _nodes(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """Every node: the main graph, its subgraphs (If, Loop, Scan), the model's functions."""

    def walk(nodes: Sequence[onnx.NodeProto]) -> Iterator[onnx.NodeProto]:
        for node in nodes:
            yield node
            for attr in node.attribute:
                for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                    yield from walk(sub.node)

    yield from walk(model.graph.node)
    for function in model.functions:
        yield from walk(function.node)


def quantization_evidence(model: onnx.ModelProto) -> str | None:
    """Why `model` is quantized already, in a few words (its quantizing op types, or how many
    int8/uint8/int4 weights it holds); None when it is not."""
    ops = sorted({n.op_type for n in _nodes(model) if _is_quant_op(n.op_type)})
    if ops:
        return ", ".join(ops) + " nodes"
    weights = [t for t in model.graph.initializer if t.data_type in QUANT_ELEM_TYPES]
    if weights:
        return f"{len(weights)} int8/uint8/int4 weights"
    return None


def is_quantized(model: onnx.ModelProto) -> bool:
    """True when `model` holds Q/DQ, QLinear* or *Integer nodes, or int8/uint8/int4 weights."""
    return quantization_evidence(model) is not None


# --- seeded inputs -----------------------------------------------------------------------------


def calibration_seeds(seed: int, n: int) -> range:
    return range(seed + CALIBRATION_SEED_OFFSET, seed + CALIBRATION_SEED_OFFSET + n)


def heldout_seeds(seed: int, n: int) -> range:
    return range(seed + HELDOUT_SEED_OFFSET, seed + HELDOUT_SEED_OFFSET + n)


def seeded_inputs(shapes: Mapping[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    """Standard-normal float32 inputs of one sample: one generator seeded with `seed`, drawn in
    `shapes`' order. For one input this is `measure.eager.example_input(shape, seed)`, so the
    ONNX and ExecuTorch int8 models are calibrated and checked on the same tensors."""
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(*shape, generator=generator).numpy() for name, shape in shapes.items()
    }


def resolve_input_shapes(
    model: onnx.ModelProto, input_shapes: Mapping[str, tuple[int, ...]] | None
) -> dict[str, tuple[int, ...]]:
    """Every graph input's concrete shape: `input_shapes`' where given, else the model's own
    dims. Refuses an input with a symbolic dim no shape was given for, or a non-float input
    (calibration feeds standard-normal floats)."""
    given = dict(input_shapes or {})
    initializers = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    unknown = sorted(set(given) - {v.name for v in inputs})
    if unknown:
        raise UsageError(
            f"input shapes name {', '.join(map(repr, unknown))}, not an input of the model "
            f"(inputs: {', '.join(v.name for v in inputs) or 'none'})"
        )
    shapes: dict[str, tuple[int, ...]] = {}
    for value in inputs:
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise UsageError(
                f"input {value.name!r} is not float32; int8 calibration feeds float32 inputs"
            )
        if value.name in given:
            shapes[value.name] = tuple(int(d) for d in given[value.name])
            continue
        dims = tensor_type.shape.dim
        if not all(d.HasField("dim_value") for d in dims):
            raise UsageError(
                f"input {value.name!r} has symbolic dims; give its shape "
                f"(--shape {value.name}=1x3x224x224)"
            )
        shapes[value.name] = tuple(d.dim_value for d in dims)
    return shapes


# --- quantization ------------------------------------------------------------------------------



def _file_digest(path: Path, model: onnx.ModelProto) -> str:
    """sha256 of the file and of any external data files it names."""
    digest = hashlib.sha256(path.read_bytes())
    locations = sorted({
        e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"
    })  # fmt: skip
    for location in locations:
        digest.update(location.encode())
        digest.update((path.parent / location).read_bytes())
    return digest.hexdigest()


def quant_key(
    fp32_digest: str, method: str, n: int, seed: int, shapes: Mapping[str, tuple[int, ...]]
) -> str:
    payload = json.dumps([
        fp32_digest, method, n, seed, sorted((k, list(v)) for k, v in shapes.items()),
        QUANT_FORMAT, sorted(library_versions().items()),
    ])  # fmt: skip
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _quiet_quantizer():
    """The quantizer warns through the root logger ("consider pre-processing"), and Entropy and
    Percentile print their progress on stdout (`silenced` keeps a NullHandler on the root while
    it runs: `logging.warning` would otherwise install a stderr handler for the rest of the
    process)."""
    return silenced((), root=True)


def _calibration_reader(shapes: Mapping[str, tuple[int, ...]], seeds: Sequence[int]):
    from onnxruntime.quantization import CalibrationDataReader

    class SeededReader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rewind()

        def get_next(self) -> dict[str, np.ndarray] | None:
            seed = next(self._seeds, None)
            return None if seed is None else seeded_inputs(shapes, seed)

        def rewind(self) -> None:
            self._seeds = iter(seeds)

    return SeededReader()


def quantize_cached(
    fp32_path: Path,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    seed: int = 0,
    method: str = DEFAULT_METHOD,
    calibration_inputs: int = CALIBRATION_INPUTS,
    directory: Path | None = None,
) -> QuantResult:
    """The int8 (QDQ) file of the fp32 ONNX file `fp32_path`, quantized on a cache miss.

    `input_shapes` (input name -> dims) is needed only for inputs with symbolic dims. Raises
    `UsageError` (one line) for an unknown method, a model that is quantized already, or one
    onnxruntime's quantizer refuses. A pending interrupt stops before the quantizer starts.
    """
    check_name(method, tuple(CALIBRATIONS), "calibration")
    if calibration_inputs < 1:
        raise UsageError(f"calibration needs at least one input, got {calibration_inputs}")
    fp32_path = Path(fp32_path)
    model = load_model(fp32_path)
    if (evidence := quantization_evidence(model)) is not None:
        raise UsageError(f"{fp32_path.name} is quantized already ({evidence}); give its fp32 model")
    shapes = resolve_input_shapes(model, input_shapes)
    key = quant_key(_file_digest(fp32_path, model), method, calibration_inputs, seed, shapes)
    folder = directory if directory is not None else cache_dir() / "int8"
    path = folder / f"{fp32_path.stem}-int8-{method}-{key}.onnx"
    if vouched(path, key):
        return QuantResult(path, cached=True)
    interrupts.check()
    folder.mkdir(parents=True, exist_ok=True)
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    reader = _calibration_reader(shapes, calibration_seeds(seed, calibration_inputs))
    with atomic_target(path, suffix=".onnx.tmp") as tmp:
        try:
            with _quiet_quantizer():
                quantize_static(
                    str(fp32_path),
                    str(tmp),
                    reader,
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    weight_type=QuantType.QInt8,
                    activation_type=QuantType.QUInt8,
                    calibrate_method=getattr(CalibrationMethod, CALIBRATIONS[method]),
                )
        except Exception as exc:  # the quantizer raises many types; all mean "cannot quantize"
            raise UsageError(
                f"onnxruntime cannot quantize {fp32_path.name}: {first_line(exc, with_type=True)}"
            ) from exc
        vouch(tmp, path, key)
    return QuantResult(path, cached=False)


# --- accuracy ----------------------------------------------------------------------------------


class ErrorTally:
    """Running max abs error and SQNR of outputs against references (float64 sums)."""

    def __init__(self) -> None:
        self.max_abs_err = 0.0
        self.signal = 0.0
        self.noise = 0.0

    def mismatch(self) -> None:
        """Outputs that cannot be compared (another count or shape): infinite error."""
        self.max_abs_err = self.noise = math.inf

    def add_all(self, references: Sequence[np.ndarray], actuals: Sequence[np.ndarray]) -> None:
        if len(references) != len(actuals):
            self.mismatch()
            return
        for reference, actual in zip(references, actuals, strict=True):
            self.add(reference, actual)

    def add(self, reference: np.ndarray, actual: np.ndarray) -> None:
        reference = np.asarray(reference, dtype=np.float64)
        actual = np.asarray(actual, dtype=np.float64)
        if reference.shape != actual.shape:
            self.mismatch()
            return
        error = reference - actual
        self.max_abs_err = max(self.max_abs_err, float(np.max(np.abs(error), initial=0.0)))
        self.signal += float(np.sum(reference * reference))
        self.noise += float(np.sum(error * error))

    def result(self) -> Accuracy:
        if not math.isfinite(self.noise) or math.isnan(self.max_abs_err):  # NaN, inf, mismatch
            return Accuracy(math.inf, -math.inf)
        if self.noise == 0.0:
            return Accuracy(self.max_abs_err, math.inf)
        if self.signal == 0.0:
            return Accuracy(self.max_abs_err, -math.inf)
        return Accuracy(self.max_abs_err, 10.0 * math.log10(self.signal / self.noise))


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a few small runs: leave the other cores to the neighbours
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def accuracy(
    fp32_path: Path,
    int8_path: Path,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    seed: int = 0,
    heldout: int = HELDOUT_INPUTS,
) -> Accuracy:
    """The int8 model's outputs against the fp32 model's (both in onnxruntime) on `heldout`
    seeded inputs that calibration did not see."""
    if heldout < 1:
        raise UsageError(f"accuracy needs at least one held-out input, got {heldout}")
    shapes = resolve_input_shapes(load_model(Path(fp32_path)), input_shapes)
    reference, quantized = _session(Path(fp32_path)), _session(Path(int8_path))
    tally = ErrorTally()
    for s in heldout_seeds(seed, heldout):
        feed = seeded_inputs(shapes, s)
        tally.add_all(reference.run(None, feed), quantized.run(None, feed))
    return tally.result()
