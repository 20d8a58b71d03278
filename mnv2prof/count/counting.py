"""Count the indirect cost of an ONNX graph, one small pure handler per op type.

Conventions (docs/conventions.md), stated once here and in every table header:
- 1 MAC = one multiply-accumulate; FLOPs = 2 x MACs. Conv MACs = N * C_out * H_out * W_out *
  (C_in / groups) * kH * kW; a conv's bias add, BN, activations, residual Add, pooling and
  reductions are *not* MACs: they are counted apart, as `elementwise_ops` (one op per output
  element of an elementwise node, (k - 1) per element for k-input Sum/Max/Min/Mean, 2 for BN's
  scale and shift, window size per output element for pooling, one per input element for
  reductions and global pools).
- Memory access cost (ShuffleNet V2, generalised per op): bytes read (every input, weights
  included) + bytes written (every output). For a 1x1 conv c1 -> c2 on h x w in elements this
  is h*w*(c1 + c2) + c1*c2, the paper's closed form.
- Ops without a handler are *reported* (`GraphCost.unhandled`), never counted as zero in silence.
  Data-movement ops (Reshape, Transpose, Concat, ...) have a handler that says "0 MACs, 0 ops":
  they still move bytes.

Quantized graphs (artifacts/quantize.py's QDQ files, or QOperator files from elsewhere):
- integer convs and matmuls (`QLinearConv`, `ConvInteger`, `QLinearMatMul`, `MatMulInteger`,
  onnxruntime's `QGemm`) count MACs exactly as `Conv`, `MatMul` and `Gemm` do, so an int8 graph
  has its fp32 twin's MACs; `QuantizeLinear`/`DequantizeLinear` of an activation are one op per
  element (`DynamicQuantizeLinear` two: a min/max pass, then the quantize), `QLinearAdd` and
  its kin count as their float ops;
- a weight's `DequantizeLinear` is constant folding material like a Cast: it is skipped, and its
  float output is not a stored weight: `weight_bytes` counts the int8 tensor and its scales, and
  a node reading the dequantized weight reads those bytes (what `QLinearConv` reads). An
  activation's Q/DQ pair is fused as onnxruntime fuses it (`count_graph`): the node between
  reads and writes the 1-byte tensors, and the pair moves no bytes of its own; so `bytes_moved`
  is the int8 kernels' traffic. Peak activation memory (memory.py) walks the graph as written.
- onnxruntime's contrib ops (domain `com.microsoft`) are counted only for the quantized ops
  in `CONTRIB_HANDLERS`; any other op of another domain is reported unhandled. ONNX shape
  inference does not know them: their ops come from their operands' shapes, but a tensor they
  write has no known size, so a QOperator graph's bytes and peak memory miss those tensors.

The registry (handlers.py) follows fvcore's `jit_handles.py`: one literal dict from op type to
handler, families made by small factories. This module walks a graph with it.
"""


from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import onnx

from mnv2prof.count.handlers import NodeContext, OpCost, ShapeUnknown, handler_for
from mnv2prof.onnx.graph import GraphInfo, TensorInfo


@dataclass(frozen=True)
class NodeCost:
    name: str
    op_type: str
    macs: int
    elementwise_ops: int
    bytes_read: int  # every input, weights included
    bytes_written: int
    weight_bytes_read: int
    handled: bool  # False: no handler (or a shape it needed was unknown); macs and ops are 0

    @property
    def bytes_moved(self) -> int:
        return self.bytes_read + self.bytes_written


