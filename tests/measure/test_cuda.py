"""--device cuda: what can be checked without a GPU runs everywhere; the GPU tests need one."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from mnv2prof.errors import UsageError
from mnv2prof.measure import cuda
from mnv2prof.measure.latency import Measurement, measure, measure_phases
from mnv2prof.measure.timing import TimingSpec
from mnv2prof.models.variants import BlockSpec
from mnv2prof.report.cuda_report import gpu_notes, gpu_table, measured_prefixes
from tests.helpers import QUICK

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
SMALL = (*QUICK, "--variants", "mbv2,dwsep,conv")


@pytest.fixture
def no_gpu(monkeypatch):
    """Make this process look GPU-less, also on a GPU machine."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return monkeypatch


# --- option validation and the no-GPU error path -------------------------------------------

def test_cpu_is_accepted_without_looking_for_a_gpu(no_gpu):
    def must_not_look():
        raise AssertionError("--device cpu must not probe CUDA")

    no_gpu.setattr(cuda, "unavailable_reason", must_not_look)
    assert cuda.check_device("cpu") is None


def test_unknown_device_is_a_usage_error():
    with pytest.raises(UsageError, match=r"--device must be one of cpu, cuda, got 'tpu'"):
        cuda.check_device("tpu")


@pytest.mark.parametrize(("built_with", "why"), [(None, "built without CUDA"),
                                                  ("12.4", "no GPU visible")])
def test_no_gpu_reason_names_torch_and_why(no_gpu, built_with, why):
    no_gpu.setattr(torch.version, "cuda", built_with)
    major_minor = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    expected = f"--device cuda: no CUDA device available (torch {major_minor} {why})"
    assert cuda.unavailable_reason() == expected
    with pytest.raises(UsageError) as raised:
        cuda.check_device("cuda")
    assert str(raised.value) == expected
    assert raised.value.exit_code == 2


@pytest.mark.parametrize("command", [
    ("compare", *SMALL),
    ("sweep", "compare"),
    ("network", "mobilenetv2", "--budget", "0.1"),
    ("layers", "mbv2", "-c", "8", "-r", "8"),
])
def test_device_cuda_without_gpu_exits_2_before_anything(no_gpu, run_cli, tmp_path, command):
    import mnv2prof.run.pipeline

    def must_not_run(*args, **kwargs):
        raise AssertionError("nothing may be exported or measured")

    no_gpu.setattr(mnv2prof.run.pipeline, "prepare", must_not_run)
    out = tmp_path / "rows.csv"
    code, stdout, stderr = run_cli(*command, "--device", "cuda",
                                   "--out" if command[0] == "sweep" else "--csv", out)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "--device cuda: no CUDA device available (torch " in lines[0]
    assert "Traceback" not in stdout + stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_device_is_validated_on_every_command(run_cli, tmp_path):
    code, _, stderr = run_cli("compare", *SMALL, "--device", "gpu")
    assert code == 2
    assert "--device must be one of cpu, cuda, got 'gpu'" in stderr


# --- runners that time themselves ------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        self.t += 1_000_000  # 1 ms per read
        return self.t


class FakeEventRunner:
    """Stands in for CudaEventRunner: returns its own measured time, in ms."""

    def __init__(self, times_ms):
        self.times = iter(times_ms)
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return next(self.times)


def test_self_timed_runner_samples_are_its_own_times_not_the_clock():
    # warm-ups of 100 ms each: bursts of one call; each round an untimed switch call (99 ms)
    spec = TimingSpec(budget_s=1.0, warmup=2, min_samples=5, max_samples=5)
    timed = [0.25, 0.5, 0.75, 1.0, 1.25]
    gpu = FakeEventRunner([100.0, 100.0] + [x for t in timed for x in (99.0, t)])
    result = measure({"gpu": gpu, "cpu": lambda: None}, spec, clock=FakeClock())
    assert result["gpu"].samples_ms == (0.25, 0.5, 0.75, 1.0, 1.25)
    assert result["gpu"].median_ms == 0.75
    assert gpu.calls == 12
    # the runner returning None is still timed by the clock: one tick (1 ms) per call
    assert set(result["cpu"].samples_ms) == {1.0}


