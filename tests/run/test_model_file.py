"""`mnv2prof profile`: any ONNX file, counted against closed forms and published figures.

Real material ships inside the onnx package (backend/test/data): the `light` networks (opset 9,
IR 3, weights made by ConstantOfShape, initializers also listed as graph inputs) and per-op
models exported by old PyTorch (opset 6).
"""

import csv
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mnv2prof.errors import UsageError
from mnv2prof.measure.latency import Measurement, OrtRunner
from mnv2prof.onnx.graph import load_graph
from mnv2prof.onnx.inputs import parse_shapes
from mnv2prof.run.model_file import (
    count_model_file,
    counted_spec,
    layer_runs,
    prepare_file,
)
from mnv2prof.run.pipeline import layer_rows

DATA = Path(onnx.__file__).parent / "backend/test/data"
LIGHT = DATA / "light"

# name -> (MACs, params, peak activation bytes), counted from the graphs; params are the
# published counts (torchvision / Caffe model zoo) where those exist, see docs/foreign-models.md.
LIGHT_FIGURES = {
    "light_bvlc_alexnet": (654_560_384, 60_965_224, 2_239_488),
    "light_densenet121": (2_834_161_664, 8_062_504, 8_429_568),
    "light_inception_v1": (1_431_556_352, 6_998_552, 6_422_528),
    "light_inception_v2": (2_018_851_840, 11_214_888, 6_422_528),
    "light_resnet50": (4_089_184_256, 25_557_032, 9_633_792),
    "light_shufflenet": (124_664_528, 1_393_320, 3_110_912),
    "light_squeezenet": (349_151_936, 1_235_496, 6_308_352),
    "light_vgg19": (19_632_062_464, 143_667_240, 25_690_112),
    "light_zfnet512": (1_481_727_008, 87_250_536, 9_124_608),
}


def test_every_light_model_is_shipped():
    assert sorted(p.stem for p in LIGHT.glob("*.onnx")) == sorted(LIGHT_FIGURES)


@pytest.mark.parametrize("name", sorted(LIGHT_FIGURES))
def test_light_models_count_completely(name):
    count = count_model_file(LIGHT / f"{name}.onnx")
    macs, params, peak = LIGHT_FIGURES[name]
    assert (count.cost.macs, count.cost.params, count.cost.peak_act_bytes) == (macs, params, peak)
    assert count.cost.unhandled_ops == ""
    assert count.unknown_tensors == ()
    assert count.opset == 9
    assert count.notes == ()
    # the only activation input is the image; the ~250 initializers listed as inputs are weights
    assert list(count.input_shapes.values()) == [(1, 3, 224, 224)]


def _vgg19_closed_form() -> int:
    # 3x3 convs, pad 1: h*w*9*c_in*c_out per layer (ResNet paper Table 1's VGG-19), then 3 FCs.
    stages = [
        (224, [(3, 64), (64, 64)]),
        (112, [(64, 128), (128, 128)]),
        (56, [(128, 256)] + [(256, 256)] * 3),
        (28, [(256, 512)] + [(512, 512)] * 3),
        (14, [(512, 512)] * 4),
    ]
    convs = sum(r * r * 9 * ci * co for r, layers in stages for ci, co in layers)
    return convs + 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * 1000


def test_vgg19_matches_closed_form_and_the_paper_within_1_percent():
    macs = count_model_file(LIGHT / "light_vgg19.onnx").cost.macs
    assert macs == _vgg19_closed_form()
    assert macs / 19.6e9 == pytest.approx(1, rel=0.01)  # ResNet paper Table 1: 19.6 GMACs


