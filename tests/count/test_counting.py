import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from mnv2prof.count.counting import count_graph
from mnv2prof.count.handlers import HANDLERS
from mnv2prof.models.variants import VARIANTS, BlockSpec
from mnv2prof.onnx.graph import load_graph
from mnv2prof.run.pipeline import prepare
from tests.closed_forms import macs as closed_macs

SPECS = [  # (C, R, t, k, s, N)
    (32, 56, 6, 3, 1, 1),
    (16, 28, 1, 5, 2, 1),
    (24, 14, 3, 3, 2, 2),
]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("c, r, t, k, s, n", SPECS)
def test_macs_match_closed_form(variant, c, r, t, k, s, n):
    spec = BlockSpec(variant, c, resolution=r, exp_ratio=t, kernel_size=k, stride=s, batch=n)
    cost = prepare(spec).cost
    assert cost.macs == closed_macs(variant, c, r, t, k, s, n)
    assert cost.flops == 2 * cost.macs
    assert cost.unhandled_ops == ""


def test_paper_depthwise_separable_ratio():
    # MobileNetV2 paper 3.1: dwsep / standard = 1/d_j + 1/k^2
    conv = prepare(BlockSpec("conv", 64, resolution=28)).cost.macs
    dwsep = prepare(BlockSpec("dwsep", 64, resolution=28)).cost.macs
    assert dwsep / conv == pytest.approx(1 / 64 + 1 / 9)


def test_residual_add_is_counted_apart_from_macs():
    skip = prepare(BlockSpec("mbv2", 32, resolution=56)).cost
    noskip = prepare(BlockSpec("mbv2-noskip", 32, resolution=56)).cost
    assert skip.macs == noskip.macs
    assert skip.elementwise_ops - noskip.elementwise_ops == 32 * 56 * 56  # one add per element


def test_mbv2_peak_activation_hand_computed():
    # fp32, C=32 at 56x56, t=6: at the depthwise conv the block input (kept for the residual),
    # the expanded tensor and the depthwise output are alive: (32 + 192 + 192) * 56 * 56 * 4
    cost = prepare(BlockSpec("mbv2", 32, resolution=56, exp_ratio=6)).cost
    assert cost.peak_act_bytes == (32 + 192 + 192) * 56 * 56 * 4 == 5_218_304
    conv = prepare(BlockSpec("conv", 32, resolution=56)).cost
    assert conv.peak_act_bytes == 2 * 32 * 56 * 56 * 4


def _conv1x1_model(h, w, c1, c2, groups=1):
    weight = numpy_helper.from_array(np.ones((c2, c1 // groups, 1, 1), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=groups)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c1, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c2, h, w])],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("h, w, c1, c2, g", [(56, 56, 32, 32, 1), (14, 14, 64, 128, 1),
                                             (28, 28, 64, 64, 4)])
def test_memory_access_cost_closed_form(h, w, c1, c2, g):
    # ShuffleNet V2: B = h*w*c1*c2/g, MAC = h*w*(c1 + c2) + c1*c2/g (elements); fp32 = 4 bytes
    cost = count_graph(load_graph(_conv1x1_model(h, w, c1, c2, g)))
    assert cost.macs == h * w * c1 * c2 // g
    assert cost.bytes_moved == 4 * (h * w * (c1 + c2) + c1 * c2 // g)
    assert cost.weight_bytes == 4 * c1 * c2 // g


def test_unknown_ops_are_reported_not_silently_zero():
    node = helper.make_node("Einsum", ["x", "x"], ["y"], equation="ij,ij->ij")
    graph = helper.make_graph(
        [node, helper.make_node("Relu", ["y"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [4, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert "Einsum" not in HANDLERS
    cost = count_graph(load_graph(model))
    assert cost.unhandled == {"Einsum": 1}
    assert cost.unhandled_summary() == "Einsum x1"
    assert cost.elementwise_ops == 16  # the Relu is still counted


def _bn_model():
    # x -> BatchNormalization(scale, bias, mean, var) -> Reshape(x, target) -> Gemm(w shared twice)
    c = 4
    inits = [
        numpy_helper.from_array(np.ones(c, np.float32), name)
        for name in ("scale", "bias", "mean", "var")
    ] + [
        numpy_helper.from_array(np.array([1, c * 9], np.int64), "target"),
        numpy_helper.from_array(np.ones((c * 9, c * 9), np.float32), "w"),
    ]
    nodes = [
        helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["b"]),
        helper.make_node("Reshape", ["b", "target"], ["r"]),
        helper.make_node("Gemm", ["r", "w"], ["g1"]),
        helper.make_node("Gemm", ["g1", "w"], ["g2"], beta=0.0),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 3, 3])],
        [helper.make_tensor_value_info("g2", TensorProto.FLOAT, [1, c * 9])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_params_rule_learned_float_weights_once():
    from mnv2prof.count.counting import count_params

    graph = load_graph(_bn_model())
    # BN scale + shift (4 + 4; running mean and var are statistics), w once (36 x 36);
    # the int64 Reshape target is not learned
    assert count_params(graph) == 4 + 4 + 36 * 36


def test_gemm_macs_and_bias_only_when_added():
    cost = count_graph(load_graph(_bn_model()))
    gemms = [n for n in cost.nodes if n.op_type == "Gemm"]
    assert [n.macs for n in gemms] == [36 * 36, 36 * 36]
    assert [n.elementwise_ops for n in gemms] == [0, 0]  # no C input; then C ignored (beta=0)


def test_lrn_sums_squares_over_its_window():
    node = helper.make_node("LRN", ["x"], ["y"], size=5)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    # per element: 5 squares summed, then scale, power and divide
    assert count_graph(load_graph(model)).elementwise_ops == (5 + 3) * 8 * 4 * 4
