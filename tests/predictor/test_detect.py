"""Kernel detection on known graphs: the nodes onnxruntime runs after its fusions, each with its
kind, features and MACs; nothing dropped; a kernel cut out is the same kernel."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mnv2prof.predictor.detect import detect, kernel_graph
from mnv2prof.predictor.graphs import GraphBuilder, T, pattern


def _exported(variant: str, chs: int = 32, resolution: int = 16, stride: int = 1):
    from mnv2prof.models.variants import BlockSpec
    from mnv2prof.run.pipeline import prepare

    return prepare(BlockSpec(variant, chs, resolution=resolution, stride=stride)).onnx_path


def _act(kernel) -> str:
    return next(a.removeprefix("act_") for a, v in kernel.features.items()
                if a.startswith("act_") and v)


def _compute(kernels):
    """The kernels that compute (onnxruntime's layout reorders left out: x86's NCHWc only)."""
    return [k for k in kernels if not k.kind.startswith("reorder")]


@pytest.mark.slow
def test_mbv2_is_expand_dw_project_add():
    """mbv2 (C=32, t=6, 16x16): expand conv + ReLU6 (Clip fused), dw conv + ReLU6, linear
    project conv, the residual add; MACs by the paper's closed form, term by term."""
    kernels = detect(_exported("mbv2")).kernels
    assert not [k for k in kernels if k.kind is None]
    compute = _compute(kernels)
    assert [k.kind for k in compute] == ["conv", "dwconv", "conv", "add"]
    assert [_act(k) for k in compute[:3]] == ["relu6", "relu6", "none"]
    hw, c, mid = 16 * 16, 32, 32 * 6
    assert [k.macs for k in compute] == [hw * c * mid, hw * mid * 9, hw * mid * c, 0]
    expand, dw, project = compute[:3]
    assert (expand.features["cin"], expand.features["cout"], expand.features["kernel_size"]) \
        == (32, 192, 1)
    assert (dw.features["cin"], dw.features["kernel_size"], dw.features["stride"]) == (192, 3, 1)
    assert (project.features["cin"], project.features["cout"]) == (192, 32)


@pytest.mark.slow
def test_dwsep_stride_2():
    """dwsep at stride 2: dw conv 3x3/2 + ReLU6, then 1x1 conv + ReLU6 on the 8x8 output."""
    compute = _compute(detect(_exported("dwsep", stride=2)).kernels)
    assert [(k.kind, _act(k)) for k in compute] == [("dwconv", "relu6"), ("conv", "relu6")]
    dw, pw = compute
    assert (dw.features["stride"], dw.features["h_out"]) == (2, 8)
    assert dw.macs == 8 * 8 * 32 * 9 and pw.macs == 8 * 8 * 32 * 32


def _model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "t", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]
                             ).SerializeToString()


def test_unknown_op_is_listed_not_dropped():
    """A node no describer reads (Softmax, Erf) is a kernel of no kind, in its place."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    detected = detect(_model([helper.make_node("Erf", ["x"], ["e"], name="erf"),
                              helper.make_node("Softmax", ["e"], ["y"], name="soft")], [x], [y]))
    assert [(k.op, k.kind) for k in detected.kernels] == [("Erf", None), ("Softmax", None)]
    assert [k.name for k in detected.unknown] == ["erf", "soft"]


def test_gemm_features_and_macs():
    w = numpy_helper.from_array(np.ones((20, 64), np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 20])
    (kernel,) = detect(_model([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], [x], [y],
                              [w])).kernels
    assert kernel.kind == "gemm"
    assert (kernel.features["m"], kernel.features["k"], kernel.features["n"]) == (3, 64, 20)
    assert kernel.macs == 3 * 64 * 20


def test_same_computation_same_key():
    """Two identical convs in one graph are one key (timed once); another stride is another."""
    g = GraphBuilder(0)
    x = T("input", 16, 12, 12)
    a = g.conv_bn(g.conv_bn(x, 16, 1, act="relu"), 16, 1, act="relu")
    b = g.conv_bn(a, 16, 3, 2, 16, act="relu")
    kernels = _compute(detect(g.model([x], [b]).SerializeToString()).kernels)
    assert [k.kind for k in kernels] == ["conv", "conv", "dwconv"]
    assert kernels[0].key == kernels[1].key != kernels[2].key


def test_cut_kernel_is_the_same_kernel():
    """Every kernel cut out of a graph (its node, weights and input shapes) is, to onnxruntime,
    one kernel with the same key: the graph a kernel is timed alone in runs that kernel."""
    features = {"cin": 24, "h": 10, "w": 10, "cout": 24, "kernel_size": 3, "stride": 1,
                "nchwc": 1, "sum": 1, "act_relu6": 1}
    detected = detect(pattern("conv", features, 3).SerializeToString())
    for kernel in detected.kernels:
        (alone,) = detect(kernel_graph(detected, kernel)).kernels
        assert (alone.op, alone.kind, alone.key) == (kernel.op, kernel.kind, kernel.key)


def test_residual_fused_into_conv_where_onnxruntime_fuses_it():
    """A conv + residual add in NCHWc is one kernel (the add as the conv's Sum input); where
    onnxruntime does not use NCHWc (not x86), the add stays a kernel of its own."""
    features = {"cin": 16, "h": 8, "w": 8, "cout": 16, "kernel_size": 3, "stride": 1,
                "nchwc": 1, "sum": 1}
    kernels = detect(pattern("conv", features, 0).SerializeToString()).kernels
    if any(k.op.startswith("nchwc.") for k in kernels):
        assert [k.features["sum"] for k in kernels if k.kind == "conv"] == [0, 1, 0]
        assert "add" not in [k.kind for k in kernels]
    else:
        assert "add" in [k.kind for k in kernels]


def test_unnamed_nodes_get_the_profilers_names():
    """onnxruntime leaves the nodes it inlines (HardSwish -> HardSigmoid x Mul) unnamed; each
    gets a unique name and its shapes, so it can be cut out and timed."""
    g = GraphBuilder(0)
    x = T("input", 8, 4, 4)
    y = g.act(g.linear(g.flatten(x), 32), "hswish")
    detected = detect(g.model([x], [y]).SerializeToString())
    names = [k.name for k in detected.kernels]
    assert all(names) and len(set(names)) == len(names)
    assert all(k.timeable for k in detected.kernels)
    for kernel in detected.kernels:
        onnx.checker.check_model(onnx.load_from_string(kernel_graph(detected, kernel)))