def _stride_on_first_1x1(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """ResNet v1: move each bottleneck's stride from its 3x3 conv to the block's first 1x1 conv."""
    by_output = {o: n for n in model.graph.node for o in n.output}
    moved = 0
    for node in model.graph.node:
        attrs = {a.name: a for a in node.attribute}
        if node.op_type != "Conv" or list(attrs["kernel_shape"].ints) != [3, 3]:
            continue
        if list(attrs.get("strides", helper.make_attribute("s", [1, 1])).ints) != [2, 2]:
            continue
        producer = by_output[node.input[0]]
        while producer.op_type != "Conv":  # back through Relu and BatchNormalization
            producer = by_output[producer.input[0]]
        del attrs["strides"].ints[:]
        attrs["strides"].ints.extend([1, 1])
        first = {a.name: a for a in producer.attribute}
        first["strides"].ints[:] = [2, 2]
        moved += 1
    return model, moved


def test_resnet50_is_v1_5_and_v1_gives_the_papers_figure():
    """The file puts the stride on the 3x3 conv (v1.5); the paper's 3.8 GMACs is v1 (stride on
    the first 1x1), where that 1x1 runs on a quarter of the pixels."""
    path = LIGHT / "light_resnet50.onnx"
    v15 = count_model_file(path).cost.macs
    model, moved = _stride_on_first_1x1(onnx.load(str(path)))
    assert moved == 3  # stages conv3_x, conv4_x, conv5_x
    v1 = count_graph_macs(model)
    # each moved 1x1 conv (c -> c/2 channels at 56, 28, 14 px) loses 3/4 of its MACs
    stages = [(56, 256), (28, 512), (14, 1024)]
    assert v15 - v1 == sum(3 * (r * r * c * c // 2) // 4 for r, c in stages)
    assert v1 == 3_857_973_248
    assert v1 / 3.8e9 == pytest.approx(1, abs=0.016)  # the paper quotes 2 significant digits
    assert v15 / 3.8e9 > 1.07


def count_graph_macs(model: onnx.ModelProto) -> int:
    from mnv2prof.count.counting import count_graph

    return count_graph(load_graph(model)).macs


def test_initializers_listed_as_inputs_are_not_bound_by_onnxruntime():
    path = LIGHT / "light_squeezenet.onnx"
    model = onnx.load(str(path))
    assert len(model.graph.input) == 53 and model.ir_version == 3
    assert load_graph(model).inputs == ["data_0"]
    runner = OrtRunner(path)
    assert [v.name for v in runner.session.get_inputs()] == ["data_0"]


# --- per-op models exported by old PyTorch (opset 6) -----------------------------------------

PER_OP = sorted(DATA.glob("pytorch-*/*/model.onnx"))


@pytest.mark.parametrize("path", PER_OP, ids=lambda p: p.parent.name)
def test_per_op_models_count_without_gaps(path):
    count = count_model_file(path)
    assert count.cost.unhandled_ops == ""
    assert count.unknown_tensors == ()


@pytest.mark.parametrize(
    "case, macs, params",
    [
        # N=2, 3 -> 4 channels, 3x2 kernel on 7x5: out 2*4*5*4, each 3*3*2 MACs; 4*3*3*2 + 4 params
        ("test_Conv2d", 2 * 4 * 5 * 4 * 3 * 3 * 2, 4 * 3 * 3 * 2 + 4),
        ("test_Conv2d_groups", 2 * 6 * 4 * 4 * 2 * 3 * 2, 6 * 2 * 3 * 2 + 6),
        ("test_Conv2d_depthwise", 2 * 4 * 4 * 4 * 3 * 3, 4 * 9 + 4),
        ("test_Linear", 4 * 8 * 10, 8 * 10 + 8),
        ("test_BatchNorm2d_eval", 0, 2 * 3),  # scale and shift; running stats are not learned
    ],
)
def test_per_op_closed_forms(case, macs, params):
    count = count_model_file(DATA / "pytorch-converted" / case / "model.onnx")
    assert (count.cost.macs, count.cost.params) == (macs, params)


# --- weights as Constant / ConstantOfShape, symbolic dims --------------------------------------


def _model(nodes, inputs, outputs, initializers=(), opset=13, ir_version=None):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    kwargs = {} if ir_version is None else {"ir_version": ir_version}
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **kwargs)


def _vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _conv_model(x_shape, weights="initializer"):
    """x -> Conv(8 -> 16, 3x3, pad 1) -> Relu; the weight stored as `weights` says."""
    w = np.ones((16, 8, 3, 3), np.float32)
    nodes, inits = [], []
    if weights == "initializer":
        inits.append(numpy_helper.from_array(w, "w"))
    elif weights == "constant":
        nodes.append(helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w)))
    elif weights == "constant_of_shape":
        inits.append(numpy_helper.from_array(np.array(w.shape, np.int64), "w_shape"))
        value = numpy_helper.from_array(np.array([0.5], np.float32))
        nodes.append(helper.make_node("ConstantOfShape", ["w_shape"], ["w"], value=value))
    nodes += [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["y"]),
    ]
    out_shape = [x_shape[0], 16, *x_shape[2:]]
    return _model(nodes, [_vi("x", x_shape)], [_vi("y", out_shape)], inits)


