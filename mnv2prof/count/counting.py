"""Count the indirect cost of an ONNX graph, one small pure handler per op type.

Conventions (../shared/PAPER.md), stated once here and in every table header:
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

The registry follows fvcore's `jit_handles.py`: a dict from op type to handler, families made
by small factories.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from math import prod

import numpy as np
import onnx
from onnx import helper

from mnv2prof.onnx.graph import GraphInfo, TensorInfo


@dataclass(frozen=True)
class OpCost:
    macs: int = 0
    elementwise_ops: int = 0


@dataclass(frozen=True)
class NodeContext:
    node: onnx.NodeProto
    inputs: list[TensorInfo | None]  # positional; None for a missing optional input
    outputs: list[TensorInfo | None]

    def attr(self, name: str, default: object = None) -> object:
        for a in self.node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def in_shape(self, i: int) -> tuple[int, ...]:
        info = self.inputs[i] if i < len(self.inputs) else None
        if info is None or info.shape is None:
            raise _ShapeUnknown(self.node.input[i] if i < len(self.node.input) else f"#{i}")
        return info.shape

    def out_shape(self, i: int = 0) -> tuple[int, ...]:
        info = self.outputs[i] if i < len(self.outputs) else None
        if info is None or info.shape is None:
            raise _ShapeUnknown(self.node.output[i] if i < len(self.node.output) else f"#{i}")
        return info.shape

    def out_numel(self, i: int = 0) -> int:
        return prod(self.out_shape(i))


class _ShapeUnknown(Exception):
    """A handler needed a shape that shape inference could not give."""


Handler = Callable[[NodeContext], OpCost]
HANDLERS: dict[str, Handler] = {}


def register(*op_types: str) -> Callable[[Handler], Handler]:
    def wrap(fn: Handler) -> Handler:
        for op in op_types:
            HANDLERS[op] = fn
        return fn

    return wrap


@register("Conv")
def _conv(ctx: NodeContext) -> OpCost:
    weight = ctx.in_shape(1)  # (C_out, C_in / groups, kH, kW)
    out = ctx.out_numel()
    bias = out if len(ctx.node.input) > 2 and ctx.node.input[2] else 0
    return OpCost(macs=out * prod(weight[1:]), elementwise_ops=bias)


@register("ConvTranspose")
def _conv_transpose(ctx: NodeContext) -> OpCost:
    weight = ctx.in_shape(1)  # (C_in, C_out / groups, kH, kW): every input pixel scatters
    bias = ctx.out_numel() if len(ctx.node.input) > 2 and ctx.node.input[2] else 0
    return OpCost(macs=prod(ctx.in_shape(0)) * prod(weight[1:]), elementwise_ops=bias)


@register("Gemm")
def _gemm(ctx: NodeContext) -> OpCost:
    a = ctx.in_shape(0)
    k = a[0] if ctx.attr("transA", 0) else a[1]
    out = ctx.out_numel()
    has_bias = len(ctx.node.input) > 2 and ctx.node.input[2] and ctx.attr("beta", 1.0) != 0
    return OpCost(macs=out * k, elementwise_ops=out if has_bias else 0)


@register("MatMul", "MatMulInteger")
def _matmul(ctx: NodeContext) -> OpCost:
    a = ctx.in_shape(0)
    return OpCost(macs=ctx.out_numel() * a[-1])


def _has_input(ctx: NodeContext, i: int) -> bool:
    return len(ctx.node.input) > i and bool(ctx.node.input[i])


@register("QLinearConv")
def _qlinear_conv(ctx: NodeContext) -> OpCost:
    # x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, [B]
    out = ctx.out_numel()
    bias = out if _has_input(ctx, 8) else 0
    return OpCost(macs=out * prod(ctx.in_shape(3)[1:]), elementwise_ops=bias)


@register("ConvInteger")
def _conv_integer(ctx: NodeContext) -> OpCost:
    # x, w, [x_zero_point], [w_zero_point]: no bias
    return OpCost(macs=ctx.out_numel() * prod(ctx.in_shape(1)[1:]))


@register("QLinearMatMul")
def _qlinear_matmul(ctx: NodeContext) -> OpCost:
    # a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point
    return OpCost(macs=ctx.out_numel() * ctx.in_shape(0)[-1])


def _qgemm(ctx: NodeContext) -> OpCost:
    # onnxruntime's QGemm: A, a_scale, a_zp, B, b_scale, b_zp, [C], [y_scale], [y_zp]
    a = ctx.in_shape(0)
    k = a[0] if ctx.attr("transA", 0) else a[1]
    out = ctx.out_numel()
    return OpCost(macs=out * k, elementwise_ops=out if _has_input(ctx, 6) else 0)


def _per_output_element(ops_per_element: int = 1) -> Handler:
    def handler(ctx: NodeContext) -> OpCost:
        return OpCost(elementwise_ops=ops_per_element * ctx.out_numel())

    return handler


def _variadic(ctx: NodeContext) -> OpCost:
    k = len([n for n in ctx.node.input if n])
    return OpCost(elementwise_ops=max(k - 1, 1) * ctx.out_numel())


def _per_input_element(ctx: NodeContext) -> OpCost:
    return OpCost(elementwise_ops=prod(ctx.in_shape(0)))


def _pool(ctx: NodeContext) -> OpCost:
    window = prod(ctx.attr("kernel_shape", [1]))
    return OpCost(elementwise_ops=window * ctx.out_numel())


def _free(ctx: NodeContext) -> OpCost:
    return OpCost()


for _op in (
    "Add", "Sub", "Mul", "Div", "Pow", "Relu", "Clip", "Sigmoid", "Tanh", "HardSigmoid",
    "HardSwish", "LeakyRelu", "PRelu", "Elu", "Selu", "Exp", "Log", "Sqrt", "Reciprocal", "Neg",
    "Abs", "Erf", "Gelu", "Softplus", "Mish", "Where", "Equal", "Less", "Greater", "Not",
    "And", "Or", "Floor", "Ceil", "Round", "Sin", "Cos", "Resize", "Upsample",
    "Sign", "Shrink", "Softsign", "ThresholdedRelu", "Celu", "IsNaN", "IsInf", "Tan", "Asin",
    "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Mod", "Xor", "GreaterOrEqual",
    "LessOrEqual",
):  # fmt: skip
    HANDLERS[_op] = _per_output_element(1)
for _op in ("BatchNormalization", "InstanceNormalization", "LayerNormalization"):
    HANDLERS[_op] = _per_output_element(2)  # scale and shift
for _op in ("Softmax", "LogSoftmax"):
    HANDLERS[_op] = _per_output_element(3)  # exp, sum, divide


@register("LRN")
def _lrn(ctx: NodeContext) -> OpCost:
    # AlexNet's local response normalization: a sum of squares over `size` neighbouring
    # channels per element, then scale, power and divide.
    return OpCost(elementwise_ops=(int(ctx.attr("size", 1)) + 3) * ctx.out_numel())


for _op in ("Sum", "Max", "Min", "Mean"):
    HANDLERS[_op] = _variadic
for _op in (
    "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin",
    "ReduceProd", "ReduceL2", "ReduceL1", "ArgMax", "ArgMin",
):  # fmt: skip
    HANDLERS[_op] = _per_input_element
for _op in ("MaxPool", "AveragePool", "LpPool"):
    HANDLERS[_op] = _pool
for _op in (
    "Reshape", "Flatten", "Transpose", "Concat", "Split", "Slice", "Squeeze", "Unsqueeze",
    "Identity", "Shape", "Size", "Gather", "Constant", "ConstantOfShape", "Cast", "Pad",
    "Expand", "Tile", "Dropout", "Range", "DepthToSpace", "SpaceToDepth", "CastLike",
):  # fmt: skip
    HANDLERS[_op] = _free
for _op in ("QuantizeLinear", "DequantizeLinear"):
    HANDLERS[_op] = _per_output_element(1)  # scale, round, shift (and saturate) per element
HANDLERS["DynamicQuantizeLinear"] = _per_output_element(2)  # the min/max pass, then the quantize


def _contrib_elementwise(*operands: int) -> Handler:
    """One op per output element of a contrib op whose output shape ONNX shape inference does
    not know (it knows only the standard ops): the broadcast of its operands' shapes."""

    def handler(ctx: NodeContext) -> OpCost:
        try:
            return OpCost(elementwise_ops=ctx.out_numel())
        except _ShapeUnknown:
            shapes = [ctx.in_shape(i) for i in operands]
            try:
                return OpCost(elementwise_ops=prod(np.broadcast_shapes(*shapes)))
            except ValueError:
                raise _ShapeUnknown(ctx.node.output[0]) from None

    return handler


