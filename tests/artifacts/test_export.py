import numpy as np
import onnx
import pytest

from mnv2prof.artifacts.export import (
    PARAMS_KEY,
    PARITY_ATOL,
    export_cached,
    export_module,
    parity_diff,
)
from mnv2prof.artifacts.sources import block_source, probe_source
from mnv2prof.count.cost import count_model, graph_params
from mnv2prof.errors import ExportError
from mnv2prof.models.blocks import build_block, count_params
from mnv2prof.models.probes import guidelines
from mnv2prof.models.variants import VARIANTS, BlockSpec
from mnv2prof.onnx.graph import load_graph


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_exports_checked_and_equal(variant, tmp_path):
    spec = BlockSpec(variant, 16, resolution=14, exp_ratio=3)
    first = export_cached(block_source(spec), directory=tmp_path)
    assert not first.cached
    assert first.max_abs_diff is not None and first.max_abs_diff <= PARITY_ATOL
    model = onnx.load(str(first.path))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    # the file records the torch module's parameters (BN scale and shift too)
    metadata = {p.key: p.value for p in model.metadata_props}
    assert int(metadata[PARAMS_KEY]) == count_params(build_block(spec))
    second = export_cached(block_source(spec), directory=tmp_path)
    assert second.cached and second.path == first.path
    assert list(tmp_path.glob("*.tmp")) == []


def test_cache_key_changes_with_the_spec_and_the_seed(tmp_path):
    a = export_cached(block_source(BlockSpec("conv", 8, resolution=8)), directory=tmp_path)
    b = export_cached(block_source(BlockSpec("conv", 8, resolution=8, kernel_size=5)),
                      directory=tmp_path)
    c = export_cached(block_source(BlockSpec("conv", 8, resolution=8)), seed=1,
                      directory=tmp_path)
    assert len({a.path, b.path, c.path}) == 3


def test_a_probe_goes_through_the_same_export_and_count(tmp_path):
    g3 = guidelines()[2]
    config = g3.configs[0]
    exported = export_cached(probe_source(g3.key, config), directory=tmp_path)
    assert exported.path.name.startswith("G3-")
    module = probe_source(g3.key, config).build(0)
    # a probe has real parameters now (guidelines passed 0 before the one path)
    assert count_model(exported.path).params == count_params(module) > 0


def test_a_foreign_file_counts_its_graph_weights(tmp_path):
    spec = BlockSpec("mbv2", 8, resolution=8, exp_ratio=6)
    path = export_cached(block_source(spec), directory=tmp_path).path
    model = onnx.load(str(path))
    del model.metadata_props[:]  # as if another exporter had written it
    graph = load_graph(model)
    # folded BN: the conv weights and the folded biases, not BN's scale (8*48+48*9+48*8 + 104)
    assert graph_params(graph) == 8 * 48 + 48 * 9 + 48 * 8 + (48 + 48 + 8)
    assert graph_params(load_graph(path)) == count_params(build_block(spec))


def test_parity_failure_is_an_export_error(tmp_path, monkeypatch):
    import mnv2prof.artifacts.export as export

    monkeypatch.setattr(export, "parity_diff", lambda *a: 1.0)
    with pytest.raises(ExportError, match="differs from torch"):
        export_module(build_block(BlockSpec("conv", 8, resolution=8)), (1, 8, 8, 8),
                      tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_parity_diff_detects_a_shape_mismatch(tmp_path):
    path = export_cached(block_source(BlockSpec("conv", 8, resolution=8)), directory=tmp_path).path
    x = np.zeros((1, 8, 8, 8), np.float32)
    assert parity_diff(path, x, np.zeros((1, 8, 4, 4), np.float32)) == float("inf")


@pytest.mark.parametrize("variant", ["shufflev2", "mbv2"])
def test_the_shared_registry_writes_the_public_exporters_bytes(variant, tmp_path, monkeypatch):
    # export_module builds the torchlib registry once per process and calls the exporter's core
    # with it; with the registry unavailable it takes torch.onnx.export: both files are one file
    from mnv2prof.artifacts import export as export_mod

    assert export_mod._torchlib_registry() is not None  # torch 2.13 has the core we call
    spec = BlockSpec(variant, 16, resolution=14, exp_ratio=3)
    shared = tmp_path / "shared.onnx"
    export_module(build_block(spec), spec.input_shape, shared)
    monkeypatch.setattr(export_mod, "_torchlib_registry", lambda: None)
    public = tmp_path / "public.onnx"
    export_module(build_block(spec), spec.input_shape, public)
    assert shared.read_bytes() == public.read_bytes()


def test_a_failed_export_leaves_no_temporary_file(tmp_path, monkeypatch):
    import mnv2prof.artifacts.export as export

    def half_then_fail(module, example, target):
        target.write_bytes(b"half an export")
        raise RuntimeError("the exporter gave up")

    monkeypatch.setattr(export, "_dynamo_export", half_then_fail)
    with pytest.raises(ExportError, match="ONNX export failed for .*the exporter gave up"):
        export_cached(block_source(BlockSpec("conv", 8, resolution=8)), directory=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no .onnx.tmp, no record


def test_a_user_files_neighbours_are_part_of_its_exports_key(tmp_path):
    from mnv2prof.artifacts.sources import block_source
    from mnv2prof.models.variants import resolve_variant

    (tmp_path / "helpers.py").write_text("WIDTH = 1\n")
    (tmp_path / "blocks.py").write_text("from torch import nn\nfrom helpers import WIDTH\n\n"
                                        "def block(in_chs):\n"
                                        "    return nn.Conv2d(in_chs, in_chs * WIDTH, 1)\n")
    spec = resolve_variant(f"{tmp_path}/blocks.py:block").spec(in_chs=8, resolution=8)
    before = block_source(spec).key(0)
    (tmp_path / "helpers.py").write_text("WIDTH = 2\n")  # the file itself is unchanged
    assert block_source(spec).key(0) != before
    assert spec.digest() == resolve_variant(f"{tmp_path}/blocks.py:block").spec(
        in_chs=8, resolution=8).digest()  # the row's spec_hash stays the file's own
