"""Kernels as onnxruntime runs them: read off its own optimized graph, never guessed.

`detect` opens the model on the harness's own runner (`latency.OrtRunner`: the graph
optimization level, threads and execution mode `compare` times with), with two of its options
on: `optimized_model_filepath` saves the graph onnxruntime will run (after BN folding, activation
fusion, the NCHWc layout transform and its reorders, the residual Add fused into a Conv), and the
profiler records, for the one run the runner makes when it binds its outputs, every node's output
shapes. Each node of that graph is one `Kernel`: its op, its kind and features (kinds.py), its
MACs, and a key that names what it computes (op, attributes, shapes), so two nodes that run the
same computation are timed once. A node without a kind stays in the list (`Detected.unknown`).

`kernel_graph` cuts one kernel out as a model of its own: the node as onnxruntime runs it, its
weights (already in the layout onnxruntime chose: an NCHWc Conv's reordered filter), and its
other inputs as graph inputs of the shapes they had. Timed alone (timing.py), it costs what the
node costs inside the network, less the cache state the neighbours leave (docs/predictor.md).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from mnv2prof.predictor.kinds import Described, NodeView, Shape, describe, op_name

# ONNX's element types by the names onnxruntime's profiler gives them
_ELEM_TYPES = {"float": onnx.TensorProto.FLOAT, "double": onnx.TensorProto.DOUBLE,
               "float16": onnx.TensorProto.FLOAT16, "int64": onnx.TensorProto.INT64,
               "int32": onnx.TensorProto.INT32, "int8": onnx.TensorProto.INT8,
               "uint8": onnx.TensorProto.UINT8, "bool": onnx.TensorProto.BOOL}
_FLOAT = "float"
_ITEMSIZE = {onnx.TensorProto.DOUBLE: 8, onnx.TensorProto.INT64: 8, onnx.TensorProto.FLOAT16: 2,
             onnx.TensorProto.INT8: 1, onnx.TensorProto.UINT8: 1, onnx.TensorProto.BOOL: 1}


@dataclass(frozen=True)
class Kernel:
    """One node of onnxruntime's optimized graph."""

    name: str  # the node's name in onnxruntime's graph (and its profiler)
    op: str  # kinds.op_name: `nchwc.Conv`, `Gemm`, ...
    kind: str | None  # kinds.KINDS; None: no kind reads it (listed, never dropped)
    features: Mapping[str, float] = field(hash=False, compare=False)
    macs: int
    key: str  # what it computes: op, attributes and shapes, hashed
    timeable: bool  # every runtime input is a float tensor: it can be timed on random data


@dataclass
class Detected:
    """A model's kernels in execution order, and what cutting them out needs."""

    kernels: list[Kernel]
    model: onnx.ModelProto  # onnxruntime's optimized graph
    tensors: dict[str, tuple[str, Shape]]  # activation tensor -> (element type, shape)

    @property
    def unknown(self) -> list[Kernel]:
        return [k for k in self.kernels if k.kind is None]

    @property
    def weight_bytes(self) -> int:
        """The bytes of every weight onnxruntime keeps (its optimized graph's initializers)."""
        return sum(int(np.prod(t.dims)) * _ITEMSIZE.get(t.data_type, 4)
                   for t in self.model.graph.initializer)

    def node(self, name: str) -> onnx.NodeProto:
        return next(n for n in self.model.graph.node if n.name == name)


def detect(model: bytes | Path, threads: int = 1,
           input_shapes: Mapping[str, tuple[int, ...]] | None = None, seed: int = 0) -> Detected:
    """The kernels onnxruntime runs for `model` (bytes or a path), at `threads` intra-op threads,
    with the harness's session options; `input_shapes` gives symbolic input dims."""
    from mnv2prof.measure.latency import OrtRunner
    from mnv2prof.measure.layers import name_nodes
    from mnv2prof.onnx.graph import load_model

    loaded = onnx.load_from_string(model) if isinstance(model, bytes) else load_model(model)
    if name_nodes(loaded):  # onnxruntime's graph and profiler refer to nodes by name
        model = loaded.SerializeToString()  # else the file itself: serializing it again took
        # 30-55 ms of a 10 MB network's 110-190 ms
    with tempfile.TemporaryDirectory(prefix="mnv2prof-detect-") as tmp:
        optimized_path = Path(tmp) / "optimized.onnx"
        runner = OrtRunner(model, threads, seed, input_shapes=dict(input_shapes or {}) or None,
                           profile_prefix=str(Path(tmp) / "trace"),
                           optimized_model_path=optimized_path)
        feeds = {v.name: ("float", _fed_shape(v.shape, (input_shapes or {}).get(v.name)))
                 for v in runner.session.get_inputs()}
        trace = json.loads(Path(runner.session.end_profiling()).read_text())
        optimized = onnx.load(str(optimized_path))
    tensors = {**feeds, **_profiled_outputs(trace, optimized)}
    return Detected(_kernels(optimized, tensors), optimized, tensors)