def test_each_gpu_runtime_is_timed_in_its_own_phase():
    order = []

    def runner(name):
        def run():
            order.append(name)
            return 1.0 if name != "cpu" else None
        return run

    spec = TimingSpec(budget_s=1.0, warmup=0, min_samples=3, max_samples=3)
    phases = [{"cpu": runner("cpu")}, {"graph": runner("graph")}, {"eager": runner("eager")}]
    measure_phases(phases, spec, clock=FakeClock())
    # a switch call and one timed call per round, three rounds, one runtime after the other
    assert order == ["cpu"] * 6 + ["graph"] * 6 + ["eager"] * 6


# --- records, columns and the GPU table --------------------------------------------------------

def _record(**gpu):
    from mnv2prof.count.cost import CountedCost
    from mnv2prof.measure.env import Environment
    from mnv2prof.run.records import Record

    env = Environment("cpu", 2, "3.11", "linux", "2.x", "1.x", "1.x", "0.x", "2.x", "t")
    cost = CountedCost(params=10, macs=1000, elementwise_ops=0, peak_act_bytes=4096,
                       weight_bytes=40, bytes_moved=8192, unhandled_ops="")
    return Record(BlockSpec("mbv2", 8), cost, Measurement((1.0, 2.0, 3.0)), 1, env, **gpu)


CUDA_PREFIXES = ("cuda_eager", "cuda_graph", "cuda_ort")


def test_cpu_record_leaves_every_gpu_column_empty():
    row = _record().row()
    assert row["cuda_peak_bytes"] is None
    for prefix in CUDA_PREFIXES:
        assert row[f"{prefix}_median_ms"] is None
        assert row[f"{prefix}_ci_low_ms"] is None
        assert row[f"{prefix}_n"] == 0
    assert (row["env_gpu_name"], row["env_cuda"], row["env_gpu_driver"]) == ("", "", "")


def test_gpu_record_columns_summarise_like_the_cpu_ones():
    eager = Measurement(tuple(float(x) for x in range(1, 12)))  # median 6
    row = _record(cuda_eager=eager, cuda_graph=Measurement((0.5,) * 11),
                  cuda_peak_bytes=123_456).row()
    assert row["cuda_eager_median_ms"] == 6.0
    assert row["cuda_eager_n"] == 11
    assert row["cuda_eager_ci_low_ms"] <= 6.0 <= row["cuda_eager_ci_high_ms"]
    assert row["cuda_graph_median_ms"] == 0.5
    assert row["cuda_graph_ci_rel"] == 0.0
    assert row["cuda_ort_n"] == 0
    assert row["cuda_peak_bytes"] == 123_456
    # the CPU eager columns keep their names and meaning
    assert row["eager_n"] == 0 and row["eager_median_ms"] is None


def _gpu_frame():
    from mnv2prof.count.cost import CountedCost
    from mnv2prof.measure.env import Environment
    from mnv2prof.run.records import Record

    env = Environment("cpu", 2, "3.11", "linux", "2.x", "1.x", "1.x", "0.x", "2.x", "t",
                      gpu_name="Test GPU", cuda="12.4", gpu_driver="550.1")
    rows = []
    for name, macs, eager_ms, graph_ms in (("conv", 9000, 0.2, 0.11),
                                           ("dwsep", 1300, 0.3, 0.147),
                                           ("mbv2", 4000, 0.4, 0.2)):
        cost = CountedCost(params=1, macs=macs, elementwise_ops=0, peak_act_bytes=2048,
                           weight_bytes=4, bytes_moved=100, unhandled_ops="")
        rows.append(Record(BlockSpec(name), cost, Measurement((1.0,) * 11), 1, env,
                           cuda_eager=Measurement((eager_ms,) * 11),
                           cuda_graph=Measurement((graph_ms,) * 11),
                           cuda_peak_bytes=4096).row())
    return pd.DataFrame(rows)


