import numpy as np
import onnx
import pytest

from mnv2prof.errors import ExportError
from mnv2prof.onnx.export import PARITY_ATOL, export_module, export_spec, parity_diff
from mnv2prof.models.variants import VARIANTS, BlockSpec


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_exports_checked_and_equal(variant, tmp_path):
    spec = BlockSpec(variant, 16, resolution=14, exp_ratio=3)
    first = export_spec(spec, directory=tmp_path)
    assert not first.cached
    assert first.max_abs_diff is not None and first.max_abs_diff <= PARITY_ATOL
    model = onnx.load(str(first.path))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    second = export_spec(spec, directory=tmp_path)
    assert second.cached and second.path == first.path
    assert list(tmp_path.glob("*.tmp")) == []


def test_cache_key_changes_with_the_spec(tmp_path):
    a = export_spec(BlockSpec("conv", 8, resolution=8), directory=tmp_path)
    b = export_spec(BlockSpec("conv", 8, resolution=8, kernel_size=5), directory=tmp_path)
    assert a.path != b.path


def test_parity_failure_is_an_export_error(tmp_path, monkeypatch):
    import mnv2prof.onnx.export as export

    monkeypatch.setattr(export, "parity_diff", lambda *a: 1.0)
    from mnv2prof.models.blocks import build_block

    with pytest.raises(ExportError, match="differs from torch"):
        export_module(build_block(BlockSpec("conv", 8, resolution=8)), (1, 8, 8, 8),
                      tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_parity_diff_detects_a_shape_mismatch(tmp_path):
    path = export_spec(BlockSpec("conv", 8, resolution=8), directory=tmp_path).path
    x = np.zeros((1, 8, 8, 8), np.float32)
    assert parity_diff(path, x, np.zeros((1, 8, 4, 4), np.float32)) == float("inf")
