"""Kernel kinds: what one node of onnxruntime's optimized graph is, as features a regressor reads.

A kernel is a node after onnxruntime's fusions (nn-Meter, MobiSys'21, section 4: "the maximum
fusion unit"): a Conv with its BN folded and its activation fused (`com.microsoft.nchwc.Conv`
with an `activation` attribute, or `FusedConv`), a residual Add fused into that Conv as its
fourth input (`Sum`), a depthwise Conv, the layout reorders the NCHWc transformer inserts, a
pool, a Gemm, an elementwise Mul of a squeeze-and-excite, and so on. Each kind has a fixed
feature list (`FEATURES`), after nn-Meter's (`HW`, `CIN`, `COUT`, `KERNEL_SIZE`, `STRIDES`, plus
FLOPs and params for convs): shapes as onnxruntime runs them (an NCHWc tensor's channels padded
to the block), the kernel, stride, groups, activation, and derived sizes (MACs, elements in and
out, weight elements), which trees split on better than on products they would have to learn.

The registry is a literal dict from op (`domain.op_type`, the ONNX domain left out) to a small
describer (after fvcore's handles); a node whose op has none, or whose describer cannot read it,
has no kind and is *listed* by the caller (detect.py), never dropped.

MACs: 1 multiply-accumulate = 1, as onnxruntime runs the kernel: a Conv's are N x C_out x H_out
x W_out x (C_in / groups) x kH x kW with the channels of its weight tensor, padded to the NCHWc
block where onnxruntime pads them; a Gemm's M x K x N; every other kind 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import prod

Shape = tuple[int, ...]

NCHWC = "com.microsoft.nchwc"
MS = "com.microsoft"
DOMAIN_PREFIX = {"": "", "ai.onnx": "", NCHWC: "nchwc.", MS: "ms."}

# onnxruntime's fused-activation names (the `activation` attribute) and the unary ops, as one
# vocabulary; Clip with (0, 6) is ReLU6
ACTIVATIONS = ("none", "relu", "relu6", "hswish", "hsigmoid", "sigmoid", "other")
_ACTIVATION_OF = {"Relu": "relu", "HardSwish": "hswish", "HardSigmoid": "hsigmoid",
                  "Sigmoid": "sigmoid", "Clip": "relu6"}
_ACT_FEATURES = tuple(f"act_{a}" for a in ACTIVATIONS)
_SPATIAL = ("c", "h", "w", "elements")

FEATURES: dict[str, tuple[str, ...]] = {
    "conv": ("cin", "h", "w", "cout", "kernel_size", "stride", "groups", "nchwc", "sum", "bias",
             *_ACT_FEATURES, "h_out", "w_out", "macs", "in_elements", "out_elements",
             "weight_elements"),
    "dwconv": ("cin", "h", "w", "kernel_size", "stride", "nchwc", "sum", *_ACT_FEATURES,
               "h_out", "w_out", "macs", "in_elements", "out_elements"),
    "gemm": ("m", "k", "n", "bias", *_ACT_FEATURES, "macs", "weight_elements"),
    "reorder_in": (*_SPATIAL, "channels_last"),
    "reorder_out": (*_SPATIAL, "channels_last"),
    "global_pool": (*_SPATIAL, "nchwc", "max"),
    "pool": (*_SPATIAL, "nchwc", "max", "kernel_size", "stride", "out_elements"),
    "add": (*_SPATIAL, "broadcast", "nchwc", "inputs"),
    "mul": (*_SPATIAL, "broadcast", "nchwc"),
    "activation": (*_SPATIAL, "nchwc", *_ACT_FEATURES),
    "batchnorm": (*_SPATIAL,),
    "concat": (*_SPATIAL, "inputs", "min_c"),
    "split": (*_SPATIAL, "outputs", "out_elements"),
    "transpose": (*_SPATIAL, "rank"),
    "reshape": ("elements",),
}
KINDS = tuple(FEATURES)


@dataclass(frozen=True)
class NodeView:
    """One optimized node as the describers see it: its op, attributes and shapes."""

    op: str  # "Conv", "nchwc.Conv", "ms.FusedConv"
    attrs: Mapping[str, object]
    inputs: tuple[Shape | None, ...]  # per input slot; None: absent or of unknown shape
    outputs: tuple[Shape | None, ...]

    @property
    def domain_nchwc(self) -> int:
        return int(self.op.startswith("nchwc."))

    def input(self, index: int) -> Shape | None:
        return self.inputs[index] if index < len(self.inputs) else None


@dataclass(frozen=True)
class Described:
    kind: str
    features: dict[str, float]
    macs: int = 0


Describer = Callable[[NodeView], Described | None]


def activation_of(view: NodeView) -> str:
    """The fused activation of a Conv or Gemm node ("none" without one)."""
    name = view.attrs.get("activation")
    if not name:
        return "none"
    name = name.decode() if isinstance(name, bytes) else str(name)
    if name == "Clip":
        params = list(view.attrs.get("activation_params") or [])
        return "relu6" if params in ([0.0, 6.0], []) else "other"
    return _ACTIVATION_OF.get(name, "other")


def _one_hot(activation: str) -> dict[str, float]:
    return {f"act_{a}": float(a == activation) for a in ACTIVATIONS}


def _spatial(shape: Shape) -> dict[str, float]:
    """c, h, w and elements of an N x C x H x W tensor (a flat one: c = last dim, h = w = 1)."""
    c = shape[1] if len(shape) > 1 else shape[0]
    h = shape[2] if len(shape) > 2 else 1
    w = prod(shape[3:]) if len(shape) > 3 else 1
    return {"c": c, "h": h, "w": w, "elements": prod(shape)}


def _pair(value: object, default: int = 1) -> int:
    items = list(value) if isinstance(value, list | tuple) else [value] if value else []
    return int(items[0]) if items else default


def conv(view: NodeView) -> Described | None:
    x, weight, out = view.input(0), view.input(1), view.outputs[0] if view.outputs else None
    if not (x and weight and out) or len(x) != 4 or len(weight) != 4 or len(out) != 4:
        return None
    groups = int(view.attrs.get("group", 1) or 1)
    k = int(weight[2])
    macs = out[0] * out[1] * out[2] * out[3] * weight[1] * weight[2] * weight[3]
    common = {"cin": x[1], "h": x[2], "w": x[3], "kernel_size": k,
              "stride": _pair(view.attrs.get("strides")), "nchwc": view.domain_nchwc,
              "sum": float(view.input(3) is not None), **_one_hot(activation_of(view)),
              "h_out": out[2], "w_out": out[3], "macs": macs, "in_elements": prod(x),
              "out_elements": prod(out)}
    if groups > 1 and weight[1] == 1 and groups == out[1]:
        return Described("dwconv", common, macs)
    return Described("conv", {**common, "cout": out[1], "groups": groups,
                              "bias": float(view.input(2) is not None),
                              "weight_elements": prod(weight)}, macs)


def gemm(view: NodeView) -> Described | None:
    a, out = view.input(0), view.outputs[0] if view.outputs else None
    if not (a and out):
        return None
    k, n = a[-1], out[-1]
    m = prod(out[:-1])
    macs = m * k * n
    return Described("gemm", {"m": m, "k": k, "n": n, "bias": float(view.input(2) is not None),
                              **_one_hot(activation_of(view)), "macs": macs,
                              "weight_elements": k * n}, macs)


def reorder(kind: str) -> Describer:
    def describe(view: NodeView) -> Described | None:
        x = view.input(0)
        if not x:
            return None
        return Described(kind, {**_spatial(x),
                                "channels_last": float(bool(view.attrs.get("channels_last")))})
    return describe


def global_pool(is_max: bool) -> Describer:
    def describe(view: NodeView) -> Described | None:
        x = view.input(0)
        if not x or len(x) != 4:
            return None
        return Described("global_pool", {**_spatial(x), "nchwc": view.domain_nchwc,
                                         "max": float(is_max)})
    return describe


def reduce_mean(view: NodeView) -> Described | None:
    """ReduceMean over the spatial dims of an image (what a global average pool exports as);
    any other reduction has no kind."""
    x, out = view.input(0), view.outputs[0] if view.outputs else None
    if not (x and out) or len(x) != 4 or prod(out) != x[0] * x[1]:
        return None
    return global_pool(False)(view)


def pool(is_max: bool) -> Describer:
    def describe(view: NodeView) -> Described | None:
        x, out = view.input(0), view.outputs[0] if view.outputs else None
        if not (x and out) or len(x) != 4:
            return None
        return Described("pool", {**_spatial(x), "nchwc": view.domain_nchwc,
                                  "max": float(is_max),
                                  "kernel_size": _pair(view.attrs.get("kernel_shape")),
                                  "stride": _pair(view.attrs.get("strides")),
                                  "out_elements": prod(out)})
    return describe


def binary(kind: str) -> Describer:
    def describe(view: NodeView) -> Described | None:
        out = view.outputs[0] if view.outputs else None
        shapes = [s for s in view.inputs if s is not None]
        if not out or not shapes:
            return None
        features = {**_spatial(out), "broadcast": float(any(s != out for s in shapes)),
                    "nchwc": view.domain_nchwc}
        if kind == "add":
            features["inputs"] = len(shapes)
        return Described(kind, features)
    return describe


def activation(name: str) -> Describer:
    def describe(view: NodeView) -> Described | None:
        x = view.input(0)
        if not x:
            return None
        return Described("activation", {**_spatial(x), "nchwc": view.domain_nchwc,
                                        **_one_hot(name)})
    return describe


def clip(view: NodeView) -> Described | None:
    return activation("relu6")(view)


def batchnorm(view: NodeView) -> Described | None:
    x = view.input(0)
    return Described("batchnorm", _spatial(x)) if x else None


def concat(view: NodeView) -> Described | None:
    out, shapes = view.outputs[0] if view.outputs else None, [s for s in view.inputs if s]
    if not out or not shapes:
        return None
    return Described("concat", {**_spatial(out), "inputs": len(shapes),
                                "min_c": min(_spatial(s)["c"] for s in shapes)})


def split(view: NodeView) -> Described | None:
    x = view.input(0)
    if not x:
        return None
    written = sum(prod(s) for s in view.outputs if s)
    return Described("split", {**_spatial(x), "outputs": len(view.outputs),
                               "out_elements": written})


def transpose(view: NodeView) -> Described | None:
    x = view.input(0)
    return Described("transpose", {**_spatial(x), "rank": len(x)}) if x else None


def reshape(view: NodeView) -> Described | None:
    x = view.input(0)
    return Described("reshape", {"elements": prod(x)}) if x else None


DESCRIBERS: dict[str, Describer] = {
    "Conv": conv,
    "nchwc.Conv": conv,
    "ms.FusedConv": conv,
    "Gemm": gemm,
    "MatMul": gemm,
    "ms.FusedGemm": gemm,
    "ms.FusedMatMul": gemm,
    "nchwc.ReorderInput": reorder("reorder_in"),
    "nchwc.ReorderOutput": reorder("reorder_out"),
    "GlobalAveragePool": global_pool(False),
    "nchwc.GlobalAveragePool": global_pool(False),
    "GlobalMaxPool": global_pool(True),
    "nchwc.GlobalMaxPool": global_pool(True),
    "ReduceMean": reduce_mean,
    "MaxPool": pool(True),
    "nchwc.MaxPool": pool(True),
    "AveragePool": pool(False),
    "nchwc.AveragePool": pool(False),
    "Add": binary("add"),
    "Sum": binary("add"),
    "Mul": binary("mul"),
    "Relu": activation("relu"),
    "Clip": clip,
    "HardSwish": activation("hswish"),
    "HardSigmoid": activation("hsigmoid"),
    "Sigmoid": activation("sigmoid"),
    "BatchNormalization": batchnorm,
    "Concat": concat,
    "Split": split,
    "Slice": split,
    "Transpose": transpose,
    "Reshape": reshape,
    "Flatten": reshape,
    "Squeeze": reshape,
    "Unsqueeze": reshape,
    "Identity": reshape,
}


def op_name(domain: str, op_type: str) -> str:
    """`nchwc.Conv` for onnxruntime's NCHWc Conv, `Conv` for ONNX's (an unknown domain whole)."""
    prefix = DOMAIN_PREFIX.get(domain, f"{domain}.")
    return f"{prefix}{op_type}"


def describe(view: NodeView) -> Described | None:
    """The node's kind and features, or None: an op without a describer, or shapes it cannot
    read (the caller lists the node as unknown)."""
    describer = DESCRIBERS.get(view.op)
    return describer(view) if describer is not None else None


def vector(kind: str, features: Mapping[str, float]) -> list[float]:
    """The features of a kernel of `kind` in `FEATURES[kind]` order."""
    return [float(features[name]) for name in FEATURES[kind]]