def _fed_shape(dims, given) -> Shape:
    """The dims `OrtRunner` binds for an input: those given, else the file's (1 for a symbol)."""
    return tuple(given) if given else tuple(d if isinstance(d, int) else 1 for d in dims)


def _node_events(trace: list[dict]) -> list[dict]:
    return [e for e in trace
            if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]


def _name_unnamed(events: list[dict], model: onnx.ModelProto) -> None:
    """Give the nodes onnxruntime left unnamed (those it inlined from a function: HardSwish)
    the names its profiler calls them by (`HardSigmoid_180`: op and node index), matched in
    graph order within each op type."""
    names = {n.name for n in model.graph.node if n.name}
    spare: dict[str, list[str]] = {}
    for event in sorted(events, key=lambda e: int(e.get("args", {}).get("node_index", 0))):
        name = event["name"].removesuffix("_kernel_time")
        if name not in names:
            spare.setdefault(event.get("args", {}).get("op_name", ""), []).append(name)
    for node in model.graph.node:
        if not node.name and spare.get(node.op_type):
            node.name = spare[node.op_type].pop(0)


def _profiled_outputs(trace: list[dict], model: onnx.ModelProto) -> dict[str, tuple[str, Shape]]:
    """Each node output's (element type, shape), from the profiler's record of the node."""
    events = _node_events(trace)
    _name_unnamed(events, model)
    nodes = {n.name: n for n in model.graph.node}
    tensors: dict[str, tuple[str, Shape]] = {}
    for event in events:
        node = nodes.get(event["name"].removesuffix("_kernel_time"))
        if node is None:
            continue
        shapes = [next(iter(s.items())) for s in event.get("args", {}).get("output_type_shape", [])]
        outputs = [o for o in node.output if o]
        for tensor, (elem, dims) in zip(outputs, shapes, strict=False):
            tensors.setdefault(tensor, (elem, tuple(int(d) for d in dims)))
    return tensors


def _kernels(model: onnx.ModelProto, tensors: Mapping[str, tuple[str, Shape]]) -> list[Kernel]:
    initializers = {t.name: tuple(t.dims) for t in model.graph.initializer}
    kernels = []
    for node in model.graph.node:
        inputs, runtime = [], []
        for name in node.input:
            if not name:
                inputs.append(None)
            elif name in initializers:
                inputs.append(initializers[name])
            else:
                elem, shape = tensors.get(name, ("", None))
                inputs.append(shape)
                runtime.append(elem)
        outputs = [tensors.get(o, ("", None))[1] for o in node.output if o]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        view = NodeView(op_name(node.domain, node.op_type), attrs, tuple(inputs), tuple(outputs))
        described: Described | None = describe(view)
        timeable = all(e == _FLOAT for e in runtime) and all(o is not None for o in outputs)
        kernels.append(Kernel(
            name=node.name, op=view.op, kind=described.kind if described else None,
            features=dict(described.features) if described else {},
            macs=described.macs if described else 0,
            key=_key(view, [n in initializers for n in node.input]), timeable=timeable,
        ))
    return kernels


def _key(view: NodeView, constant: list[bool]) -> str:
    """What a node computes, hashed: its op, attributes, input and output shapes, and which
    inputs are weights (the values of neither matter to its time)."""
    attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in view.attrs.items()}
    payload = json.dumps([view.op, attrs, view.inputs, constant, view.outputs], sort_keys=True,
                         default=repr)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def kernel_graph(detected: Detected, kernel: Kernel) -> bytes:
    """`kernel` as a model of its own: its node, its weights, and its other inputs as graph
    inputs of the shapes it ran with (opsets and IR version as onnxruntime saved them)."""
    node = detected.node(kernel.name)
    initializers = {t.name: t for t in detected.model.graph.initializer}

    def value(name: str) -> onnx.ValueInfoProto:
        elem, shape = detected.tensors[name]
        return helper.make_tensor_value_info(name, _ELEM_TYPES.get(elem, onnx.TensorProto.FLOAT),
                                             list(shape))

    activations = [n for n in dict.fromkeys(node.input) if n and n not in initializers]
    graph = helper.make_graph(
        [node], "kernel", [value(n) for n in activations],
        [value(o) for o in node.output if o],
        [initializers[n] for n in dict.fromkeys(node.input) if n in initializers],
    )
    cut = helper.make_model(graph, opset_imports=list(detected.model.opset_import),
                            ir_version=detected.model.ir_version)
    return cut.SerializeToString()
