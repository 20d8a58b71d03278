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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


from mnv2prof.count.cost import CountedCost, count_graph_cost
from mnv2prof.count.counting import count_graph
from mnv2prof.count.memory import peak_activation_memory
from mnv2prof.measure.latency import Measurement
from mnv2prof.measure.timing import TimingSpec
from mnv2prof.models.user_models import ModelSpec
from mnv2prof.onnx.graph import load_graph, load_model
from mnv2prof.onnx.inputs import Shapes, resolve_input_shapes, resolved
from mnv2prof.run.deploy import Prepared

# A whole network takes from milliseconds to seconds per run, so fewer untimed and forced runs
# than the block defaults (5 and 10); the budget still decides how many samples are taken.
MODEL_WARMUP = 2
MODEL_MIN_SAMPLES = 5


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
