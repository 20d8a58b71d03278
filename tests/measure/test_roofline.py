import json

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from mnv2prof.measure import machine, roofline
from mnv2prof.measure.machine import cpu_model
from mnv2prof.measure.roofline import MachineCeilings
from mnv2prof.report import notes
from mnv2prof.run.frame import add_roofline
from mnv2prof.run.machine_file import ceilings_path, save_machine
from tests.helpers import QUICK

SMALL = (*QUICK, "--variants", "conv,dwsep")


def _machine(threads=1, peak=100.0, dram=10.0, cache=50.0, cpu=None):
    return MachineCeilings(cpu or cpu_model(), threads, peak, dram, cache, ort.__version__,
                          "2026-01-01T00:00:00+00:00")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MNV2PROF_CACHE", str(tmp_path))
    return tmp_path


def test_bound_is_the_larger_of_compute_and_traffic_at_the_faster_bandwidth():
    m = _machine(peak=100.0, dram=10.0, cache=50.0)
    assert m.bandwidth_gbs == 50.0
    assert m.ridge_flop_per_byte == 2.0
    assert m.bound_ms(1e9, 1e6) == pytest.approx(10.0)  # 1 GFLOP at 100 GFLOP/s
    assert m.bound_ms(1e6, 1e9) == pytest.approx(20.0)  # 1 GB at 50 GB/s


def test_probe_models_compute_what_their_work_counts_assume():
    a = np.arange(6, dtype=np.float32)
    b = np.ones(6, dtype=np.float32)
    session = ort.InferenceSession(roofline.add_model(6, chain=3), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"a": a, "b": b})
    np.testing.assert_array_equal(out, a + 3)
    x = np.eye(4, dtype=np.float32) * 2
    session = ort.InferenceSession(roofline.matmul_model(4), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"a": x, "b": x})
    np.testing.assert_array_equal(out, x @ x)


def test_add_roofline_columns_and_notes():
    frame = pd.DataFrame({"variant": ["a", "b"], "flops": [2e9, 1e6], "bytes_moved": [1e6, 1e9],
                          "gmacs_per_s": [1.0, 1.0], "latency_median_ms": [40.0, 10.0]})
    assert add_roofline(frame, None) is frame
    out = add_roofline(frame, _machine())
    assert list(out.columns[3:6]) == ["gmacs_per_s", "roofline_bound_ms", "roofline_efficiency_x"]
    assert out["roofline_bound_ms"].tolist() == [20.0, 20.0]
    assert out["roofline_efficiency_x"].tolist() == [0.5, 2.0]
    lines = notes.roofline_notes(out, _machine(), 1)
    assert lines[0] == ("roofline bound = max(FLOPs / 100.0 GFLOP/s, bytes moved / 50.0 GB/s) "
                        "(calibrated 2026-01-01T00:00:00+00:00); efficiency = bound / latency "
                        "median.")
    assert lines[1].startswith("! efficiency above 1 for b (2.00): the bound is wrong")
    assert lines[1].endswith("or the calibration is stale: run mnv2prof calibrate --threads 1).")
    assert notes.roofline_notes(frame, None, 3) == [(
        "no roofline bound: this CPU has no calibration at 3 thread(s); run mnv2prof calibrate "
        "--threads 3.")]


def test_calibrate_command_prints_and_stores(cache, run_cli, monkeypatch):
    monkeypatch.setattr(machine, "cache_bytes", lambda level: 2**20)
    code, out, err = run_cli("calibrate", "--budget", "0.05")
    assert code == 0, err
    assert "peak compute:" in out and "GFLOP/s" in out and "GB/s" in out
    stored = json.loads(ceilings_path(cpu_model(), 1).read_text())
    assert stored["threads"] == 1 and stored["peak_gflops"] > 0 and stored["dram_gbs"] > 0
    assert f"{stored['peak_gflops']:,.1f} GFLOP/s" in out


def test_compare_without_calibration_says_so_once(cache, run_cli):
    code, out, err = run_cli("compare", *SMALL, "--baseline", "dwsep")
    assert code == 0, err
    words = " ".join(out.split())  # the note wraps to the terminal
    assert words.count("run mnv2prof calibrate --threads 1") == 1
    assert "bound (ms)" not in out


def test_compare_with_calibration_shows_bound_and_efficiency(cache, run_cli, tmp_path):
    save_machine(_machine(peak=1e4, dram=1e3, cache=1e3))
    csv = tmp_path / "rows.csv"
    code, out, err = run_cli("compare", *SMALL, "--baseline", "dwsep", "--csv", csv,
                             "--show", "roofline")
    assert code == 0, err
    assert "bound" in out and "efficiency" in out and "run mnv2prof calibrate" not in out
    frame = pd.read_csv(csv)
    bound = np.maximum(frame["flops"] / 1e4, frame["bytes_moved"] / 1e3) / 1e6
    np.testing.assert_allclose(frame["roofline_bound_ms"], bound, rtol=1e-6)
    # relative: efficiencies here are ~0.001, where an absolute tolerance cannot fail (or flakes)
    np.testing.assert_allclose(frame["roofline_efficiency_x"],
                               frame["roofline_bound_ms"] / frame["latency_median_ms"], rtol=1e-3)
    assert (frame["nodes"] >= 1).all()

    png = tmp_path / "roof.png"
    code, _, err = run_cli("plot", "--roofline", csv, "--out", png)
    assert code == 0, err
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 600 and height >= 400  # a whole figure, not an empty file


def test_plot_roofline_without_calibration_is_one_line_exit_2(cache, run_cli, tmp_path):
    csv = tmp_path / "rows.csv"
    assert run_cli("compare", *SMALL, "--baseline", "dwsep", "--csv", csv)[0] == 0
    code, _, err = run_cli("plot", "--roofline", csv, "--out", tmp_path / "r.png")
    assert code == 2
    assert "no machine calibration" in err and "run mnv2prof calibrate --threads 1" in err
    assert not (tmp_path / "r.png").exists()
