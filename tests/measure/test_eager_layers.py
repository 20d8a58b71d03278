"""Per-layer eager profile (`layers --device cuda`): the grouping, costs and CLI run on the CPU
here; the GPU-only parts (CUDA events, kernel device times) are in test_cuda.py."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from mnv2prof.measure import eager_layers
from mnv2prof.measure.eager_layers import EagerLayerRow, named_layers, time_eager_layers
from mnv2prof.models.blocks import build_block
from mnv2prof.models.variants import BlockSpec
from mnv2prof.run.pipeline import prepare

F32 = 4
CLIP = 2 * F32  # a ReLU6's min and max, exported as two scalar inputs of its Clip


def _rows(spec: BlockSpec) -> list[EagerLayerRow]:
    prepared = prepare(spec)
    return time_eager_layers(prepared.module, prepared.onnx_path, spec.input_shape,
                                runs=3, warmup=1)


@pytest.mark.parametrize(("spec", "names"), [
    (BlockSpec("mbv2", in_chs=8, resolution=8, exp_ratio=6), ["conv_pw", "conv_dw", "conv_pwl"]),
    (BlockSpec("mbv2", in_chs=8, resolution=8, exp_ratio=1), ["conv_dw", "conv_pwl"]),  # Identity
    (BlockSpec("mbv2-streamed", in_chs=8, resolution=8, exp_ratio=6, chunks=2),
     ["conv_pw.0", "conv_pw.1", "conv_dw.0", "conv_dw.1", "conv_pwl.0", "conv_pwl.1", "bn_pwl"]),
    (BlockSpec("shufflev2", in_chs=8, resolution=8), ["conv_pw", "conv_dw", "conv_pwl"]),
])
def test_named_layers_are_the_called_children(spec, names):
    assert list(named_layers(build_block(spec))) == names


def test_mbv2_rows_have_closed_form_macs_and_boundary_bytes():
    c, t, hw = 8, 6, 8 * 8
    mid = c * t
    rows = _rows(BlockSpec("mbv2", in_chs=c, resolution=8, exp_ratio=t))
    assert [r.layer for r in rows] == ["conv_pw", "conv_dw", "conv_pwl", "add"]
    by = {r.layer: r for r in rows}
    assert by["conv_pw"].macs == hw * c * mid
    assert by["conv_dw"].macs == hw * mid * 9
    assert by["conv_pwl"].macs == hw * mid * c
    assert by["add"].macs == 0
    # input + output + folded weights and bias (+ the Clip's bounds): what crosses the layer
    x, inner = hw * c * F32, hw * mid * F32
    assert by["conv_pw"].bytes_moved == x + inner + (c * mid + mid) * F32 + CLIP
    assert by["conv_dw"].bytes_moved == 2 * inner + (mid * 9 + mid) * F32 + CLIP
    assert by["conv_pwl"].bytes_moved == inner + x + (mid * c + c) * F32
    assert by["add"].bytes_moved == 3 * x
    assert by["add"].kernels == 1  # one aten::add, nothing below it on the CPU
    assert all(r.kernels >= 1 and r.kernel_ms > 0 and r.span_ms >= 0 for r in rows)


@pytest.mark.parametrize("spec", [
    BlockSpec("shufflev2", in_chs=16, resolution=8),
    BlockSpec("mbv2-streamed", in_chs=16, resolution=8, exp_ratio=6, chunks=2),
    BlockSpec("resnet", in_chs=16, resolution=8, exp_ratio=4),
    BlockSpec("fused", in_chs=16, resolution=8, exp_ratio=4),
])
def test_every_mac_of_the_block_is_in_exactly_one_row(spec):
    rows = _rows(spec)
    assert sum(r.macs for r in rows) == prepare(spec).cost.macs
    assert len({r.layer for r in rows}) == len(rows)


def test_ops_between_layers_are_one_row_named_after_them_where_they_first_ran():
    rows = _rows(BlockSpec("shufflev2", in_chs=16, resolution=8))
    assert [r.layer for r in rows] == [
        "chunk+cat+view+transpose+reshape", "conv_pw", "conv_dw", "conv_pwl"
    ]
    resnet = [r.layer for r in _rows(BlockSpec("resnet", in_chs=16, resolution=8, exp_ratio=4))]
    assert resnet == ["conv_reduce", "conv_kxk", "conv_expand", "add", "act"]  # act after add


def _event(name, device_us=0.0, cpu_us=0.0, kernels=0, children=()):
    return SimpleNamespace(name=name, device_time_total=device_us, cpu_time_total=cpu_us,
                           kernels=[object()] * kernels, cpu_children=list(children))


def test_gpu_kernel_time_and_count_come_from_the_launched_kernels():
    conv = _event("aten::cudnn_convolution", device_us=30.0, kernels=2)
    bn = _event("aten::_native_batch_norm_legit_no_training", device_us=5.0, kernels=1)
    layer = _event("mnv2prof::layer::conv_pw", device_us=35.0, cpu_us=900.0,
                   children=[_event("aten::conv2d", children=[conv]), bn])
    assert eager_layers._row_name(layer) == "conv_pw"
    assert eager_layers._row_name(_event("aten::add")) == "add"
    assert eager_layers._device_ms(layer, "cuda") == pytest.approx(0.035)
    assert eager_layers._device_ms(layer, "cpu") == pytest.approx(0.9)
    assert eager_layers._kernel_count(layer, "cuda") == 3
    assert eager_layers._kernel_count(layer, "cpu") == 2  # the leaf ops


def test_row_shares_and_launch_gaps():
    row = EagerLayerRow("conv_dw", macs=250, bytes_moved=100, kernels=3, kernel_ms=0.01,
                        span_ms=0.04).row(total_kernel_ms=0.04, total_macs=1000)
    assert row["launch_gap_ms"] == pytest.approx(0.03)
    assert row["time_share_frac"] == pytest.approx(0.25)
    assert row["macs_share_frac"] == pytest.approx(0.25)
    assert row["arith_intensity_flop_per_byte"] == pytest.approx(5.0)
    wider = EagerLayerRow("x", 0, 0, 1, kernel_ms=0.05, span_ms=0.04).row(0.05, 0)
    assert wider["launch_gap_ms"] == 0.0  # never negative: the two passes are separate samples


def test_layers_device_cuda_prints_the_gpu_table_and_writes_csv(run_cli, tmp_path, monkeypatch):
    """The command's wiring, with the GPU swapped for the CPU (same code, host clock)."""
    from mnv2prof.measure import cuda

    monkeypatch.setattr(cuda, "check_device", lambda device: None)
    monkeypatch.setattr(cuda, "gpu_environment",
                        lambda index=0: cuda.GpuEnvironment("Test GPU", "12.8", "570.1"))
    real = eager_layers.time_eager_layers
    monkeypatch.setattr(
        eager_layers, "time_eager_layers",
        lambda module, path, shape, device, runs: real(module, path, shape, "cpu", runs, 1),
    )
    out = tmp_path / "layers.csv"
    code, stdout, stderr = run_cli("layers", "mbv2", "-c", "8", "-r", "8", "--runs", "3",
                                   "--device", "cuda", "--csv", out)
    assert code == 0, stderr
    assert "layers run eagerly by torch on Test GPU" in stdout
    for header in ("kernels (count)", "kernel time (ms)", "span (ms)", "launch gaps (ms)"):
        assert header in stdout
    assert "the GPU was busy" in stdout
    frame = pd.read_csv(out)
    assert list(frame["layer"]) == ["conv_pw", "conv_dw", "conv_pwl", "add"]
    assert list(frame.columns) == [
        "layer", "macs", "bytes_moved", "arith_intensity_flop_per_byte", "kernels", "kernel_ms",
        "span_ms", "launch_gap_ms", "time_share_frac", "macs_share_frac",
    ]
    assert frame["time_share_frac"].sum() == pytest.approx(1.0, abs=1e-3)
    assert frame["macs"].sum() == 2 * (8 * 8) * 8 * 48 + (8 * 8) * 48 * 9