@dataclass(frozen=True)
class GraphCost:
    nodes: tuple[NodeCost, ...]
    weight_bytes: int  # every static tensor (initializers, constants), counted once;
    # a weight's DequantizeLinear output is not one (its int8 source is)
    unhandled: dict[str, int] = field(default_factory=dict)  # op type -> node count

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def elementwise_ops(self) -> int:
        return sum(n.elementwise_ops for n in self.nodes)

    @property
    def bytes_moved(self) -> int:
        return sum(n.bytes_moved for n in self.nodes)

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte moved."""
        return self.flops / self.bytes_moved if self.bytes_moved else 0.0

    def unhandled_summary(self) -> str:
        return ", ".join(f"{op} x{n}" for op, n in sorted(self.unhandled.items()))


# Static inputs that are settings or statistics, not learned: BN's running mean and variance,
# Clip's bounds, Dropout's ratio, Pad's fill value, Resize/Upsample's roi and scales.
_NOT_PARAMS: dict[str, frozenset[int]] = {
    "BatchNormalization": frozenset({3, 4}),
    "Clip": frozenset({1, 2}),
    "Dropout": frozenset({1, 2}),
    "Pad": frozenset({1, 2, 3}),
    "Resize": frozenset({1, 2, 3}),
    "Upsample": frozenset({1}),
}


def count_params(graph: GraphInfo) -> int:
    """Learnable scalars of an ONNX graph, read from the weights its computing nodes consume.

    The rule (docs/conventions.md: count every learnable tensor): a tensor counts when it is static
    (initializer, Constant, ConstantOfShape output...), floating point, and read by a node that
    computes on activations, except the inputs in `_NOT_PARAMS`. Each tensor counts once. Integer
    tensors (Reshape targets, ConstantOfShape's shape) are not learned; weights that are folded
    on the way (a Cast, an Unsqueeze of a BN scale) count as the tensor the computing node reads.
    """
    counted: set[str] = set()
    total = 0
    for node in graph.nodes:
        outputs = [graph.tensor(n) for n in node.output]
        if outputs and all(o is not None and o.static for o in outputs):
            continue  # folds weights: its output is what a computing node reads
        skip = _NOT_PARAMS.get(node.op_type, frozenset())
        for i, name in enumerate(node.input):
            info = graph.tensor(name)
            if info is None or not info.static or i in skip or name in counted:
                continue
            if info.numel is not None and info.elem_type in _FLOAT_TYPES:
                counted.add(name)
                total += info.numel
    return total


_FLOAT_TYPES = frozenset({
    onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
    onnx.TensorProto.BFLOAT16,
})  # fmt: skip


def _bytes(infos: list[TensorInfo | None]) -> int:
    return sum(i.nbytes or 0 for i in infos if i is not None)


_DQ_DOMAINS = ("", "ai.onnx", "com.microsoft")


def _dequantized_weights(graph: GraphInfo) -> dict[str, int]:
    """{float output of a weight's DequantizeLinear: bytes of what it was made from (the int8
    tensor, its scale and zero point)}: the stored form, which the int8 kernels read."""
    stored: dict[str, int] = {}
    for node in graph.nodes:
        if node.op_type != "DequantizeLinear" or node.domain not in _DQ_DOMAINS:
            continue
        outputs = [graph.tensor(n) for n in node.output]
        if not outputs or not all(o is not None and o.static for o in outputs):
            continue  # an activation's DQ: counted as an op
        sources = [graph.tensor(n) for n in node.input]
        stored[node.output[0]] = _bytes([s for s in sources if s is not None])
    return stored


def _fused_activations(graph: GraphInfo) -> tuple[dict[str, int], dict[str, int], set[int]]:
    """The QDQ pairs onnxruntime fuses into its integer kernels (QLinearConv, QLinearAdd...):
    ({float output of an activation's DequantizeLinear: bytes of its int8 input},
    {float tensor read only by QuantizeLinear: bytes of the int8 tensor it becomes},
    ids of those Q and DQ nodes, which then move no bytes of their own)."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.nodes:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    read_as: dict[str, int] = {}
    written_as: dict[str, int] = {}
    fused: set[int] = set()
    for node in graph.nodes:
        if node.domain not in _DQ_DOMAINS or not node.output:
            continue
        out = graph.tensor(node.output[0])
        if out is None or out.static:
            continue
        if node.op_type == "DequantizeLinear":
            read_as[node.output[0]] = _bytes([graph.tensor(n) for n in node.input])
            fused.add(id(node))
        elif node.op_type == "QuantizeLinear" and node.input:
            source = node.input[0]
            if all(r.op_type == "QuantizeLinear" for r in readers.get(source, [])):
                written_as[source] = out.nbytes or 0
                fused.add(id(node))
    return read_as, written_as, fused


def count_graph(graph: GraphInfo) -> GraphCost:
    """Cost of every node that computes on activations; nodes that only fold weights are skipped.

    In a QDQ graph (artifacts/quantize.py) bytes are counted as onnxruntime runs it: a node between
    an activation's DequantizeLinear and QuantizeLinear reads the 1-byte tensor before the DQ and
    writes the 1-byte tensor after the Q (the pair is fused into the integer kernel), and the Q
    and DQ nodes move no bytes of their own (their per-element ops are still counted).
    """
    rows: list[NodeCost] = []
    unhandled: Counter[str] = Counter()
    dequantized = _dequantized_weights(graph)
    read_as, written_as, fused = _fused_activations(graph)
    stored = {**dequantized, **read_as}

    def nbytes(infos: list[TensorInfo | None], written: bool = False) -> int:
        sizes = written_as if written else stored
        return sum(sizes.get(i.name, i.nbytes or 0) for i in infos if i is not None)

    for node in graph.nodes:
        outputs = [graph.tensor(n) for n in node.output]
        if outputs and all(o is not None and o.static for o in outputs):
            continue  # constant folding material (Constant, weight casts): part of the weights
        inputs = [graph.tensor(n) for n in node.input]
        ctx = NodeContext(node, inputs, outputs)
        handler = handler_for(node)
        cost, handled = OpCost(), False
        if handler is not None:
            try:
                cost, handled = handler(ctx), True
            except (ShapeUnknown, IndexError, TypeError):
                handled = False
        if not handled:
            unhandled[node.op_type] += 1
        rows.append(
            NodeCost(
                name=node.name or f"{node.op_type}_{len(rows)}",
                op_type=node.op_type,
                macs=cost.macs,
                elementwise_ops=cost.elementwise_ops,
                bytes_read=0 if id(node) in fused else nbytes(inputs),
                bytes_written=0 if id(node) in fused else nbytes(outputs, written=True),
                weight_bytes_read=nbytes([i for i in inputs if i is not None and i.static]),
                handled=handled,
            )
        )
    # a dequantized weight is a float view of a stored one (its sources are counted)
    weight_bytes = sum(
        t.nbytes or 0 for t in graph.tensors.values() if t.static and t.name not in dequantized
    )
    return GraphCost(tuple(rows), weight_bytes, dict(unhandled))
