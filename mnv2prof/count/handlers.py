"""The cost handlers: one small pure function per ONNX op type, in one literal table
(`HANDLERS`; onnxruntime's quantized contrib ops in `CONTRIB_HANDLERS`). The conventions they
count by are counting.py's (1 MAC = one multiply-accumulate; what is an elementwise op).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import prod

import numpy as np
import onnx
from onnx import helper

from mnv2prof.onnx.graph import TensorInfo


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
            raise ShapeUnknown(self.node.input[i] if i < len(self.node.input) else f"#{i}")
        return info.shape

    def out_shape(self, i: int = 0) -> tuple[int, ...]:
        info = self.outputs[i] if i < len(self.outputs) else None
        if info is None or info.shape is None:
            raise ShapeUnknown(self.node.output[i] if i < len(self.node.output) else f"#{i}")
        return info.shape

    def out_numel(self, i: int = 0) -> int:
        return prod(self.out_shape(i))


class ShapeUnknown(Exception):
    """A handler needed a shape that shape inference could not give."""


Handler = Callable[[NodeContext], OpCost]


def _conv(ctx: NodeContext) -> OpCost:
    weight = ctx.in_shape(1)  # (C_out, C_in / groups, kH, kW)
    out = ctx.out_numel()
    bias = out if len(ctx.node.input) > 2 and ctx.node.input[2] else 0
    return OpCost(macs=out * prod(weight[1:]), elementwise_ops=bias)


def _conv_transpose(ctx: NodeContext) -> OpCost:
    weight = ctx.in_shape(1)  # (C_in, C_out / groups, kH, kW): every input pixel scatters
    bias = ctx.out_numel() if len(ctx.node.input) > 2 and ctx.node.input[2] else 0
    return OpCost(macs=prod(ctx.in_shape(0)) * prod(weight[1:]), elementwise_ops=bias)


def _gemm(ctx: NodeContext) -> OpCost:
    a = ctx.in_shape(0)
    k = a[0] if ctx.attr("transA", 0) else a[1]
    out = ctx.out_numel()
    has_bias = len(ctx.node.input) > 2 and ctx.node.input[2] and ctx.attr("beta", 1.0) != 0
    return OpCost(macs=out * k, elementwise_ops=out if has_bias else 0)


def _matmul(ctx: NodeContext) -> OpCost:
    a = ctx.in_shape(0)
    return OpCost(macs=ctx.out_numel() * a[-1])


def _has_input(ctx: NodeContext, i: int) -> bool:
    return len(ctx.node.input) > i and bool(ctx.node.input[i])


def _qlinear_conv(ctx: NodeContext) -> OpCost:
    # x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, [B]
    out = ctx.out_numel()
    bias = out if _has_input(ctx, 8) else 0
    return OpCost(macs=out * prod(ctx.in_shape(3)[1:]), elementwise_ops=bias)


def _conv_integer(ctx: NodeContext) -> OpCost:
    # x, w, [x_zero_point], [w_zero_point]: no bias
    return OpCost(macs=ctx.out_numel() * prod(ctx.in_shape(1)[1:]))


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


def _lrn(ctx: NodeContext) -> OpCost:
    # AlexNet's local response normalization: a sum of squares over `size` neighbouring
    # channels per element, then scale, power and divide.
    return OpCost(elementwise_ops=(int(ctx.attr("size", 1)) + 3) * ctx.out_numel())


def _contrib_elementwise(*operands: int) -> Handler:
    """One op per output element of a contrib op whose output shape ONNX shape inference does
    not know (it knows only the standard ops): the broadcast of its operands' shapes."""

    def handler(ctx: NodeContext) -> OpCost:
        try:
            return OpCost(elementwise_ops=ctx.out_numel())
        except ShapeUnknown:
            shapes = [ctx.in_shape(i) for i in operands]
            try:
                return OpCost(elementwise_ops=prod(np.broadcast_shapes(*shapes)))
            except ValueError:
                raise ShapeUnknown(ctx.node.output[0]) from None

    return handler


# Op families, each one handler (fvcore's _DEFAULT_SUPPORTED_OPS: the registry is one literal
# table, below, readable on one screen).
ELEMENTWISE = (  # one op per output element
    "Add", "Sub", "Mul", "Div", "Pow", "Relu", "Clip", "Sigmoid", "Tanh", "HardSigmoid",
    "HardSwish", "LeakyRelu", "PRelu", "Elu", "Selu", "Exp", "Log", "Sqrt", "Reciprocal", "Neg",
    "Abs", "Erf", "Gelu", "Softplus", "Mish", "Where", "Equal", "Less", "Greater", "Not",
    "And", "Or", "Floor", "Ceil", "Round", "Sin", "Cos", "Resize", "Upsample",
    "Sign", "Shrink", "Softsign", "ThresholdedRelu", "Celu", "IsNaN", "IsInf", "Tan", "Asin",
    "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Mod", "Xor", "GreaterOrEqual",
    "LessOrEqual",
)  # fmt: skip
NORMALIZATIONS = ("BatchNormalization", "InstanceNormalization", "LayerNormalization")
SOFTMAXES = ("Softmax", "LogSoftmax")
VARIADIC = ("Sum", "Max", "Min", "Mean")  # (k - 1) ops per element for k inputs
REDUCTIONS = (  # one op per input element
    "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin",
    "ReduceProd", "ReduceL2", "ReduceL1", "ArgMax", "ArgMin",
)  # fmt: skip
POOLS = ("MaxPool", "AveragePool", "LpPool")  # the window's size per output element
DATA_MOVEMENT = (  # 0 MACs, 0 ops: they still move bytes
    "Reshape", "Flatten", "Transpose", "Concat", "Split", "Slice", "Squeeze", "Unsqueeze",
    "Identity", "Shape", "Size", "Gather", "Constant", "ConstantOfShape", "Cast", "Pad",
    "Expand", "Tile", "Dropout", "Range", "DepthToSpace", "SpaceToDepth", "CastLike",
)  # fmt: skip

HANDLERS: dict[str, Handler] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "MatMulInteger": _matmul,
    "QLinearConv": _qlinear_conv,
    "ConvInteger": _conv_integer,
    "QLinearMatMul": _qlinear_matmul,
    "LRN": _lrn,
    **dict.fromkeys(ELEMENTWISE, _per_output_element(1)),
    **dict.fromkeys(NORMALIZATIONS, _per_output_element(2)),  # scale and shift
    **dict.fromkeys(SOFTMAXES, _per_output_element(3)),  # exp, sum, divide
    **dict.fromkeys(VARIADIC, _variadic),
    **dict.fromkeys(REDUCTIONS, _per_input_element),
    **dict.fromkeys(POOLS, _pool),
    **dict.fromkeys(DATA_MOVEMENT, _free),
    "QuantizeLinear": _per_output_element(1),  # scale, round, shift (and saturate) per element
    "DequantizeLinear": _per_output_element(1),
    "DynamicQuantizeLinear": _per_output_element(2),  # the min/max pass, then the quantize
}


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
