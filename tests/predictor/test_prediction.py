"""Predictions: the sum of the kernels' predictions plus the floor, times the calibration scale
(closed forms on a predictor with constant regressors); the foreign predictor refused."""

import json

import numpy as np
import pytest
from sklearn.dummy import DummyRegressor

from mnv2prof.errors import UsageError
from mnv2prof.predictor import folder as files
from mnv2prof.predictor.detect import Kernel
from mnv2prof.predictor.folder import Predictor, load_predictor
from mnv2prof.predictor.kinds import FEATURES
from mnv2prof.predictor.prediction import predict_kernels, predicted_latency, prediction_frame
from mnv2prof.predictor.subject import predict_subject


def _constant(ms: float) -> DummyRegressor:
    return DummyRegressor(strategy="constant", constant=ms).fit(np.zeros((1, 1)), [ms])


def _kernel(kind: str | None, macs: int = 0, name: str = "k") -> Kernel:
    features = {f: 1.0 for f in FEATURES[kind]} if kind else {}
    return Kernel(name, kind or "Erf", kind, features, macs, name, True)


def _predictor(scale: float = 1.0, interval=None) -> Predictor:
    meta = {"floor_ms": 0.004, "fingerprint": {"threads": 1},
            "flops_baseline": {"fit": {"ms_per_mac": 1e-6, "ms_per_kernel": 0.01}},
            "kinds": {"conv": {"held_out": {"rmspe": 0.1}}},
            "calibration": {"scale": scale, **({"interval": interval} if interval else {})}}
    return Predictor(None, meta, {"conv": _constant(0.5), "add": _constant(0.02)})


def test_dispatch_is_added_once_per_kernel_after_the_first():
    predictor = _predictor()
    predictor.meta["calibration"]["dispatch_ms"] = 0.001
    p = predict_kernels(predictor, [_kernel("conv", 0, n) for n in "abcd"])
    assert p.total_ms == pytest.approx(4 * 0.5 + 0.004 + 3 * 0.001)


def test_total_is_scaled_sum_plus_floor():
    kernels = [_kernel("conv", 1000, "a"), _kernel("conv", 500, "b"), _kernel("add", 0, "c")]
    p = predict_kernels(_predictor(scale=1.1, interval=[0.9, 1.2]), kernels)
    assert [r.ms for r in p.kernels] == pytest.approx([0.55, 0.55, 0.022])
    assert p.total_ms == pytest.approx(1.122 + 0.004)
    assert (p.low_ms, p.high_ms) == pytest.approx((0.9 * 1.126, 1.2 * 1.126))
    assert p.flops_ms == pytest.approx(1e-6 * 1500 + 0.01 * 3 + 0.004) and p.macs == 1500


def test_unpredicted_kernels_are_listed_and_left_out():
    kernels = [_kernel("conv"), _kernel("dwconv"), _kernel(None)]
    p = predict_kernels(_predictor(), kernels)
    assert [r.why for r in p.unpredicted] == ["no model for dwconv", "unknown kind"]
    assert p.total_ms == pytest.approx(0.5 + 0.004)
    # no calibration interval: the kernels' held-out RMSPE, weighted by their times
    assert (p.low_ms, p.high_ms) == pytest.approx((0.504 - 0.05, 0.504 + 0.05))


def test_frame_has_a_row_per_kernel_and_the_network():
    p = predict_kernels(_predictor(), [_kernel("conv", 7), _kernel(None)])
    frame = prediction_frame(p, measured_ms=0.42)
    assert list(frame["kernel"]) == ["k", "k", "(network)"]
    network = frame.iloc[-1]
    assert network["predicted_ms"] == pytest.approx(0.504)
    assert network["error_rel"] == pytest.approx(0.504 / 0.42 - 1, abs=1e-6)
    assert frame.iloc[1]["not_predicted"] == "unknown kind"


