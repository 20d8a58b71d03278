"""ONNX graphs of sampled networks and blocks, written directly with `onnx.helper`: no torch
module, no export per sample (an export takes seconds; a graph here takes milliseconds).

The graphs are written the way torch's exporter writes the same layers, so onnxruntime sees what
it would see in a user's file and fuses it the same way: a Conv without bias followed by
BatchNormalization (folded by onnxruntime), ReLU6 as Clip(0, 6), hard-swish as HardSwish, the
squeeze-and-excite's gate as HardSigmoid, a global average pool as ReduceMean over H and W (or
GlobalAveragePool, `Arch.pool_op`), flatten as Reshape, a Linear as Gemm, the ShuffleNet V2
split as Split and its channel shuffle as Reshape-Transpose-Reshape. Weights are seeded random
values: a kernel's time does not depend on them.

`pattern` writes the small graph that holds a kernel like one the predictor got wrong, its
channels moved (adaptive sampling, build.py): a Conv between two 1x1 convs (so that it runs in
NCHWc, its residual fused), a squeeze-and-excite, a classifier head, a block alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mnv2prof.models.variants import make_divisible
from mnv2prof.predictor.space import Arch, Block, LoneBlock

OPSET = 18  # the exporter's (artifacts.export.OPSET)
# the kinds `pattern` can write a graph around (the others grow with the prior samples)
PATTERN_KINDS = frozenset({"conv", "dwconv", "global_pool", "mul", "gemm", "reorder_in",
                           "reorder_out", "add", "activation", "concat", "split", "transpose"})
INPUT, OUTPUT = "input", "output"


@dataclass(frozen=True)
class T:
    """A tensor being built: its name and N x C x H x W shape (a flat one: h = w = 0)."""

    name: str
    c: int
    h: int
    w: int


class GraphBuilder:
    """Nodes and seeded weights of one graph, each layer one method (named like timm's)."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def _name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, array: np.ndarray, stem: str = "w") -> str:
        name = self._name(stem)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def weight(self, *shape: int) -> str:
        return self.const((self.rng.standard_normal(shape) * 0.1).astype(np.float32))

    def node(self, op: str, inputs: list[str], stem: str | None = None, outputs: int = 1,
             **attrs: object) -> list[str]:
        names = [self._name(stem or op.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=names[0], **attrs))
        return names

    def act(self, x: T, kind: str | None) -> T:
        if kind is None:
            return x
        if kind == "relu6":
            bounds = [self.const(np.array(v, np.float32), "clip") for v in (0.0, 6.0)]
            out = self.node("Clip", [x.name, *bounds])[0]
        elif kind == "hsigmoid":
            out = self.node("HardSigmoid", [x.name], alpha=1 / 6, beta=0.5)[0]
        else:
            out = self.node({"relu": "Relu", "hswish": "HardSwish"}[kind], [x.name])[0]
        return T(out, x.c, x.h, x.w)

    def conv_bn(self, x: T, out_chs: int, k: int = 1, stride: int = 1, groups: int = 1,
                act: str | None = None) -> T:
        """k x k conv (no bias), BatchNorm, activation (None: linear)."""
        w = self.weight(out_chs, x.c // groups, k, k)
        y = self.node("Conv", [x.name, w], "conv", kernel_shape=[k, k], strides=[stride] * 2,
                      pads=[k // 2] * 4, group=groups)[0]
        c = out_chs
        bn = [self.const((1 + 0.1 * self.rng.standard_normal(c)).astype(np.float32)),
              self.const((0.1 * self.rng.standard_normal(c)).astype(np.float32)),
              self.const((0.1 * self.rng.standard_normal(c)).astype(np.float32)),
              self.const((1 + 0.1 * self.rng.random(c)).astype(np.float32))]
        y = self.node("BatchNormalization", [y, *bn], "bn")[0]
        h, w_ = (x.h - 1) // stride + 1, (x.w - 1) // stride + 1
        return self.act(T(y, out_chs, h, w_), act)

    def conv_bias(self, x: T, out_chs: int, act: str | None) -> T:
        """A 1x1 conv with bias (a squeeze-and-excite's fc)."""
        w, b = self.weight(out_chs, x.c, 1, 1), self.weight(out_chs)
        y = self.node("Conv", [x.name, w, b], "fc", kernel_shape=[1, 1])[0]
        return self.act(T(y, out_chs, x.h, x.w), act)

    def global_pool(self, x: T, op: str) -> T:
        if op == "globalaveragepool":
            return T(self.node("GlobalAveragePool", [x.name], "pool")[0], x.c, 1, 1)
        axes = self.const(np.array([2, 3], np.int64), "axes")
        return T(self.node("ReduceMean", [x.name, axes], "mean", keepdims=1)[0], x.c, 1, 1)

    def se(self, x: T, squeeze: int, pool_op: str) -> T:
        """Squeeze-and-excite (MobileNetV3 section 5.3): pool, fc, ReLU, fc, hard-sigmoid, scale."""
        gate = self.conv_bias(self.conv_bias(self.global_pool(x, pool_op), squeeze, "relu"),
                              x.c, "hsigmoid")
        return T(self.node("Mul", [gate.name, x.name])[0], x.c, x.h, x.w)

    def add(self, a: T, b: T) -> T:
        return T(self.node("Add", [a.name, b.name])[0], a.c, a.h, a.w)

    def flatten(self, x: T) -> T:
        shape = self.const(np.array([1, -1], np.int64), "shape")
        return T(self.node("Reshape", [x.name, shape], "view")[0], x.c * x.h * x.w, 0, 0)

    def linear(self, x: T, out: int, act: str | None = None) -> T:
        w, b = self.weight(out, x.c), self.weight(out)
        y = self.node("Gemm", [x.name, w, b], "linear", transB=1)[0]
        return self.act(T(y, out, 0, 0), act)

    def max_pool(self, x: T) -> T:
        y = self.node("MaxPool", [x.name], "pool", kernel_shape=[3, 3], strides=[2, 2],
                      pads=[1, 1, 1, 1])[0]
        return T(y, x.c, (x.h - 1) // 2 + 1, (x.w - 1) // 2 + 1)

    def split(self, x: T) -> tuple[T, T]:
        half = self.const(np.array([x.c // 2, x.c // 2], np.int64), "split")
        a, b = self.node("Split", [x.name, half], "split", outputs=2, axis=1)
        return T(a, x.c // 2, x.h, x.w), T(b, x.c // 2, x.h, x.w)

    def concat_shuffle(self, a: T, b: T) -> T:
        """Concat on channels, then ShuffleNet's channel shuffle with 2 groups."""
        c = a.c + b.c
        y = self.node("Concat", [a.name, b.name], "cat", axis=1)[0]
        grouped = self.const(np.array([1, 2, c // 2, a.h, a.w], np.int64), "shape")
        y = self.node("Reshape", [y, grouped], "view")[0]
        y = self.node("Transpose", [y], "transpose", perm=[0, 2, 1, 3, 4])[0]
        flat = self.const(np.array([1, c, a.h, a.w], np.int64), "shape")
        return T(self.node("Reshape", [y, flat], "view")[0], c, a.h, a.w)

    def model(self, inputs: list[T], outputs: list[T]) -> onnx.ModelProto:
        def info(t: T) -> onnx.ValueInfoProto:
            shape = [1, t.c, t.h, t.w] if t.h else [1, t.c]
            return helper.make_tensor_value_info(t.name, TensorProto.FLOAT, shape)

        graph = helper.make_graph(self.nodes, "sample", [info(t) for t in inputs],
                                  [info(t) for t in outputs], self.initializers)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def inverted_residual(g: GraphBuilder, x: T, block: Block, pool_op: str) -> T:
    """MobileNetV2/V3's block (and MobileNetV4's ExtraDW with `extra_dw`)."""
    shortcut = x
    if block.extra_dw:
        x = g.conv_bn(x, x.c, block.kernel_size, 1, x.c)  # depthwise, linear
    mid = make_divisible(x.c * block.exp_ratio, block.divisor)
    if mid != x.c:
        x = g.conv_bn(x, mid, 1, act=block.act)  # point-wise expansion
    x = g.conv_bn(x, mid, block.kernel_size, block.stride, mid, block.act)  # depthwise
    if block.se:
        x = g.se(x, make_divisible(mid // 4), pool_op)
    x = g.conv_bn(x, block.out_chs, 1)  # point-wise linear projection
    if block.stride == 1 and shortcut.c == block.out_chs:
        x = g.add(x, shortcut)
    return x


def shuffle_unit(g: GraphBuilder, x: T, block: Block) -> T:
    """ShuffleNet V2's unit (paper Fig. 3c/d): split, branch, concat, shuffle."""
    half, k, s = block.out_chs // 2, block.kernel_size, block.stride
    if s == 1:
        left, right = g.split(x)
    else:
        left = g.conv_bn(g.conv_bn(x, x.c, k, 2, x.c), half, 1, act="relu")
        right = x
    right = g.conv_bn(right, half, 1, act="relu")
    right = g.conv_bn(right, half, k, s, half)
    right = g.conv_bn(right, half, 1, act="relu")
    return g.concat_shuffle(left, right)


def block(g: GraphBuilder, x: T, spec: Block, pool_op: str) -> T:
    return shuffle_unit(g, x, spec) if spec.kind == "shuffle" else inverted_residual(
        g, x, spec, pool_op)


def network_model(arch: Arch, seed: int = 0) -> onnx.ModelProto:
    """The whole network of `arch`: stem, blocks, head and classifier."""
    g = GraphBuilder(seed)
    x0 = T(INPUT, 3, arch.resolution, arch.resolution)
    x = g.conv_bn(x0, arch.stem_chs, 3, 2, act=arch.stem_act)
    if arch.max_pool:
        x = g.max_pool(x)
    for spec in arch.blocks:
        x = block(g, x, spec, arch.pool_op)
    x = g.conv_bn(x, arch.head_chs, 1, act="hswish" if arch.hidden else "relu6")
    x = g.flatten(g.global_pool(x, arch.pool_op))
    if arch.hidden:
        x = g.linear(x, arch.hidden, "hswish")
    return g.model([x0], [g.linear(x, arch.classes)])


def lone_block_model(lone: LoneBlock, seed: int = 0) -> onnx.ModelProto:
    """One block alone: its input and output are the graph's (in NCHW)."""
    g = GraphBuilder(seed)
    x0 = T(INPUT, lone.in_chs, lone.resolution, lone.resolution)
    return g.model([x0], [block(g, x0, lone.block, lone.pool_op)])


def _near(value: float, rng: np.random.Generator, step: int) -> int:
    """A channel count near `value` (x 0.5 to 1.2, nn-Meter's fine-grained range), a multiple
    of `step`."""
    return max(step, step * round(value * rng.uniform(0.5, 1.2) / step))


def _act(features: Mapping[str, float]) -> str | None:
    for name in ("relu6", "relu", "hswish", "hsigmoid"):
        if features.get(f"act_{name}"):
            return name
    return None


def _conv_pattern(g: GraphBuilder, f: Mapping[str, float], rng, depthwise: bool) -> tuple:
    step = 8 if int(f["cin"]) % 8 == 0 else 2  # stay in (or out of) NCHWc
    stem = f["cin"] < 8  # an image's channels: the conv reads the graph's input as it is
    cin = int(f["cin"]) if stem else _near(f["cin"], rng, step)
    cout = cin if depthwise or f.get("sum") else _near(f["cout"], rng, step)
    k, s, h = int(f["kernel_size"]), int(f["stride"]), int(f["h"])
    x0 = T(INPUT, cin, h, int(f["w"]))
    lead = x0 if stem else g.conv_bn(x0, cin, 1, act="relu")
    y = g.conv_bn(lead, cout, k, s, cin if depthwise else 1, _act(f))
    if f["sum"] and s == 1 and cin == cout:
        y = g.add(y, lead)
    return [x0], [g.conv_bn(y, cout, 1, act="relu")]


def pattern(kind: str, features: Mapping[str, float], seed: int) -> onnx.ModelProto | None:
    """A small graph holding a kernel of `kind` near `features` (channels moved), or None for a
    kind with no pattern (more networks sample it)."""
    rng = np.random.default_rng(seed)
    g = GraphBuilder(seed)
    f = features
    if kind in ("conv", "dwconv"):
        inputs, outputs = _conv_pattern(g, f, rng, kind == "dwconv")
        return g.model(inputs, outputs)
    if kind in ("global_pool", "mul"):
        c = _near(f["c"], rng, 8)
        x0 = T(INPUT, c, int(f["h"]), int(f["w"]))
        x = g.conv_bn(x0, c, 1, act="relu")
        pool_op = "globalaveragepool" if f.get("nchwc") and kind == "global_pool" else "reducemean"
        return g.model([x0], [g.conv_bn(g.se(x, make_divisible(c // 4), pool_op), c, 1)])
    if kind == "gemm":
        x0 = T(INPUT, _near(f["k"], rng, 8), 0, 0)
        return g.model([x0], [g.linear(x0, _near(f["n"], rng, 8))])
    if kind in ("reorder_in", "reorder_out", "add", "activation"):
        c = _near(f["c"], rng, 8)
        spec = Block("ir", c, 1, 3, 3.0, False, "hswish" if kind == "activation" else "relu6")
        return lone_block_model(LoneBlock(c, int(f["h"]), spec), seed)
    if kind in ("concat", "split", "transpose"):
        # a shuffle's transpose sees N x 2 x C/2 x H x W: its h is half the channels
        c = _near(2 * f["h"] if kind == "transpose" else f["c"], rng, 4)
        side = round((f["elements"] / c) ** 0.5)
        if side > 1:
            spec = Block("shuffle", c, 1, 3, act="relu")
            return lone_block_model(LoneBlock(c, side, spec), seed)
    return None


def chain_model(nodes: int) -> bytes:
    """`nodes` Neg nodes in a chain on one float: what onnxruntime's dispatch of a node costs,
    with nothing to compute (timing.dispatch_ms). Neg, not Identity: the optimizer removes
    Identity nodes."""
    names = ["input", *(f"neg_{i}" for i in range(nodes))]
    graph = helper.make_graph(
        [helper.make_node("Neg", [a], [b], name=b) for a, b in zip(names, names[1:])], "chain",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info(names[-1], TensorProto.FLOAT, [1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]
                             ).SerializeToString()