@pytest.mark.parametrize("weights", ["initializer", "constant", "constant_of_shape"])
def test_weights_in_any_form_count_alike(tmp_path, weights):
    path = tmp_path / "m.onnx"
    onnx.save(_conv_model([1, 8, 6, 6], weights), path)
    count = count_model_file(path)
    assert count.cost.macs == 16 * 6 * 6 * 8 * 9
    assert count.cost.params == 16 * 8 * 9  # the int64 shape of ConstantOfShape is not learned
    assert count.cost.weight_bytes >= 16 * 8 * 9 * 4
    assert count.cost.peak_act_bytes == 2 * 16 * 6 * 6 * 4  # c and y at the Relu; w excluded


def test_symbolic_batch_defaults_to_1_and_says_so(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_conv_model(["N", 8, 6, 6]), path)
    count = count_model_file(path)
    assert count.input_shapes == {"x": (1, 8, 6, 6)}
    assert count.cost.macs == 16 * 6 * 6 * 8 * 9
    assert count.notes == (
        "input 'x': batch dim 0 ('N') is symbolic, set to 1 (give --shape x=... to choose)",
    )
    assert count_model_file(path, {"x": (4, 8, 6, 6)}).cost.macs == 4 * 16 * 6 * 6 * 8 * 9


def test_symbolic_spatial_dims_need_a_shape(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_conv_model(["N", 8, "H", "W"]), path)
    with pytest.raises(UsageError) as err:
        count_model_file(path)
    assert str(err.value) == (
        "input 'x' has symbolic dims 0 ('N'), 2 ('H'), 3 ('W'); give --shape x=<N>x8x<H>x<W>"
    )
    count = count_model_file(path, parse_shapes(["x=2x8x10x12"]))
    assert count.cost.macs == 2 * 16 * 10 * 12 * 8 * 9
    assert count.notes == ()


def test_new_ir_initializers_as_inputs_are_weights(tmp_path):
    # IR >= 4 keeps initializers listed as inputs overridable; they are still not fed
    shape = numpy_helper.from_array(np.array([-1, 12], np.int64), "shape")
    w = numpy_helper.from_array(np.ones((12, 4), np.float32), "w")
    model = _model(
        [
            helper.make_node("Reshape", ["x", "shape"], ["r"]),
            helper.make_node("MatMul", ["r", "w"], ["y"]),
        ],
        [_vi("x", ["N", 3, 2, 2]), _vi("shape", [2], TensorProto.INT64), _vi("w", [12, 4])],
        [_vi("y", ["N", 4])],
        [shape, w],
        ir_version=8,
    )
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    count = count_model_file(path)
    assert count.input_shapes == {"x": (1, 3, 2, 2)}
    assert (count.cost.macs, count.cost.params) == (12 * 4, 12 * 4)
    runner = OrtRunner(path, input_shapes=count.input_shapes)
    assert [v.name for v in runner.session.get_inputs()] == ["x"]


# --- --shape parsing ----------------------------------------------------------------------------


def test_dims_alone_name_the_only_input():
    assert parse_shapes(["1x3x224x224"]) == {"": (1, 3, 224, 224)}
    with pytest.raises(UsageError, match="expected INPUT=D0xD1x"):
        parse_shapes(["1x3x224x224", "x=1x2"])


def test_parse_shapes():
    assert parse_shapes(["data=1x3x224x224", "gpu_0/data_0=2X3X8X8", "a=b=4"]) == {
        "data": (1, 3, 224, 224),
        "gpu_0/data_0": (2, 3, 8, 8),
        "a=b": (4,),
    }


