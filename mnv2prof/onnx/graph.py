"""An ONNX graph with every tensor's shape and size known: the input of counting and memory.

`load_graph` runs ONNX shape inference and then labels each tensor:
- *static*: an initializer, or the output of a node whose inputs are all static (a Constant,
  ConstantOfShape of a constant, a Cast or Identity of a weight...). These are weights: counted in
  `weight_bytes`, never in activation memory.
- *activation*: everything else, graph inputs included.

Initializers that old exporters (IR version < 4) also list as graph inputs are weights, not
inputs: `GraphInfo.inputs` excludes them. `input_shapes` pins the dims of graph inputs (symbolic
batch or spatial dims) before shape inference, so every downstream shape is concrete.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from math import prod
from pathlib import Path

import onnx
from onnx import external_data_helper, helper, shape_inference

from mnv2prof.errors import ModelFileError, UsageError, first_line


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...] | None  # None: unknown after inference
    itemsize: int  # bytes per element
    static: bool
    elem_type: int = onnx.TensorProto.FLOAT  # onnx.TensorProto data type

    @property
    def numel(self) -> int | None:
        return None if self.shape is None else prod(self.shape)

    @property
    def nbytes(self) -> int | None:
        n = self.numel
        return None if n is None else n * self.itemsize


@dataclass
class GraphInfo:
    model: onnx.ModelProto
    nodes: list[onnx.NodeProto]
    tensors: dict[str, TensorInfo]
    inputs: list[str]  # graph inputs that are activations (initializers excluded)
    outputs: list[str]
    opset: int
    initializer_names: set[str] = field(default_factory=set)

    def tensor(self, name: str) -> TensorInfo | None:
        return self.tensors.get(name) if name else None

    def node_inputs(self, node: onnx.NodeProto) -> Iterator[TensorInfo]:
        for name in node.input:
            if (info := self.tensor(name)) is not None:
                yield info

    def node_outputs(self, node: onnx.NodeProto) -> Iterator[TensorInfo]:
        for name in node.output:
            if (info := self.tensor(name)) is not None:
                yield info


def _itemsize(elem_type: int) -> int:
    try:
        return helper.tensor_dtype_to_np_dtype(elem_type).itemsize
    except (KeyError, TypeError, ValueError):
        return 4


def _shape_of(type_proto: onnx.TypeProto) -> tuple[int, ...] | None:
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    dims = type_proto.tensor_type.shape.dim
    if any(not d.HasField("dim_value") for d in dims):
        return None
    return tuple(d.dim_value for d in dims)


def load_model(path: Path | str, check: bool = False) -> onnx.ModelProto:
    """Read and vet an ONNX file; every failure is one `ModelFileError` line.

    External data is read only after every tensor's `location` has been checked to name a file
    inside the model's own folder: a model must not make us read arbitrary files (path traversal).
    `check` also runs the ONNX checker: for files from elsewhere. It is off by default because
    the graphs onnxruntime saves after optimizing (layers.py) keep IR 3 without listing their
    initializers as inputs, which the checker rejects, and exported files were checked already.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"no such ONNX file: {path}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not an ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelFileError(f"{path} is not a readable ONNX model ({type(exc).__name__})") from exc
    external = [t for t in _all_tensors(model) if t.data_location == onnx.TensorProto.EXTERNAL]
    for tensor in external:
        _check_external_location(path, tensor)
    if external:
        try:
            external_data_helper.load_external_data_for_model(model, str(path.parent))
        except Exception as exc:  # OSError, or ValueError for an offset/length out of the file
            raise ModelFileError(f"{path}: cannot read external data ({first_line(exc)})") from exc
    if check:
        try:
            onnx.checker.check_model(model)
        except Exception as exc:  # onnx.checker.ValidationError and the C++ checker's errors
            raise ModelFileError(f"{path} fails the ONNX checker: {first_line(exc)}") from exc
    return model



def _check_external_location(path: Path, tensor: onnx.TensorProto) -> None:
    location = next((e.value for e in tensor.external_data if e.key == "location"), "")
    folder = path.parent.resolve()
    target = (folder / location).resolve()
    if not location or Path(location).is_absolute() or not target.is_relative_to(folder):
        raise ModelFileError(
            f"{path}: tensor {tensor.name!r} keeps its data at {location!r}, outside the "
            "model's folder; refusing to read it"
        )
    if not target.is_file():
        raise ModelFileError(
            f"{path}: external data file {location!r} of tensor {tensor.name!r} is missing"
        )


