import logging
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mnv2prof.artifacts.export import export_cached
from mnv2prof.artifacts.quantize import (
    accuracy,
    calibration_seeds,
    heldout_seeds,
    is_quantized,
    quantize_cached,
    seeded_inputs,
)
from mnv2prof.artifacts.sources import block_source
from mnv2prof.count.cost import count_model
from mnv2prof.count.counting import count_graph
from mnv2prof.errors import UsageError
from mnv2prof.models.targets import CALIBRATIONS
from mnv2prof.models.variants import BlockSpec
from mnv2prof.onnx.graph import load_graph

MBV2 = BlockSpec("mbv2", 8, resolution=8, exp_ratio=6)
SHAPES = {"input": MBV2.input_shape}


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    return export_cached(block_source(MBV2), directory=tmp_path_factory.mktemp("onnx")).path


@pytest.fixture(scope="module")
def int8_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("int8")


@pytest.fixture(scope="module")
def int8(fp32, int8_dir):
    result = quantize_cached(fp32, SHAPES, directory=int8_dir)
    assert not result.cached
    return result.path


def _ops(path):
    model = onnx.load(str(path))
    return [n.op_type for n in model.graph.node], model


def test_the_int8_graph_is_qdq_with_int8_weights(fp32, int8):
    ops, model = _ops(int8)
    assert ops.count("QuantizeLinear") >= 4 and ops.count("DequantizeLinear") >= 4
    assert ops.count("Conv") == 3  # the convs stay, between their Q/DQ pairs
    int8_weights = [
        t
        for t in model.graph.initializer
        if t.data_type == TensorProto.INT8 and t.name.endswith("_quantized")
    ]
    assert len(int8_weights) == 3  # one per conv, per-channel symmetric
    scales = {t.name: t for t in model.graph.initializer}
    assert all(
        len(scales[w.name.replace("_quantized", "_scale")].dims) == 1 for w in int8_weights
    )  # per output channel
    assert list(int8.parent.glob("*.tmp")) == []


def test_is_quantized(fp32, int8):
    assert not is_quantized(onnx.load(str(fp32)))
    assert is_quantized(onnx.load(str(int8)))
    # int8 weights alone (a QOperator file's are read by QLinear* ops) are evidence too
    weight = numpy_helper.from_array(np.zeros((2, 2), np.int8), "w")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [weight],
    )
    assert is_quantized(helper.make_model(graph))


def test_int8_counts_the_same_macs_and_a_quarter_of_the_weights(fp32, int8, tmp_path):
    a, b = count_model(fp32), count_model(int8)
    assert b.macs == a.macs > 0
    assert b.params == a.params  # the export's metadata survives quantization
    assert b.unhandled_ops == ""
    # a conv block: its int8 weights (and per-channel scales, int32 biases) are ~1/4 of fp32's
    conv = BlockSpec("conv", 16, resolution=8)
    conv_fp32 = export_cached(block_source(conv), directory=tmp_path).path
    conv_int8 = quantize_cached(conv_fp32, {"input": conv.input_shape}, directory=tmp_path).path
    wa, wb = count_model(conv_fp32), count_model(conv_int8)
    assert wb.macs == wa.macs == 16 * 16 * 9 * 8 * 8
    assert 16 * 16 * 9 <= wb.weight_bytes  # the int8 weights themselves
    assert 0.25 <= wb.weight_bytes / wa.weight_bytes <= 0.3


def test_qoperator_graphs_count_their_integer_convs_like_convs(fp32, tmp_path):
    # QLinearConv (ai.onnx) and QLinearAdd (com.microsoft) as onnxruntime's QOperator writes them
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.seeds = iter(range(2))

        def get_next(self):
            seed = next(self.seeds, None)
            return None if seed is None else seeded_inputs(SHAPES, seed)

    path = tmp_path / "qop.onnx"
    quantize_static(
        str(fp32), str(path), Reader(), quant_format=QuantFormat.QOperator, per_channel=True
    )
    ops, _ = _ops(path)
    assert "QLinearConv" in ops and "QLinearAdd" in ops
    cost = count_model(path)
    assert cost.macs == count_model(fp32).macs
    assert cost.unhandled_ops == ""


