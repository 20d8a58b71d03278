"""An ONNX graph with every tensor's shape and size known: the input of counting and memory.

`load_graph` runs ONNX shape inference and then labels each tensor:
- *static*: an initializer, or the output of a node whose inputs are all static (a Constant,
  ConstantOfShape of a constant, a Cast or Identity of a weight...). These are weights: counted in
  `weight_bytes`, never in activation memory.
- *activation*: everything else, graph inputs included.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from math import prod
from pathlib import Path

import onnx
from onnx import helper, shape_inference

from mnv2prof.errors import ModelFileError


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...] | None  # None: unknown after inference
    itemsize: int  # bytes per element
    static: bool

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


def load_model(path: Path | str) -> onnx.ModelProto:
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"no such ONNX file: {path}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not an ONNX file")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelFileError(f"{path} is not a readable ONNX model ({type(exc).__name__})") from exc


def load_graph(model: onnx.ModelProto | Path | str) -> GraphInfo:
    """Infer shapes and describe every tensor of the main graph."""
    if not isinstance(model, onnx.ModelProto):
        model = load_model(model)
    inferred = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    graph = inferred.graph
    opset = next((o.version for o in inferred.opset_import if o.domain in ("", "ai.onnx")), 0)

    initializers = {t.name: t for t in graph.initializer}
    tensors: dict[str, TensorInfo] = {}
    for init in graph.initializer:
        tensors[init.name] = TensorInfo(
            init.name, tuple(init.dims), _itemsize(init.data_type), static=True
        )
    typed = [*graph.input, *graph.value_info, *graph.output]
    types = {v.name: v.type for v in typed}

    static = set(initializers)
    for node in graph.node:
        inputs = [n for n in node.input if n]
        if all(n in static for n in inputs):  # Constant has no inputs: static too
            static.update(o for o in node.output if o)
        for out in node.output:
            if out and out not in tensors:
                tensors[out] = _tensor_from_type(out, types.get(out), out in static, node)
    for value in graph.input:
        if value.name not in tensors:
            tensors[value.name] = _tensor_from_type(value.name, value.type, False, None)

    inputs = [v.name for v in graph.input if v.name not in initializers]
    outputs = [v.name for v in graph.output]
    return GraphInfo(inferred, list(graph.node), tensors, inputs, outputs, opset, set(initializers))


def _tensor_from_type(
    name: str, type_proto: onnx.TypeProto | None, static: bool, node: onnx.NodeProto | None
) -> TensorInfo:
    if type_proto is None and node is not None and node.op_type == "Constant":
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        if value is not None:
            return TensorInfo(name, tuple(value.dims), _itemsize(value.data_type), static)
    if type_proto is None:
        return TensorInfo(name, None, 4, static)
    return TensorInfo(
        name, _shape_of(type_proto), _itemsize(type_proto.tensor_type.elem_type), static
    )
