"""The paper's memory-efficient schedule (section 5.1): the streamed block, then Table 3."""

import onnx
import pytest

from mnv2prof.errors import UsageError
from mnv2prof.models.variants import BlockSpec
from mnv2prof.run.memory_table import act_itemsize, memory_frame
from mnv2prof.run.pipeline import prepare
from tests.closed_forms import streamed_extra_elementwise_ops

C, R = 32, 56  # the README's example block, t = 6


@pytest.mark.parametrize(
    "chunks, peak_bytes",
    [
        # conv output + ReLU6 output of the whole 192-channel expansion, and the block input
        (1, 4 * R * R * (2 * 6 * C + C)),
        # one 96-channel group's conv and ReLU6 outputs, the input, the partial sum
        (2, 4 * R * R * (2 * 3 * C + C + C)),
        # one 48-channel group's conv and ReLU6 outputs, the input, the partial sum
        (4, 4 * R * R * (2 * 6 * C // 4 + C + C)),
        # one 32-channel group's conv and ReLU6 outputs, the input, the partial sum; and as much
        # at the Add of two partial sums (the input, both operands, their sum): 4 x C
        (6, 4 * R * R * (2 * C + C + C)),
        # past t chunks the Add's 4 x C is the peak, no longer the 16-channel group (the default
        # chunk count t is the fewest that reach it: models.variants.default_chunks)
        (12, 4 * R * R * 4 * C),
    ],
)
def test_streamed_block_peak_falls_macs_stay(chunks, peak_bytes):
    mbv2 = prepare(BlockSpec("mbv2", C, resolution=R)).cost
    streamed = prepare(BlockSpec("mbv2-streamed", C, resolution=R, chunks=chunks)).cost
    assert streamed.macs == mbv2.macs and streamed.params == mbv2.params
    assert streamed.peak_act_bytes == peak_bytes
    assert streamed.peak_act_bytes <= mbv2.peak_act_bytes
    extra = streamed_extra_elementwise_ops(C, R, 1, chunks)
    assert streamed.elementwise_ops == mbv2.elementwise_ops + extra


def test_exported_order_interleaves_the_chunks():
    """The static peak depends on node order: group i must be projected before group i+1 expands."""
    path = prepare(BlockSpec("mbv2-streamed", 8, resolution=8, chunks=3)).onnx_path
    ops = [n.op_type for n in onnx.load(str(path)).graph.node if n.op_type != "Constant"]
    group = ["Conv", "Clip", "Conv", "Clip", "Conv"]  # expand, ReLU6, depthwise, ReLU6, project
    assert ops == [*group, *group, "Add", *group, "Add", "BatchNormalization", "Add"]


def test_act_dtype():
    assert act_itemsize("fp16") == 2 and act_itemsize("fp32") == 4
    with pytest.raises(UsageError, match="--act-dtype must be one of fp16, fp32, got 'int8'"):
        act_itemsize("int8")


@pytest.mark.slow  # exports MobileNetV1 at 224 (shared with test_networks through the cache)
def test_mobilenetv1_column_matches_the_paper():
    frame = memory_frame("mobilenetv1", "fp16").set_index("side_px")
    paper_sides = [112, 56, 28, 14, 7, 1]
    assert frame.loc[paper_sides, "paper_max_chs"].tolist() == [64, 128, 256, 512, 1024, 1024]
    # the widest tensor per size is the paper's, at every size
    assert frame.loc[paper_sides, "naive_max_chs"].tolist() == [64, 128, 256, 512, 1024, 1024]
    assert frame.loc[112, "naive_max_tensor_kb"] == 1605.6  # paper: 1600
    # the 64-channel pointwise conv's output and the ReLU6 (Clip) output made from it
    assert frame.loc[112, "naive_peak_set_kb"] == 3211.3
    assert (frame["naive_peak_set_kb"] == frame["efficient_peak_set_kb"]).all()  # nothing to split
    fp32 = memory_frame("mobilenetv1", "fp32").set_index("side_px")
    assert fp32.loc[112, "naive_peak_set_kb"] == 6422.5  # 4 bytes: twice the fp16 bytes


@pytest.mark.slow  # exports MobileNetV2 streamed at 224 (about 40 s: t chunks in every block)
def test_mobilenetv2_both_schedules(run_cli):
    frame = memory_frame("mobilenetv2", "fp16").set_index("side_px")
    sides = [224, 112, 56, 28, 14, 7, 1]
    assert frame.index.tolist() == sides
    assert frame["naive_max_chs"].tolist() == [3, 96, 144, 192, 576, 1280, 1280]
    assert frame["efficient_max_chs"].tolist() == [3, 32, 24, 32, 96, 1280, 1280]
    for side in (112, 56, 28, 14):
        assert frame.loc[side, "efficient_peak_set_kb"] < frame.loc[side, "naive_peak_set_kb"]
    assert frame["efficient_peak_set_kb"].max() == 1605.6  # two 32x112x112 fp16 tensors
    assert frame["naive_peak_set_kb"].max() == 4816.9  # two 96x112x112 fp16 tensors
    assert frame.loc[112, ["paper_max_chs", "paper_kb"]].tolist() == [16, 400]
    code, out, err = run_cli("memory-table", "mobilenetv2")
    assert code == 0, err
    assert "chs/kB" in out and "16/400" in out and "400K" in out  # the paper's column