def test_gpu_table_shows_measured_timings_only_and_ratios():
    frame = _gpu_frame()
    assert [p for p, _ in measured_prefixes(frame)] == ["cuda_eager", "cuda_graph"]
    table = gpu_table(frame, "t", "conv")
    headers = [c.header for c in table.columns]
    assert "GPU peak\nmeasured (KiB)" in headers
    assert "eager\nmedian (ms)" in headers and "CUDA graph\nmedian (ms)" in headers
    assert not any(h.startswith("onnxruntime") for h in headers)
    assert "CUDA graph / conv (x)" in headers
    cells = {c.header: list(c._cells) for c in table.columns}
    assert cells["GPU peak\nmeasured (KiB)"] == ["4.0"] * 3
    assert cells["CUDA graph\nmedian (ms)"] == ["0.1100", "0.1470", "0.2000"]
    assert cells["CUDA graph / conv (x)"] == ["1.00", "1.34", "1.82"]


def test_gpu_notes_name_the_device_the_disagreement_and_what_was_left_out():
    left_out = ("onnxruntime 1.x has no CUDAExecutionProvider (install onnxruntime-gpu): ...",)
    notes = gpu_notes(_gpu_frame(), left_out)
    assert notes[0].startswith("GPU: Test GPU, CUDA 12.4, driver 550.1")
    assert any("conv has 6.9x the MACs of dwsep yet takes 0.75x its latency." == n for n in notes)
    overhead = [n for n in notes if n.startswith("launch overhead")]
    assert overhead == ["launch overhead (eager minus CUDA graph, median over the rows): "
                        "0.1530 ms."]
    assert notes[-1] == left_out[0]


def test_module_line_gives_both_medians_the_overhead_and_the_peak():
    from mnv2prof.report.cuda_report import module_line

    line = module_line("mobilenetv2_w1_r224", Measurement((2.0,) * 11), Measurement((0.5,) * 11),
                       3 * 1024 * 1024, "Test GPU")
    assert line == (
        "GPU (Test GPU), mobilenetv2_w1_r224 as a whole: eager median 2.0000 ms (+-0.0%), "
        "CUDA graph median 0.5000 ms (+-0.0%), launch overhead 1.5000 ms; measured GPU peak "
        "3,072.0 KiB (input included, weights not)."
    )


def test_network_device_cuda_needs_a_budget(run_cli, monkeypatch):
    monkeypatch.setattr(cuda, "unavailable_reason", lambda: None)  # as if a GPU were there
    code, _, stderr = run_cli("network", "mobilenetv2", "--device", "cuda", "--budget", "0")
    assert code == 2
    assert "--device cuda times the network: give --budget > 0" in stderr


def test_onnxruntime_without_cuda_provider_is_a_note_and_never_a_silent_cpu_fallback():
    import onnxruntime

    from mnv2prof.artifacts.identity import identity_model
    from mnv2prof.measure.latency import OrtRunner, ProviderError

    if cuda.ORT_CUDA_PROVIDER in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    assert cuda.ort_cuda_gap() == cuda.OrtCudaGap(cuda.OrtCudaReason.NOT_LISTED,
                                                  onnxruntime.__version__)
    with pytest.raises(ProviderError, match="could not load CUDAExecutionProvider"):
        OrtRunner(identity_model(), device="cuda")


def test_a_listed_cuda_provider_that_does_not_load_is_told_apart(monkeypatch):
    import onnxruntime

    import mnv2prof.measure.latency

    def fails_to_load(*args, **kwargs):
        raise mnv2prof.measure.latency.ProviderError("could not load CUDAExecutionProvider")

    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: [cuda.ORT_CUDA_PROVIDER, "CPUExecutionProvider"])
    monkeypatch.setattr(mnv2prof.measure.latency, "OrtRunner", fails_to_load)
    assert cuda.ort_cuda_gap() == cuda.OrtCudaGap(cuda.OrtCudaReason.NOT_LOADED,
                                                  onnxruntime.__version__)
    monkeypatch.setattr(mnv2prof.measure.latency, "OrtRunner", lambda *a, **k: None)
    assert cuda.ort_cuda_gap() is None  # listed and loaded: the column is measured


