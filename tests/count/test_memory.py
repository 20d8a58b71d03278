import numpy as np
from onnx import TensorProto, helper, numpy_helper

from mnv2prof.count.memory import peak_activation_memory
from mnv2prof.onnx.graph import load_graph


def _model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _vi(name, *shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def test_chain_with_skip_hand_computed():
    # x(400 B) -> Relu -> a(400 B) -> Mul by w (weight) -> b(400 B) -> Add(b, x) -> y(400 B)
    w = numpy_helper.from_array(np.ones((100,), np.float32), "w")
    model = _model(
        [
            helper.make_node("Relu", ["x"], ["a"]),
            helper.make_node("Mul", ["a", "w"], ["b"]),
            helper.make_node("Add", ["b", "x"], ["y"]),
        ],
        [_vi("x", 100)],
        [_vi("y", 100)],
        [w],
    )
    peak = peak_activation_memory(load_graph(model))
    # step 0: x, a = 800; step 1: x, a, b = 1200; step 2: x, b, y = 1200; weights excluded
    assert peak.peak_bytes == 1200
    assert peak.peak_step == 1
    assert set(peak.peak_tensors) == {"x", "a", "b"}


def test_wide_middle_tensor_sets_the_peak():
    # x (10 floats) -> expand to 60 -> shrink to 10: the paper's inverted-residual shape
    model = _model(
        [
            helper.make_node("Tile", ["x", "reps"], ["wide"]),
            helper.make_node("Relu", ["wide"], ["wide2"]),
            helper.make_node("ReduceSum", ["wide2", "axes"], ["y"], keepdims=1),
        ],
        [_vi("x", 1, 10)],
        [_vi("y", 1, 1)],
        [
            numpy_helper.from_array(np.array([1, 6], np.int64), "reps"),
            numpy_helper.from_array(np.array([1], np.int64), "axes"),
        ],
    )
    peak = peak_activation_memory(load_graph(model))
    # step 1 (Relu): x is dead after step 0; wide (240 B) + wide2 (240 B)
    assert peak.peak_bytes == 480
    assert peak.peak_step == 1


def test_graph_output_stays_alive_to_the_end():
    model = _model(
        [
            helper.make_node("Relu", ["x"], ["early_out"]),
            helper.make_node("Neg", ["x"], ["n1"]),
            helper.make_node("Neg", ["n1"], ["late_out"]),
        ],
        [_vi("x", 100)],
        [_vi("early_out", 100), _vi("late_out", 100)],
    )
    peak = peak_activation_memory(load_graph(model))
    # step 2: early_out (kept for the caller), n1, late_out; x died at step 1
    assert peak.peak_bytes == 1200


def test_dropout7_mask_is_sized_like_its_data():
    # opset 9 (Dropout-7): ONNX shape inference leaves the optional mask unknown; it is as
    # large as the data, and it is alive while the node runs
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Dropout", ["x"], ["y", "mask"], ratio=0.5)],
            "g",
            [_vi("x", 100)],
            [_vi("y", 100)],
        ),
        opset_imports=[helper.make_opsetid("", 9)],
    )
    graph = load_graph(model)
    assert graph.tensor("mask").shape == (100,)
    peak = peak_activation_memory(graph)
    assert peak.unknown_tensors == ()
    assert peak.peak_bytes == 3 * 400  # x, y, mask


def test_input_shapes_replace_symbolic_dims_before_inference():
    model = _model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "L"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "L"])],
    )
    assert load_graph(model).tensor("y").shape is None
    graph = load_graph(model, input_shapes={"x": (2, 50)})
    assert graph.tensor("y").shape == (2, 50)
    assert peak_activation_memory(graph).peak_bytes == 2 * 2 * 50 * 4