@pytest.mark.parametrize(
    "value, message",
    [
        ("x=", "--shape 'x=': expected INPUT=D0xD1x... (e.g. data=1x3x224x224)"),
        ("=1x3", "--shape '=1x3': expected INPUT=D0xD1x... (e.g. data=1x3x224x224)"),
        ("x=1x0x8", "--shape 'x=1x0x8': '0' is not a positive integer dim"),
        ("x=1xHx8", "--shape 'x=1xHx8': 'h' is not a positive integer dim"),
        ("x=1x-3", "--shape 'x=1x-3': '-3' is not a positive integer dim"),
        ("x=1,3,8,8", "--shape 'x=1,3,8,8': '1,3,8,8' is not a positive integer dim"),
    ],
)
def test_malformed_shapes_are_named(value, message):
    with pytest.raises(UsageError) as err:
        parse_shapes([value])
    assert str(err.value) == message


def test_duplicate_shape_is_refused():
    with pytest.raises(UsageError, match="gives input 'x' twice"):
        parse_shapes(["x=1x2", "x=1x3"])


# --- bad files: one line, exit 2, no traceback -------------------------------------------------


def _write_bad(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "bad.onnx"
    good = _conv_model([1, 8, 6, 6]).SerializeToString()
    if kind == "missing":
        return tmp_path / "nope.onnx"
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":  # decodes as an empty ModelProto: the checker catches it
        path.write_bytes(b"")
    elif kind == "not_onnx":
        path.write_bytes(b"\x89PNG\r\n\x1a\n this is not a protobuf \xff\xfe")
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "checker":  # a node that reads a tensor nobody makes
        model = _model(
            [helper.make_node("Relu", ["ghost"], ["y"])], [_vi("x", [1, 4])], [_vi("y", [1, 4])]
        )
        path.write_bytes(model.SerializeToString())
    elif kind in ("traversal", "absolute"):
        secret = tmp_path.parent / "secret.bin"
        secret.write_bytes(np.ones(16 * 8 * 9, np.float32).tobytes())
        model = _conv_model([1, 8, 6, 6])
        weight = model.graph.initializer[0]
        weight.ClearField("raw_data")
        weight.ClearField("float_data")
        location = "../secret.bin" if kind == "traversal" else str(secret)
        weight.data_location = TensorProto.EXTERNAL
        weight.external_data.add(key="location", value=location)
        path.write_bytes(model.SerializeToString())
    return path


BAD_FILES = {
    "missing": "no such ONNX file: {tmp}/nope.onnx",
    "directory": "{tmp}/bad.onnx is a directory, not an ONNX file",
    "empty": "{tmp}/bad.onnx fails the ONNX checker: The model does not have an ir_version",
    "not_onnx": "{tmp}/bad.onnx is not a readable ONNX model (DecodeError)",
    "truncated": "{tmp}/bad.onnx is not a readable ONNX model (DecodeError)",
    "checker": "{tmp}/bad.onnx fails the ONNX checker: ",
    "traversal": "{tmp}/bad.onnx: tensor 'w' keeps its data at '../secret.bin', outside the "
    "model's folder; refusing to read it",
    "absolute": "{tmp}/bad.onnx: tensor 'w' keeps its data at '{parent}/secret.bin', outside the "
    "model's folder; refusing to read it",
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_files_one_line_exit_2(tmp_path, run_cli, kind):
    path = _write_bad(tmp_path, kind)
    code, out, err = run_cli("profile", path, "--budget", "0.01")
    assert code == 2, (out, err)
    line = " ".join(err.split())  # rich may wrap a long line
    expected = BAD_FILES[kind].format(tmp=tmp_path, parent=tmp_path.parent)
    assert line.startswith("mnv2prof: error: " + expected), line
    assert "Traceback" not in out + err
    assert err.count("mnv2prof: error:") == 1


def test_external_data_inside_the_folder_is_read(tmp_path):
    model = _conv_model([1, 8, 6, 6])
    onnx.save(model, tmp_path / "m.onnx", save_as_external_data=True, location="m.data",
              size_threshold=0)
    assert (tmp_path / "m.data").is_file()
    assert count_model_file(tmp_path / "m.onnx").cost.params == 16 * 8 * 9


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "input 'x' has symbolic dims 2 ('H'), 3 ('W'); give --shape x=1x8x<H>x<W>"),
        (["--shape", "y=1x8x6x6"], "--shape names 'y', not an input of the model (inputs: x)"),
        (["--shape", "x=1x8x6"], "--shape x=1x8x6 has 3 dims; the model's input 'x' has 4"),
        (["--shape", "x=1x4x6x6"], "--shape x: dim 1 is fixed to 8 in the model, not 4"),
        (["--shape", "x"], "--shape 'x': expected INPUT=D0xD1x... (e.g. data=1x3x224x224)"),
    ],
)
def test_shape_errors_on_the_command_line(tmp_path, run_cli, args, message):
    path = tmp_path / "m.onnx"
    onnx.save(_conv_model([1, 8, "H", "W"]), path)
    code, out, err = run_cli("profile", path, *args, "--budget", "0.01")
    assert code == 2, (out, err)
    assert " ".join(err.split()) == "mnv2prof: error: " + message
    assert "Traceback" not in out + err