def test_the_gpu_phases_carry_the_fact_not_a_sentence():
    from mnv2prof.run.pipeline import gpu_phases

    phases, gap = gpu_phases([])  # no module: no runner is built, so no GPU is needed
    assert phases == [] and gap == cuda.ort_cuda_gap()


# --- on a GPU ----------------------------------------------------------------------------------

@needs_gpu
def test_event_and_graph_runners_time_the_same_module():
    from mnv2prof.models.blocks import build_block
    from mnv2prof.models.variants import BlockSpec

    spec = BlockSpec("mbv2", in_chs=8, resolution=8)
    eager = cuda.CudaEventRunner(build_block(spec), spec.input_shape)
    graph = cuda.CudaGraphRunner(build_block(spec), spec.input_shape)
    times = [eager() for _ in range(5)] + [graph() for _ in range(5)]
    assert all(isinstance(t, float) and t > 0 for t in times)
    with torch.inference_mode():
        expected = eager.module(eager.input)
    torch.testing.assert_close(graph.output, expected)


@needs_gpu
def test_peak_memory_counts_at_least_the_input_and_the_output():
    from mnv2prof.models.blocks import build_block
    from mnv2prof.models.variants import BlockSpec

    spec = BlockSpec("mbv2", in_chs=8, resolution=8)
    tensor_bytes = math.prod(spec.input_shape) * 4
    assert cuda.measure_peak_memory(build_block(spec), spec.input_shape) >= 2 * tensor_bytes


@needs_gpu
def test_compare_device_cuda_fills_the_gpu_columns(run_cli, tmp_path):
    out = tmp_path / "rows.csv"
    code, stdout, stderr = run_cli("compare", *SMALL, "--device", "cuda", "--csv", out)
    assert code == 0, stderr
    assert "CUDA graph" in stdout
    frame = pd.read_csv(out)
    assert (frame["cuda_eager_median_ms"] > 0).all()
    assert (frame["cuda_graph_median_ms"] > 0).all()
    assert (frame["cuda_peak_bytes"] > 0).all()
    assert frame["env_gpu_name"].notna().all() and (frame["env_gpu_name"] != "").all()
    assert (frame["latency_median_ms"] > 0).all()  # the CPU columns are still measured
    # onnxruntime's GPU column is filled exactly when it can be (else a note says why)
    assert (frame["cuda_ort_n"] > 0).all() == (cuda.ort_cuda_gap() is None)


@needs_gpu
def test_network_device_cuda_adds_the_gpu_line(run_cli):
    code, stdout, stderr = run_cli("network", "mobilenetv2", "--resolution", "32", "--budget",
                                   "0.2", "--device", "cuda")
    assert code == 0, stderr
    assert "as a whole: eager median" in stdout


@needs_gpu
def test_layers_on_the_gpu_time_every_layers_kernels():
    from mnv2prof.measure.eager_layers import time_eager_layers
    from mnv2prof.models.variants import BlockSpec
    from mnv2prof.run.pipeline import prepare

    spec = BlockSpec("mbv2", in_chs=32, resolution=56, exp_ratio=6)
    prepared = prepare(spec)
    rows = time_eager_layers(prepared.module, prepared.onnx_path, spec.input_shape, "cuda",
                                runs=10, warmup=3)
    assert [r.layer for r in rows] == ["conv_pw", "conv_dw", "conv_pwl", "add"]
    assert sum(r.macs for r in rows) == prepared.cost.macs
    for row in rows:  # conv, BN and ReLU6 are at least one kernel each; the add one
        assert row.kernels >= (1 if row.layer == "add" else 2), row
        assert row.kernel_ms > 0 and row.span_ms > 0, row


@needs_gpu
def test_layers_command_device_cuda(run_cli, tmp_path):
    out = tmp_path / "layers.csv"
    code, stdout, stderr = run_cli("layers", "mbv2", "--runs", "10", "--device", "cuda",
                                   "--csv", out)
    assert code == 0, stderr
    assert "layers run eagerly by torch on" in stdout
    frame = pd.read_csv(out)
    assert (frame["kernel_ms"] > 0).all() and (frame["kernels"] >= 1).all()
