"""An ONNX file mnv2prof did not write, measured like a block: vetted, shaped, counted, and
prepared for the one measurement path (run.pipeline, run.deploy).

`graph.load_model` vets the file (checker, external data kept inside the model's folder),
`graph.load_graph` applies the input shapes and infers the rest, `count.cost.count_graph_cost`
counts (the one graph -> cost path; a foreign file's parameters are counted on its graph, the
only thing it has: docs/conventions.md). A `user_models.ModelSpec` names the file; `resolved`
fills its input shapes from the file and `--shape`, and `prepare_file` gives the
`deploy.Prepared` every runtime, precision and table takes.

Input shapes: every activation input needs concrete dims. Dims fixed in the file are used as they
are; `--shape NAME=D0xD1x...` (or `D0xD1x...` for a file with one input) gives the others. When
the only free dim of an input is dim 0 (the batch, by the NCHW / NC convention of image models) it
is set to 1 and a note says so; any other free dim (spatial, sequence) is refused with a message
naming the input and the dims to give.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from mnv2prof.count.cost import CountedCost, count_graph_cost
from mnv2prof.count.counting import count_graph
from mnv2prof.count.memory import peak_activation_memory
from mnv2prof.errors import UsageError
from mnv2prof.measure.latency import Measurement
from mnv2prof.measure.timing import TimingSpec
from mnv2prof.models.user_models import ModelSpec, format_shape
from mnv2prof.onnx.graph import load_graph, load_model
from mnv2prof.run.deploy import Prepared

Shapes = dict[str, tuple[int, ...]]

# A whole network takes from milliseconds to seconds per run, so fewer untimed and forced runs
# than the block defaults (5 and 10); the budget still decides how many samples are taken.
MODEL_WARMUP = 2
MODEL_MIN_SAMPLES = 5


def parse_shapes(values: Sequence[str]) -> Shapes:
    """`["data=1x3x224x224"]` -> `{"data": (1, 3, 224, 224)}`; a `UsageError` names a bad one.

    The name is everything before the last `=` (input names may hold `/`, `:` or `=`). One value
    of dims alone (`1x3x224x224`) is the model's only input, named "" until the file says
    (`resolved`).
    """
    shapes: Shapes = {}
    for value in values:
        name, sep, dims_text = value.rpartition("=")
        if not sep and len(values) == 1 and value[:1].isdigit():
            name, sep, dims_text = "", "=", value
        elif not sep or not name or not dims_text:
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


def model_timing(timing: TimingSpec) -> TimingSpec:
    """`timing` with fewer warm-up calls and forced rounds: a whole model runs for longer."""
    return dataclasses.replace(timing, warmup=MODEL_WARMUP, min_samples=MODEL_MIN_SAMPLES)


def layer_runs(latency: Measurement, budget_s: float, most: int = 50) -> int:
    """Profiled runs for the per-node view: what the timing budget affords, 5 to `most`."""
    affordable = budget_s * 1e3 / latency.median_ms if latency.median_ms > 0 else most
    return max(MODEL_MIN_SAMPLES, min(most, int(affordable)))


def resolved(spec: ModelSpec) -> tuple[ModelSpec, tuple[str, ...]]:
    """`spec` with every input's dims, from the file and the shapes it was given (an unnamed
    one: the file's only input), and the notes on dims mnv2prof chose itself."""
    model = load_model(Path(spec.source), check=True)
    given = dict(spec.input_shapes)
    if "" in given:
        initializers = {t.name for t in model.graph.initializer}
        inputs = [v.name for v in model.graph.input if v.name not in initializers]
        if len(inputs) != 1:
            raise UsageError(f"--shape {format_shape(given[''])}: {Path(spec.source).name} has "
                             f"{len(inputs)} inputs ({', '.join(inputs)}): name one, "
                             "INPUT=D0xD1x...")
        given = {inputs[0]: given.pop("")}
    shapes, notes = resolve_input_shapes(model, given)
    return spec.with_shapes(tuple(shapes.items())), notes


_COUNTS: dict[ModelSpec, ModelCount] = {}


def count_file(spec: ModelSpec) -> ModelCount:
    """`count_model_file` of a resolved spec, once per process (the size check and the
    preparation both need it)."""
    if spec not in _COUNTS:
        _COUNTS[spec] = count_model_file(spec.source, dict(spec.input_shapes))
    return _COUNTS[spec]


def prepare_file(spec: ModelSpec) -> Prepared:
    """The `deploy.Prepared` of an ONNX file: counted where it lies, no torch module."""
    if not spec.input_shapes or "" in dict(spec.input_shapes):
        spec = resolved(spec)[0]
    count = count_file(spec)
    return Prepared(spec, spec.name, json.dumps(["onnx", spec.identity()]), count.path,
                    count.cost, spec.input_shape, input_shapes=dict(spec.input_shapes))


def counted_spec(count: ModelCount) -> ModelSpec:
    """The `ModelSpec` of a counted ONNX file (`mnv2prof profile FILE`), at the shapes it was
    counted with."""
    from mnv2prof.models.plugins import file_digest

    path = Path(count.path)
    spec = ModelSpec(path.stem, str(path.resolve()), file_digest(path),
                     tuple(count.input_shapes.items()))
    _COUNTS[spec] = count
    return spec
