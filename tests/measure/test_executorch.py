import gc
import math

import pytest
import torch

from mnv2prof.artifacts import lowering
from mnv2prof.artifacts.export import PARITY_ATOL
from mnv2prof.artifacts.lowering import INSTALL_HINT, available, lower_cached
from mnv2prof.artifacts.sources import block_source
from mnv2prof.errors import UsageError
from mnv2prof.measure import executorch
from mnv2prof.measure.executorch import EtRunner
from mnv2prof.models.variants import BlockSpec

SPEC = BlockSpec("mbv2", 8, resolution=8, exp_ratio=6)


def test_a_missing_executorch_is_one_usage_line(monkeypatch, tmp_path):
    monkeypatch.setattr(lowering, "available", lambda: False)
    monkeypatch.setattr(lowering, "_RUNTIME", None)
    source = block_source(SPEC)
    with pytest.raises(UsageError) as err:
        lower_cached(
            source.build(0), SPEC.input_shape, source.name, source.identity, directory=tmp_path
        )
    assert str(err.value) == INSTALL_HINT
    assert str(err.value) == "--runtime executorch needs ExecuTorch: pip install 'mnv2prof[mobile]'"
    with pytest.raises(UsageError, match="needs ExecuTorch"):
        EtRunner(tmp_path / "none.pte")
    assert list(tmp_path.iterdir()) == []


def test_available_says_whether_it_is_installed():
    try:
        import executorch as _  # noqa: F401
    except ImportError:
        assert available() is False
    else:
        assert isinstance(available(), bool)


@pytest.fixture(scope="module")
def lowered(tmp_path_factory):
    pytest.importorskip("executorch")
    folder = tmp_path_factory.mktemp("pte")
    source = block_source(SPEC)
    module = source.build(0)
    fp32 = lower_cached(
        module, SPEC.input_shape, source.name, source.identity, "fp32", directory=folder
    )
    int8 = lower_cached(
        module, SPEC.input_shape, source.name, source.identity, "int8", directory=folder
    )
    return source, module, folder, fp32, int8


def test_fp32_lowering_equals_torch_and_is_cached(lowered):
    source, module, folder, fp32, _ = lowered
    assert not fp32.cached and fp32.path.suffix == ".pte"
    assert fp32.max_abs_diff is not None and fp32.max_abs_diff <= PARITY_ATOL
    assert fp32.accuracy is None
    again = lower_cached(
        module, SPEC.input_shape, source.name, source.identity, "fp32", directory=folder
    )
    assert again.cached and again.path == fp32.path and again.max_abs_diff is None
    assert list(folder.glob("*.tmp")) == []


def test_int8_lowering_reports_its_accuracy(lowered):
    source, module, folder, fp32, int8 = lowered
    assert not int8.cached and int8.path != fp32.path
    assert int8.path.stat().st_size > 0
    accuracy = int8.accuracy
    assert accuracy is not None
    assert math.isfinite(accuracy.max_abs_err) and accuracy.max_abs_err > 0
    assert math.isfinite(accuracy.sqnr_db) and accuracy.sqnr_db > 20
    again = lower_cached(
        module, SPEC.input_shape, source.name, source.identity, "int8", directory=folder
    )
    assert again.cached and again.accuracy == accuracy  # recomputed from the cached file


def test_the_runner_runs_the_program(lowered):
    _, module, _, fp32, int8 = lowered
    runner = EtRunner(fp32.path, threads=1, input_shape=SPEC.input_shape, seed=3)
    assert runner() is None  # host-timed, like OrtRunner
    (out,) = runner.outputs()
    with torch.inference_mode():
        expected = module(runner.input)
    assert float((out - expected).abs().max()) <= PARITY_ATOL
    runner_int8 = EtRunner(int8.path, threads=1, input_shape=SPEC.input_shape)
    runner_int8()
    assert runner_int8.outputs()[0].shape == expected.shape


def test_one_thread_count_per_process_while_a_runner_is_alive(lowered):
    _, _, _, fp32, _ = lowered
    gc.collect()
    first = EtRunner(fp32.path, threads=1)
    assert executorch.THREADPOOL.threads() == 1
    with pytest.raises(UsageError, match=r"one thread count per process"):
        EtRunner(fp32.path, threads=2)
    same = EtRunner(fp32.path, threads=1)  # the same count shares the pool
    same()
    del first, same
    gc.collect()
    second = EtRunner(fp32.path, threads=2)  # no runner left on the old pool: it may resize
    second()
    assert executorch.THREADPOOL.threads() == 2
    del second
    gc.collect()


def test_bad_requests_are_usage_errors(lowered, tmp_path):
    source, module, _, fp32, _ = lowered
    with pytest.raises(UsageError, match="takes an input of shape 1x8x8x8, not 1x8x16x16"):
        EtRunner(fp32.path, input_shape=(1, 8, 16, 16))
    with pytest.raises(UsageError, match="unknown precision 'int4'"):
        lower_cached(
            module, SPEC.input_shape, source.name, source.identity, "int4", directory=tmp_path
        )
    with pytest.raises(UsageError, match="no such ExecuTorch program"):
        EtRunner(tmp_path / "missing.pte")
    broken = tmp_path / "broken.pte"
    broken.write_bytes(b"not a program")
    with pytest.raises(UsageError, match="ExecuTorch cannot load broken.pte"):
        EtRunner(broken)