def _one_node_model(node, inputs, output, initializers):
    graph = helper.make_graph([node], "g", inputs, [output], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_integer_conv_and_matmul_handlers():
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 4, 5, 5])
    w = numpy_helper.from_array(np.ones((6, 4, 3, 3), np.int8), "w")
    conv = helper.make_node("ConvInteger", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, [1, 6, 5, 5])
    cost = count_graph(load_graph(_one_node_model(conv, [x], y, [w])))
    assert cost.macs == 6 * 5 * 5 * 4 * 9 and cost.weight_bytes == 6 * 4 * 9
    a = helper.make_tensor_value_info("a", TensorProto.UINT8, [3, 4])
    b = numpy_helper.from_array(np.ones((4, 5), np.int8), "b")
    s = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zu = numpy_helper.from_array(np.array(0, np.uint8), "zu")
    zi = numpy_helper.from_array(np.array(0, np.int8), "zi")
    qmm = helper.make_node("QLinearMatMul", ["a", "s", "zu", "b", "s", "zi", "s", "zu"], ["c"])
    c = helper.make_tensor_value_info("c", TensorProto.UINT8, [3, 5])
    cost = count_graph(load_graph(_one_node_model(qmm, [a], c, [b, s, zu, zi])))
    assert cost.macs == 3 * 5 * 4 and cost.unhandled == {}


def test_requantizing_is_refused_in_one_line(int8, int8_dir):
    with pytest.raises(UsageError) as err:
        quantize_cached(int8, SHAPES, directory=int8_dir)
    assert str(err.value) == (
        f"{int8.name} is quantized already (DequantizeLinear, QuantizeLinear nodes); "
        "give its fp32 model"
    )


def test_unknown_method_is_refused(fp32, tmp_path):
    with pytest.raises(UsageError) as err:
        quantize_cached(fp32, SHAPES, method="kl", directory=tmp_path)
    assert str(err.value) == "calibration 'kl': choose from minmax, entropy, percentile"
    assert list(CALIBRATIONS) == ["minmax", "entropy", "percentile"]


def test_a_model_the_quantizer_refuses_is_one_usage_line(tmp_path):
    node = helper.make_node("Mystery", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)]
    )
    path = tmp_path / "mystery.onnx"
    onnx.save(model, str(path))
    with pytest.raises(UsageError, match=r"^onnxruntime cannot quantize mystery\.onnx: ") as err:
        quantize_cached(path, directory=tmp_path / "int8")
    assert "\n" not in str(err.value)
    assert list((tmp_path / "int8").iterdir()) == []  # no half file, no temporary one


def test_a_symbolic_input_needs_its_shape(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
    )
    path = tmp_path / "sym.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    with pytest.raises(UsageError, match="symbolic dims; give its shape"):
        quantize_cached(path, directory=tmp_path)


def test_the_cache_hits_and_keys_on_the_method(fp32, int8, int8_dir):
    again = quantize_cached(fp32, SHAPES, directory=int8_dir)
    assert again.cached and again.path == int8
    other = quantize_cached(fp32, SHAPES, method="entropy", directory=int8_dir)
    assert not other.cached and other.path != int8
    fewer = quantize_cached(fp32, SHAPES, calibration_inputs=4, directory=int8_dir)
    assert not fewer.cached and fewer.path not in (int8, other.path)


def test_quantizing_is_quiet(fp32, tmp_path, capfd):
    handlers = list(logging.getLogger().handlers)
    quantize_cached(fp32, SHAPES, method="percentile", directory=tmp_path)  # prints progress
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert logging.getLogger().handlers == handlers  # no basicConfig left behind


def test_accuracy_on_held_out_inputs(fp32, int8):
    result = accuracy(fp32, int8, SHAPES)
    assert math.isfinite(result.max_abs_err) and 0 < result.max_abs_err < 1
    assert math.isfinite(result.sqnr_db) and result.sqnr_db > 20
    assert accuracy(fp32, fp32, SHAPES).sqnr_db == math.inf
    # held-out inputs are not calibration inputs
    assert not set(heldout_seeds(0, 4)) & set(calibration_seeds(0, 16))