# --- the command end to end -------------------------------------------------------------------


def test_profile_command_with_shape_layers_and_csv(tmp_path, run_cli):
    path = tmp_path / "m.onnx"
    onnx.save(_conv_model(["N", 8, "H", "W"]), path)
    out_csv = tmp_path / "row.csv"
    code, out, err = run_cli(
        "profile", path, "--shape", "x=2x8x10x12", "--layers", "--budget", "0.05",
        "--csv", out_csv,
    )  # fmt: skip
    assert code == 0, err
    assert "m.onnx: opset 13, inputs x=2x8x10x12" in " ".join(out.split())
    # unnamed nodes are named (Conv_0) so onnxruntime's fused Conv+Relu maps back to both
    assert "nodes onnxruntime runs" in out and "Conv_0+Relu_1" in out
    assert "100.0" in out  # the conv has all the MACs
    (row,) = list(csv.DictReader(out_csv.open()))
    assert int(row["macs"]) == 2 * 16 * 10 * 12 * 8 * 9
    assert int(row["params"]) == 16 * 8 * 9
    assert int(row["peak_act_bytes"]) == 2 * (2 * 16 * 10 * 12 * 4)
    assert row["input_shape"] == "2x8x10x12" and row["variant"] == "m"
    assert row["source"] == str(path.resolve()) and len(row["source_hash"]) == 16
    assert float(row["latency_median_ms"]) > 0


def test_profile_command_on_a_light_model(tmp_path, run_cli):
    out_csv = tmp_path / "squeezenet.csv"
    code, out, err = run_cli(
        "profile", LIGHT / "light_squeezenet.onnx", "--budget", "0.05", "--csv", out_csv
    )
    assert code == 0, err
    (row,) = list(csv.DictReader(out_csv.open()))
    macs, params, peak = LIGHT_FIGURES["light_squeezenet"]
    counted = (int(row["macs"]), int(row["params"]), int(row["peak_act_bytes"]))
    assert counted == (macs, params, peak)
    assert int(row["latency_n"]) >= 5
    assert row["unhandled_ops"] == ""


def test_layers_of_a_light_model_account_for_every_mac():
    count = count_model_file(LIGHT / "light_squeezenet.onnx")
    rows = layer_rows(prepare_file(counted_spec(count)), threads=1, runs=2, warmup=2)
    assert sum(r.macs for r in rows) == LIGHT_FIGURES["light_squeezenet"][0]
    assert all(r.kernel_ms >= 0 for r in rows)
    assert {r.op_type for r in rows if r.macs} == {"Conv"}


def test_layer_runs_follow_the_budget():
    assert layer_runs(Measurement((10.0,) * 6), budget_s=0.05) == 5  # at least 5
    assert layer_runs(Measurement((10.0,) * 6), budget_s=0.2) == 20
    assert layer_runs(Measurement((1.0,) * 6), budget_s=2.0) == 50  # at most 50