def _all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every TensorProto of the model: initializers and attribute tensors, subgraphs included."""

    def in_nodes(nodes) -> Iterator[onnx.TensorProto]:
        for node in nodes:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("sparse_tensor"):
                    yield from (attr.sparse_tensor.values, attr.sparse_tensor.indices)
                for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                    yield from in_graph(sub)

    def in_graph(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield from (sparse.values, sparse.indices)
        yield from in_nodes(graph.node)

    yield from in_graph(model.graph)
    for function in model.functions:
        yield from in_nodes(function.node)


def with_input_shapes(
    model: onnx.ModelProto, input_shapes: Mapping[str, tuple[int, ...]]
) -> onnx.ModelProto:
    """A copy of `model` whose named graph inputs have exactly these dims (replacing any symbol)."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = {v.name: v for v in model.graph.input if v.name not in initializers}
    unknown = sorted(set(input_shapes) - set(inputs))
    if unknown:
        raise UsageError(
            f"--shape names {', '.join(map(repr, unknown))}, not an input of the model "
            f"(inputs: {', '.join(inputs) or 'none'})"
        )
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for value in copy.graph.input:
        if value.name not in input_shapes:
            continue
        shape = input_shapes[value.name]
        tensor_type = value.type.tensor_type
        old = tensor_type.shape.dim if tensor_type.HasField("shape") else []
        if old and len(old) != len(shape):
            raise UsageError(
                f"--shape {value.name}={'x'.join(map(str, shape))} has {len(shape)} dims; "
                f"the model's input {value.name!r} has {len(old)}"
            )
        for i, dim in enumerate(old):
            if dim.HasField("dim_value") and dim.dim_value != shape[i]:
                raise UsageError(
                    f"--shape {value.name}: dim {i} is fixed to {dim.dim_value} in the model, "
                    f"not {shape[i]}"
                )
        tensor_type.ClearField("shape")
        for size in shape:
            tensor_type.shape.dim.add().dim_value = size
    # Stale inferred shapes of intermediate tensors would contradict the new input dims.
    del copy.graph.value_info[:]
    return copy


def load_graph(
    model: onnx.ModelProto | Path | str,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
) -> GraphInfo:
    """Infer shapes and describe every tensor of the main graph.

    `input_shapes` (input name -> dims) is applied to the graph inputs before shape inference.
    """
    if not isinstance(model, onnx.ModelProto):
        model = load_model(model)
    if input_shapes:
        model = with_input_shapes(model, input_shapes)
    inferred = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    graph = inferred.graph
    opset = next((o.version for o in inferred.opset_import if o.domain in ("", "ai.onnx")), 0)

    initializers = {t.name: t for t in graph.initializer}
    tensors: dict[str, TensorInfo] = {}
    for init in graph.initializer:
        tensors[init.name] = TensorInfo(
            init.name, tuple(init.dims), _itemsize(init.data_type), True, init.data_type
        )
    typed = [*graph.input, *graph.value_info, *graph.output]
    types = {v.name: v.type for v in typed}

    for value in graph.input:
        if value.name not in tensors:
            tensors[value.name] = _tensor_from_type(value.name, value.type, False, None)
    static = set(initializers)
    for node in graph.node:
        inputs = [n for n in node.input if n]
        if all(n in static for n in inputs):  # Constant has no inputs: static too
            static.update(o for o in node.output if o)
        for out in node.output:
            if out and out not in tensors:
                tensors[out] = _tensor_from_type(out, types.get(out), out in static, node)
        _fill_dropout_mask(node, tensors)

    inputs = [v.name for v in graph.input if v.name not in initializers]
    outputs = [v.name for v in graph.output]
    return GraphInfo(inferred, list(graph.node), tensors, inputs, outputs, opset, set(initializers))


def _fill_dropout_mask(node: onnx.NodeProto, tensors: dict[str, TensorInfo]) -> None:
    """Dropout's optional mask has its data's shape; ONNX shape inference leaves it unknown for
    the Dropout-7 of old (opset 7-9) exporters, which would hide it from activation memory."""
    if node.op_type != "Dropout" or len(node.output) < 2 or not node.output[1]:
        return
    mask, data = tensors.get(node.output[1]), tensors.get(node.input[0])
    if mask is not None and mask.shape is None and data is not None and data.shape is not None:
        # Dropout-7 types the mask like the data (Dropout-10 on: bool, and inference knows it).
        tensors[mask.name] = TensorInfo(
            mask.name, data.shape, data.itemsize, mask.static, data.elem_type
        )


def _tensor_from_type(
    name: str, type_proto: onnx.TypeProto | None, static: bool, node: onnx.NodeProto | None
) -> TensorInfo:
    if type_proto is None and node is not None and node.op_type == "Constant":
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        if value is not None:
            return TensorInfo(
                name, tuple(value.dims), _itemsize(value.data_type), static, value.data_type
            )
    if type_proto is None:
        return TensorInfo(name, None, 4, static)
    elem_type = type_proto.tensor_type.elem_type
    return TensorInfo(name, _shape_of(type_proto), _itemsize(elem_type), static, elem_type)
