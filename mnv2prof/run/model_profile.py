"""Profile any ONNX model file: the counted and measured metrics of the block variants, for a
model mnv2prof did not write.

One path, reused: `graph.load_model` vets the file (checker, external data kept inside the
model's folder), `graph.load_graph` applies the input shapes and infers the rest,
`count.cost.count_graph_cost` counts (the one graph -> cost path, its parameter rule included), and
`latency.OrtRunner` + `latency.measure` time it (one runner). The result is a
`records.Record`, so tables and CSV columns are the ones `compare` writes.

Input shapes: every activation input needs concrete dims. Dims fixed in the file are used as they
are; `--shape NAME=D0xD1x...` gives the others. When the only free dim of an input is dim 0 (the
batch, by the NCHW / NC convention of image models) it is set to 1 and a note says so; any other
free dim (spatial, sequence) is refused with a message naming the input and the dims to give.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from mnv2prof.count.cost import CountedCost, count_graph_cost
from mnv2prof.count.counting import count_graph
from mnv2prof.count.memory import peak_activation_memory
from mnv2prof.errors import Mnv2profError, ModelFileError, UsageError
from mnv2prof.measure.latency import Measurement, OrtRunner, TimingSpec
from mnv2prof.onnx.graph import load_graph, load_model
from mnv2prof.run.records import Record

Shapes = dict[str, tuple[int, ...]]

# A whole network takes from milliseconds to seconds per run, so fewer untimed and forced runs
# than the block defaults (5 and 10); the budget still decides how many samples are taken.
PROFILE_WARMUP = 2
PROFILE_MIN_SAMPLES = 5


def parse_shapes(values: Sequence[str]) -> Shapes:
    """`["data=1x3x224x224"]` -> `{"data": (1, 3, 224, 224)}`; a `UsageError` names a bad one.

    The name is everything before the last `=` (input names may hold `/`, `:` or `=`).
    """
    shapes: Shapes = {}
    for value in values:
        name, sep, dims_text = value.rpartition("=")
        if not sep or not name or not dims_text:
            raise UsageError(
                f"--shape {value!r}: expected INPUT=D0xD1x... (e.g. data=1x3x224x224)"
            )
        dims = []
        for token in dims_text.lower().split("x"):
            if not token.strip().isdigit() or int(token) <= 0:
                raise UsageError(f"--shape {value!r}: {token!r} is not a positive integer dim")
            dims.append(int(token))
        if name in shapes:
            raise UsageError(f"--shape gives input {name!r} twice")
        shapes[name] = tuple(dims)
    return shapes


def format_shape(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def resolve_input_shapes(
    model: onnx.ModelProto, given: Mapping[str, tuple[int, ...]]
) -> tuple[Shapes, tuple[str, ...]]:
    """Concrete dims for every activation input, and notes on the ones mnv2prof chose itself.

    Initializers that old exporters also list as graph inputs are weights, not inputs.
    """
    initializers = {t.name for t in model.graph.initializer}
    inputs = [v.name for v in model.graph.input if v.name not in initializers]
    unknown = sorted(set(given) - set(inputs))
    if unknown:
        raise UsageError(
            f"--shape names {', '.join(map(repr, unknown))}, not an input of the model "
            f"(inputs: {', '.join(inputs) or 'none'})"
        )
    shapes: Shapes = {}
    notes: list[str] = []
    missing: list[str] = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        if value.name in given:
            shapes[value.name] = tuple(given[value.name])
            continue
        if not value.type.HasField("tensor_type"):
            raise UsageError(f"input {value.name!r} is not a tensor; only tensor inputs can be fed")
        if not value.type.tensor_type.HasField("shape"):
            missing.append(f"input {value.name!r} has no shape in the model")
            continue
        dims = value.type.tensor_type.shape.dim
        free = [i for i, d in enumerate(dims) if not d.HasField("dim_value")]
        symbols = [d.dim_param or "?" for d in dims]
        if not free:
            shapes[value.name] = tuple(d.dim_value for d in dims)
        elif free == [0] and len(dims) >= 2:
            shapes[value.name] = (1, *(d.dim_value for d in dims[1:]))
            notes.append(
                f"input {value.name!r}: batch dim 0 ({symbols[0]!r}) is symbolic, set to 1 "
                f"(give --shape {value.name}=... to choose)"
            )
        else:
            template = format_shape(
                [f"<{symbols[i]}>" if i in free else d.dim_value for i, d in enumerate(dims)]
            )
            named = ", ".join(f"{i} ({symbols[i]!r})" for i in free)
            missing.append(
                f"input {value.name!r} has symbolic dims {named}; "
                f"give --shape {value.name}={template}"
            )
    if missing:
        raise UsageError("; ".join(missing))
    return shapes, tuple(notes)


@dataclass(frozen=True)
class ModelCount:
    """What is counted from the file, before any timing."""

    path: Path
    input_shapes: Shapes
    opset: int
    ir_version: int
    cost: CountedCost
    unknown_tensors: tuple[str, ...]  # activations shape inference could not size
    notes: tuple[str, ...]


def count_model_file(
    path: Path | str, shapes: Mapping[str, tuple[int, ...]] | None = None
) -> ModelCount:
    """Vet, shape and count an ONNX file (no onnxruntime): params, MACs, memory, bytes."""
    path = Path(path)
    model = load_model(path, check=True)
    input_shapes, notes = resolve_input_shapes(model, shapes or {})
    graph = load_graph(model, input_shapes=input_shapes)
    cost, peak = count_graph(graph), peak_activation_memory(graph)
    counted = count_graph_cost(graph, cost, peak)
    unknown = peak.unknown_tensors
    notes = list(notes)
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        notes.append(
            f"{len(unknown)} activation tensor(s) of unknown size, left out of peak memory and "
            f"bytes moved: {shown}"
        )
    if cost.unhandled:
        notes.append(f"ops without a cost handler (not counted): {cost.unhandled_summary()}")
    return ModelCount(
        path=path,
        input_shapes=input_shapes,
        opset=graph.opset,
        ir_version=model.ir_version,
        cost=counted,
        unknown_tensors=unknown,
        notes=tuple(notes),
    )


def profile_timing(timing: TimingSpec) -> TimingSpec:
    """`timing` with fewer warm-up calls and forced rounds: a whole model runs for longer."""
    return dataclasses.replace(timing, warmup=PROFILE_WARMUP, min_samples=PROFILE_MIN_SAMPLES)


@dataclass(frozen=True)
class ProfiledModel:
    count: ModelCount
    record: Record  # the row `compare` writes for a block (fp32, as given)
    timing: TimingSpec
    layers: list | None = None  # measure.layers rows, when asked for
    layer_runs: int = 0
    int8: Record | None = None  # the model quantized (onnx.quantize), with --precision int8

    @property
    def records(self) -> list[Record]:
        return [self.record] + ([self.int8] if self.int8 is not None else [])


def quantize_model(count: ModelCount, calibration: str = "minmax") -> ModelCount:
    """The counted model quantized to int8 by onnxruntime (onnx.quantize: refused, one line,
    for a model quantized already or one the quantizer cannot take), counted at its shapes."""
    from mnv2prof.onnx.quantize import quantize_cached

    quantized = quantize_cached(count.path, count.input_shapes, method=calibration)
    return count_model_file(quantized.path, count.input_shapes)


def profile_model(
    count: ModelCount, timing: TimingSpec, layers: bool = False, int8: ModelCount | None = None
) -> ProfiledModel:
    """Time the counted model, and its int8 twin when given, each in its own phase (and, with
    `layers`, its nodes in onnxruntime's profiler, as many runs as the budget affords): the one
    core call of `mnv2prof profile`."""
    from mnv2prof.measure.env import current_environment
    from mnv2prof.measure.latency import measure_phases

    phases = [{"fp32": _runner(count, timing)}]
    if int8 is not None:
        phases.append({"int8": _runner(int8, timing)})
    measured = measure_phases(phases, timing)
    env = current_environment()
    record = model_record(count, measured["fp32"], timing.threads, env, timing.cache)
    quantized = None
    if int8 is not None:
        from mnv2prof.onnx.quantize import accuracy

        error = accuracy(count.path, int8.path, count.input_shapes)
        latency = measured["int8"]
        quantized = dataclasses.replace(
            model_record(int8, latency, timing.threads, env, timing.cache),
            label=record.label, variant=record.variant or record.label, precision="int8",
            int8_max_abs_err=error.max_abs_err, int8_sqnr_db=error.sqnr_db,
            int8_speedup_x=measured["fp32"].median_ms / latency.median_ms,
        )
    if not layers:
        return ProfiledModel(count, record, timing, int8=quantized)
    runs = layer_runs(measured["fp32"], timing.budget_s)
    rows = profile_model_layers(count, timing.threads, runs)
    return ProfiledModel(count, record, timing, rows, runs, quantized)


def _runner(count: ModelCount, timing: TimingSpec) -> OrtRunner:
    try:
        return OrtRunner(count.path, timing.threads, input_shapes=count.input_shapes)
    except Exception as exc:  # onnxruntime's own exception types (Fail, InvalidGraph, ...)
        raise _ort_error(count.path, exc) from exc


def model_record(
    count: ModelCount, latency: Measurement, threads: int, env, cache_mode: str = "warm"
) -> Record:
    """The model as one `Record`: the row `compare` writes, with the file and shapes as its spec."""
    shapes = " ".join(f"{name}={format_shape(s)}" for name, s in count.input_shapes.items())
    fields = (("model", str(count.path)), ("input_shapes", shapes), ("opset", count.opset))
    digest = hashlib.sha256(count.path.read_bytes())
    digest.update(json.dumps([shapes, threads]).encode())
    return Record(
        label=count.path.stem,
        spec=f"{count.path.name} {shapes}",
        spec_hash=digest.hexdigest()[:16],
        spec_fields=fields,
        cost=count.cost,
        latency=latency,
        threads=threads,
        env=env,
        cache_mode=cache_mode,
    )


def profile_model_layers(count: ModelCount, threads: int, runs: int) -> list:
    """Per-node kernel times (`layers.profile_layers`, onnxruntime's profiler) of the counted
    model, at the dims it was counted with."""
    from mnv2prof.measure.layers import profile_layers

    try:
        return profile_layers(
            count.path, threads, runs, warmup=PROFILE_WARMUP, input_shapes=count.input_shapes
        )
    except Mnv2profError:
        raise
    except Exception as exc:  # onnxruntime's own exception types
        raise _ort_error(count.path, exc) from exc


def layer_runs(latency: Measurement, budget_s: float, most: int = 50) -> int:
    """Profiled runs for the per-node view: what the timing budget affords, 5 to `most`."""
    affordable = budget_s * 1e3 / latency.median_ms if latency.median_ms > 0 else most
    return max(PROFILE_MIN_SAMPLES, min(most, int(affordable)))


def _ort_error(path: Path, exc: Exception) -> ModelFileError:
    text = str(exc).strip().splitlines()
    reason = text[0] if text else type(exc).__name__
    return ModelFileError(f"onnxruntime cannot run {path}: {reason}")


def summary_title(count: ModelCount, threads: int) -> str:
    shapes = ", ".join(f"{n}={format_shape(s)}" for n, s in count.input_shapes.items())
    return (
        f"{count.path.name}: opset {count.opset}, inputs {shapes}, onnxruntime CPU, "
        f"{threads} thread(s)"
    )