def test_tiny_predictor_predicts_a_block(tiny_build):
    _, out = tiny_build
    predictor = load_predictor(out)
    from mnv2prof.run.plan import block_plan

    plan = block_plan(["mbv2"], channels=16, resolution=16, expansion=3).check()
    result = predict_subject(plan.subjects[0], predictor)
    p = result.prediction
    predicted = [r.ms for r in p.kernels if r.ms is not None]
    dispatch = predictor.dispatch_ms * (len(p.kernels) - 1)
    assert p.total_ms == pytest.approx(sum(predicted) + predictor.floor_ms + dispatch)
    assert p.low_ms <= p.total_ms <= p.high_ms
    assert predicted_latency(result.onnx_path, predictor) == pytest.approx(p.total_ms)


def test_foreign_predictor_is_refused_unless_forced(tiny_build, tmp_path):
    import shutil

    _, out = tiny_build
    foreign = tmp_path / "foreign"
    shutil.copytree(out, foreign)
    meta = json.loads((foreign / files.PREDICTOR_FILE).read_text())
    meta["fingerprint"]["cpu_model"] = "Some Other CPU"
    (foreign / files.PREDICTOR_FILE).write_text(json.dumps(meta))
    with pytest.raises(UsageError) as caught:
        load_predictor(foreign)
    assert "built in another environment (cpu_model: Some Other CPU there" in str(caught.value)
    assert "pass --force" in str(caught.value)
    assert load_predictor(foreign, force=True).meta["fingerprint"]["cpu_model"] == "Some Other CPU"


@pytest.mark.parametrize("damage, fragment", [
    (lambda d: (d / files.MODELS_FILE).write_bytes(b"not a pickle"), "cannot be loaded"),
    (lambda d: (d / files.FORESTS_FILE).write_bytes(b"PK\x03\x04 cut"), "cannot be loaded"),
    (lambda d: (d / files.FORESTS_FILE).unlink(), "cannot be read"),
    (lambda d: (d / files.PREDICTOR_FILE).write_text("{"), "not a predictor file"),
    (lambda d: (d / files.PREDICTOR_FILE).unlink(), "is an unfinished build"),
])
def test_damaged_predictor_is_one_line(tiny_build, tmp_path, damage, fragment):
    import shutil

    _, out = tiny_build
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    damage(copy)
    with pytest.raises(UsageError, match=fragment):
        load_predictor(copy)


def test_missing_predictor(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_predictor(tmp_path / "none")


def test_a_predictor_reads_its_forests_without_unpickling(tiny_build):
    """Loaded from forests.npz: every forest kind predicts as its unpickled model does, and
    models.joblib is unpickled only if some kind is not a forest (boosting)."""
    from mnv2prof.predictor.forest import Forests, ensemble_of
    from mnv2prof.predictor.space import LoneBlock, Block
    from mnv2prof.predictor.graphs import lone_block_model
    from mnv2prof.predictor.detect import detect
    from mnv2prof.predictor.prediction import kernel_times

    _, out = tiny_build
    predictor = load_predictor(out)
    assert isinstance(predictor.models, files.SavedModels) and predictor.flat is not None
    kernels = detect(lone_block_model(LoneBlock(16, 32, Block("ir", 16, 1, 3, 3.0))
                                      ).SerializeToString()).kernels
    times = kernel_times(predictor, kernels)
    unpickled = predictor.models._models
    models = files._unpickle(out / files.MODELS_FILE, None)
    boosted = {k for k, m in models.items() if ensemble_of(m) is None}
    assert (unpickled is not None) == bool(boosted & {k.kind for k in kernels})
    expected = kernel_times(files.Predictor(out, predictor.meta, models), kernels)
    assert [t is None for t in times] == [e is None for e in expected]  # kinds not sampled
    assert [t for t in times if t is not None] == pytest.approx(
        [e for e in expected if e is not None], rel=1e-12)
    assert any(t is not None for t in times)
    assert isinstance(predictor.forests, Forests)


def test_a_folder_from_before_forests_npz_still_loads(tiny_build, tmp_path):
    import json
    import shutil

    _, out = tiny_build
    copy = tmp_path / "old"
    shutil.copytree(out, copy)
    (copy / files.FORESTS_FILE).unlink()
    meta = json.loads((copy / files.PREDICTOR_FILE).read_text())
    del meta["files"]
    (copy / files.PREDICTOR_FILE).write_text(json.dumps(meta))
    predictor = load_predictor(copy)
    assert isinstance(predictor.models, dict) and predictor.flat is None
    assert set(predictor.models) == set(meta["kinds"])
