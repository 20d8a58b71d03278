import pandas as pd
import pytest
from onnx import helper

from mnv2prof.measure.layers import layer_name, time_layers
from mnv2prof.models.variants import BlockSpec
from mnv2prof.run.pipeline import prepare
from tests.helpers import SPEC8

SMALL = (*SPEC8, "--runs", "5")


def _node(**props):
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="node_Conv_1")
    for key, value in props.items():
        node.metadata_props.add(key=key, value=value)
    return node


def test_layer_names_from_the_exporters_scopes():
    scopes = {"pkg.torch.onnx.name_scopes": "['', 'conv_dw', 'bn', '_native_batch_norm']"}
    assert layer_name(_node(**scopes)) == "conv_dw"
    namespace = ": m.InvertedResidual/conv_pw: m.ConvBnAct/conv_pw.bn: nn.BatchNorm2d/bn: aten.x"
    assert layer_name(_node(namespace=namespace)) == "conv_pw"
    assert layer_name(_node(namespace=": m.InvertedResidual/add: aten.add.Tensor")) == "add"
    assert layer_name(_node()) == "node_Conv_1"


def test_mbv2_nodes_map_back_to_its_layers_and_keep_every_mac():
    spec = BlockSpec("mbv2", in_chs=8, resolution=8, exp_ratio=6)
    rows = time_layers(prepare(spec).onnx_path, runs=3, warmup=1)
    macs = {r.layer: r.macs for r in rows if r.macs}
    mid, hw = 48, 8 * 8
    assert macs == {"conv_pw": hw * 8 * mid, "conv_dw": hw * mid * 9, "conv_pwl": hw * mid * 8}
    assert sum(r.macs for r in rows) == sum(macs.values())
    assert "add" in {r.layer for r in rows}
    # each fused Conv computes the exported Conv and its Clip (ReLU6); the projection is linear
    by_layer = {r.layer: r for r in rows}
    assert len(by_layer["conv_pw"].exported) == len(by_layer["conv_dw"].exported) == 2
    assert len(by_layer["conv_pwl"].exported) == 1
    # onnxruntime's profiler times each kernel in whole microseconds: a conv of this block takes
    # several; a kernel time of 0 would mean the node was not found in the trace
    assert all(by_layer[name].kernel_ms >= 0.001 for name in ("conv_pw", "conv_dw", "conv_pwl"))
    assert all(r.kernel_ms == round(r.kernel_ms, 3) for r in rows)  # medians of whole us


def test_layers_command_prints_the_table_and_writes_csv(run_cli, tmp_path):
    csv = tmp_path / "layers.csv"
    code, out, err = run_cli("layers", "mbv2", *SMALL, "--csv", csv)
    assert code == 0, err
    for header in ("layer", "op", "MACs", "(M)", "kernel", "(ms)", "share (%)", "time / MACs"):
        assert header in out
    assert "intensity" not in out and "hardtanh" not in out  # --show traffic,nodes: names
    frame = pd.read_csv(csv)
    assert {"conv_pw", "conv_dw", "conv_pwl", "add"} <= set(frame["layer"])
    assert frame["time_share_frac"].sum() == pytest.approx(1.0, abs=1e-3)
    assert frame["macs_share_frac"].sum() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    "args, message",
    [(("nope",), "unknown variant 'nope'"), (("mbv2,conv",), "layers takes one variant"),
     (("mbv2", "--runs", "0"), "--runs must be positive")],
)
def test_layers_bad_input_one_line_exit_2(run_cli, args, message):
    code, out, err = run_cli("layers", *args)
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1, err