# onnxruntime's quantized contrib ops (domain com.microsoft), as their float twins count
CONTRIB_HANDLERS: dict[str, Handler] = {
    "QLinearConv": _qlinear_conv,
    "QGemm": _qgemm,
    "QLinearAdd": _contrib_elementwise(0, 3),  # A, A_scale, A_zp, B, B_scale, B_zp, ...
    "QLinearMul": _contrib_elementwise(0, 3),
    "QLinearSigmoid": _contrib_elementwise(0),
    "QLinearLeakyRelu": _contrib_elementwise(0),
    "QLinearAveragePool": _pool,
    "QLinearGlobalAveragePool": _per_input_element,
    "QLinearConcat": _free,
    "QuantizeLinear": _per_output_element(1),
    "DequantizeLinear": _per_output_element(1),
}


def handler_for(node: onnx.NodeProto) -> Handler | None:
    """The node's handler: the standard ops' registry, or for onnxruntime's contrib domain its
    quantized ops; None for any other op or domain (a custom op may reuse a standard name)."""
    if node.domain in ("", "ai.onnx"):
        return HANDLERS.get(node.op_type)
    if node.domain == "com.microsoft":
        return CONTRIB_HANDLERS.get(node.op_type)
    return None


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

    The rule (PAPER.md: count every learnable tensor): a tensor counts when it is static
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
            except (_ShapeUnknown, IndexError, TypeError):
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
