"""Bad and extreme input, one test per class of issue 15: every case gets one `mnv2prof: error:`
line and exit 2 (130 for a kill), no traceback, nothing measured, and no file written or
changed. `BAD` lists the cases run through every command that takes them."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.helpers import QUICK, refused, results_csv

SMALL = QUICK


# --- 2. output paths: checked before any work, for every command that writes --------------

# (command and its other arguments, the output flag)
WRITERS = [
    (("compare", *SMALL, "--variants", "conv"), "--csv"),
    (("compare", *SMALL, "--variants", "conv"), "--json"),
    (("baseline", *SMALL, "--variants", "conv"), "--out"),
    (("layers", "conv", "-c", "8", "-r", "8"), "--csv"),
    (("network", "mobilenetv1", "--resolution", "32", "--budget", "0"), "--csv"),
    (("memory-table", "--resolution", "32"), "--csv"),
    (("sweep", "compare"), "--out"),
]


@pytest.mark.parametrize("args, flag", WRITERS, ids=lambda v: v if isinstance(v, str) else v[0])
@pytest.mark.parametrize("target", ["folder", "empty", "missing-folder"])
def test_an_output_path_that_cannot_be_written_is_refused_first(
    run_cli, tmp_path, nothing_runs, monkeypatch, args, flag, target
):
    from mnv2prof.run import network

    monkeypatch.setattr(network, "measure_network", lambda *a, **k: 1 / 0)
    path = {"folder": tmp_path, "empty": "", "missing-folder": tmp_path / "no" / "x.csv"}[target]
    expected = {"folder": "is a folder", "empty": "empty", "missing-folder": "does not exist"}
    refused(run_cli(*args, flag, path), expected[target])


@pytest.mark.parametrize("args", [
    ("report", "RESULTS", "--out"), ("plot", "RESULTS", "--out"),
])
def test_report_and_plot_refuse_an_output_folder(run_cli, tmp_path, args):
    results = results_csv(tmp_path)
    argv = [results if a == "RESULTS" else a for a in args]
    refused(run_cli(*argv, tmp_path), "is a folder")
    refused(run_cli(*argv, ""), "empty string")


def test_export_refuses_an_empty_out_and_a_file(run_cli, tmp_path, nothing_runs):
    refused(run_cli("export", "--out", "", "--variants", "conv"), "needs a folder name")
    (tmp_path / "f").write_text("x")
    refused(run_cli("export", "--out", tmp_path / "f", "--variants", "conv"), "not a folder")
    assert list(Path.cwd().glob("conv_*.onnx")) == []


# --- 3. all outputs of a run, or none ------------------------------------------------------


def test_two_outputs_one_bad_leaves_neither(run_cli, tmp_path, nothing_runs):
    ok = tmp_path / "ok.csv"
    refused(run_cli("compare", *SMALL, "--csv", ok, "--json", tmp_path), "--json", "is a folder")
    assert not ok.exists()
    refused(run_cli("compare", *SMALL, "--csv", ok, "--json", ok), "name the same file")
    assert not ok.exists()


def test_gate_with_one_bad_output_measures_nothing_and_writes_nothing(run_cli, tmp_path,
                                                                     nothing_runs):
    md = tmp_path / "ok.md"
    refused(run_cli("gate", *SMALL, "--baseline", tmp_path / "b.csv",
                    "--markdown-summary", md, "--junit", tmp_path), "--junit", "is a folder")
    assert not md.exists()


def test_write_all_stages_everything_before_renaming_anything(tmp_path, monkeypatch):
    from mnv2prof.errors import WriteError
    from mnv2prof.files import atomic

    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("old")
    real = Path.write_bytes

    def full_disk(self, data, *args, **kwargs):
        if ".b.csv." in self.name:
            raise OSError(28, "No space left on device")
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(WriteError, match=f"cannot write {second}: No space left on device"):
        atomic.write_all([(first, "new"), (second, "new")])
    assert first.read_text() == "old" and not second.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]  # no temporary file left


def test_outputs_get_the_users_umask(tmp_path):
    from mnv2prof.files.atomic import write_all

    previous = os.umask(0o022)
    try:
        write_all([(tmp_path / "r.csv", "a\n")])
    finally:
        os.umask(previous)
    assert (tmp_path / "r.csv").stat().st_mode & 0o777 == 0o644  # not the temp file's 0600


# --- 4. corrupt inputs read as data ---------------------------------------------------------


def _corrupt_results(tmp_path, kind):
    path = results_csv(tmp_path)
    if kind == "text in latency":
        frame = pd.read_csv(path)
        frame["latency_median_ms"] = frame["latency_median_ms"].astype(object)
        frame.loc[2, "latency_median_ms"] = "fast"
        frame.to_csv(path, index=False)
    elif kind == "cut mid-row":
        text = path.read_text()
        path.write_text(text[: text.rindex(",", 0, len(text) - 20)])
    elif kind == "empty macs":
        frame = pd.read_csv(path)
        frame["macs"] = frame["macs"].astype(object)
        frame.loc[1, "macs"] = ""
        frame.to_csv(path, index=False)
    elif kind == "negative macs":
        frame = pd.read_csv(path)
        frame.loc[1, "macs"] = -5
        frame.to_csv(path, index=False)
    elif kind == "binary":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    return path


CORRUPT = {
    "text in latency": "row 3, column latency_median_ms: 'fast' is not a positive number",
    "cut mid-row": "row 4:",
    "empty macs": "row 2, column macs: '' is not a whole number >= 0",
    "negative macs": "row 2, column macs: '-5' is not a whole number >= 0",
    "binary": "is not UTF-8 text",
}


@pytest.mark.parametrize("command", ["report", "plot", "explain"])
@pytest.mark.parametrize("kind", list(CORRUPT))
def test_a_corrupt_results_file_is_one_line(run_cli, tmp_path, command, kind):
    path = _corrupt_results(tmp_path, kind)
    before = path.read_bytes()
    extra = ("--out", tmp_path / "fig.png") if command == "plot" else ()
    refused(run_cli(command, path, *extra), CORRUPT[kind])
    assert path.read_bytes() == before and not (tmp_path / "fig.png").exists()


@pytest.mark.parametrize("command", ["report", "plot", "explain", "gate", "profile", "sweep"])
def test_a_folder_where_a_file_belongs_is_said_to_be_one(run_cli, tmp_path, command):
    args = {
        "report": ("report", tmp_path), "plot": ("plot", tmp_path, "--out", tmp_path / "f.png"),
        "explain": ("explain", tmp_path), "gate": ("gate", *SMALL, "--baseline", tmp_path),
        "profile": ("profile", tmp_path), "sweep": ("sweep", tmp_path / "p.toml", "--out",
                                                     tmp_path / "o.csv"),
    }[command]
    if command == "sweep":
        (tmp_path / "p.toml").mkdir()
    line = refused(run_cli(*args))
    assert "folder" in line or "directory" in line, line
    assert "does not exist" not in line


@pytest.mark.parametrize("content", [b"\x00\x01\xff\xfe binary", b"\xff\xfe\x00n\x00a"])
def test_a_binary_profile_is_one_line(run_cli, tmp_path, content):
    path = tmp_path / "p.toml"
    path.write_bytes(content)
    refused(run_cli("sweep", path, "--out", tmp_path / "o.csv"), "is not UTF-8 text")
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("field, value", [("peak_gflops", "fast"), ("dram_gbs", -1.0),
                                          ("cache_gbs", None)])
def test_a_machine_file_with_a_bad_number_is_one_line(run_cli, tmp_path, monkeypatch,
                                                      field, value):
    from mnv2prof.measure import roofline
    from mnv2prof.measure.machine import cpu_model
    from mnv2prof.run.machine_file import save_machine

    monkeypatch.setenv("MNV2PROF_CACHE", str(tmp_path))
    machine = roofline.MachineCeilings(cpu_model(), 1, 100.0, 10.0, 50.0, "1", "t")
    path = save_machine(machine)
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    refused(run_cli("plot", "--roofline", results_csv(tmp_path, env_cpu_model=[cpu_model()] * 4,
                                                      flops=[2] * 4, bytes_moved=[1] * 4),
                    "--out", tmp_path / "r.png"), field, "calibrate")


def test_a_baseline_cut_mid_row_is_named_not_read_as_another_environment(run_cli, tmp_path):
    from tests.helpers import ENV, frame, tight

    path = tmp_path / "b.csv"
    text = frame({"conv": tight(1.0), "mbv2": tight(2.0)}, env=ENV).to_csv(index=False)
    path.write_text(text[: len(text) - 40])
    before = path.read_bytes()
    for extra in ((), ("--allow-env-mismatch",)):
        line = refused(run_cli("gate", *SMALL, "--variants", "conv,mbv2", "--baseline", path,
                               *extra), "row 2:", "cut off")
        assert "environment" not in line
    assert path.read_bytes() == before


# --- 5. sizes nobody can run -----------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ("--channels", "99999999999999999999998"), ("--channels", "999999998"),
    ("--resolution", "100000"),
])
@pytest.mark.parametrize("command", ["compare", "layers", "export", "baseline"])
def test_a_block_larger_than_memory_is_refused_naming_both_figures(run_cli, tmp_path,
                                                                   nothing_runs, args, command):
    argv = {
        "compare": ("compare", "--variants", "conv"), "layers": ("layers", "conv"),
        "export": ("export", "--variants", "conv", "--out", tmp_path / "x"),
        "baseline": ("baseline", "--variants", "conv", "--out", tmp_path / "b.csv"),
    }[command]
    line = refused(run_cli(*argv, *args), "needs about", "is available", "--force")
    assert "activations" in line and "weights" in line


def test_a_sweep_larger_than_memory_is_refused_before_its_file(run_cli, tmp_path, nothing_runs):
    path = tmp_path / "big.toml"
    path.write_text('name = "big"\ndescription = "too big"\nvariants = ["conv"]\n'
                    "[base]\nin_chs = 999999998\n")
    refused(run_cli("sweep", path, "--out", tmp_path / "o.csv"), "--force-size")
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("command", ["network", "memory-table"])
def test_a_network_larger_than_memory_is_refused(run_cli, command, nothing_runs):
    arch = ("mobilenetv2",) if command == "network" else ()
    # the largest spec the bounds allow (width 10, 8192 pixels a side): 130.6 GB of activations
    refused(run_cli(command, *arch, "--width", "10", "--resolution", "8192"),
            "needs about 130.6 GB", "activations 129.7 GB")


def test_a_width_past_its_bound_is_refused_before_sizing(run_cli, nothing_runs):
    refused(run_cli("network", "mobilenetv2", "--width", "1000"),
            "width must be between 0.05 and 10", "got 1000")


def test_a_foreign_model_whose_constant_is_larger_than_memory_is_refused(run_cli, tmp_path):
    # ConstantOfShape asking for 1e11 floats (400 GB) beside a tiny input (the model
    # asked for 14.4 GB, which a 24 GB machine with nothing else running can hold)
    shape = numpy_helper.from_array(np.array([100_000_000_000], dtype=np.int64), "shape")
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"]),
             helper.make_node("ReduceSum", ["big"], ["s"], keepdims=1),
             helper.make_node("Add", ["x", "s"], ["y"])]
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                           [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
                              [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path = tmp_path / "big.onnx"
    onnx.save(model, path)
    refused(run_cli("profile", path), "big.onnx needs about 400.0 GB", "--force")


@pytest.mark.parametrize(("args", "message"), [
    (("compare", "--budget", "inf"), "--budget must be finite, got inf"),
    (("compare", "--budget", "1e400"), "--budget must be finite, got inf"),
    (("compare", "--budget", "nan"), "--budget must be positive, got nan"),
    (("baseline", "--budget", "inf", "--out", "b.csv"), "--budget must be finite"),
    (("calibrate", "--budget", "inf"), "--budget must be finite, got inf"),
    (("calibrate", "--threads", "0"), "--threads must be positive, got 0"),
    (("guidelines", "--budget", "inf"), "--budget must be finite, got inf"),
    (("guidelines", "--budget", "-1"), "--budget must be positive, got -1.0"),
    (("network", "mobilenetv1", "--budget", "inf"), "--budget must be finite, got inf"),
    (("network", "mobilenetv1", "--budget", "nan"), "--budget must be positive, got nan"),
    (("network", "mobilenetv1", "--width", "inf"), "width must be a positive, finite number"),
    (("memory-table", "mobilenetv2", "--width", "inf"), "width must be a positive, finite"),
    (("variants", "extra"), "unexpected extra argument"),
], ids=lambda a: " ".join(a) if isinstance(a, tuple) else None)
def test_a_number_no_run_can_use_is_one_line(run_cli, tmp_path, nothing_runs, monkeypatch, args,
                                             message):
    # an infinite budget ended in "OverflowError: ... float infinity to integer", exit 3
    monkeypatch.chdir(tmp_path)
    refused(run_cli(*args), message)
    assert list(tmp_path.iterdir()) == []


# --- 6. kills ----------------------------------------------------------------------------------


@pytest.mark.slow  # real processes: a torch import and an export each
@pytest.mark.parametrize("args", [
    ("baseline", "--channels", "8", "--resolution", "13", "--variants", "conv,mbv2,fused",
     "--budget", "0.05", "--out", "OUT"),
    ("network", "mobilenetv1", "--resolution", "40", "--budget", "0.1", "--csv", "OUT"),
    ("guidelines", "--budget", "0.05"),
], ids=lambda a: a[0])
def test_a_kill_during_any_command_ends_with_130_and_no_temp_file(tmp_path, args):
    cache, out = tmp_path / "cache", tmp_path / "out.csv"
    env = {**os.environ, "MNV2PROF_CACHE": str(cache)}
    argv = [str(out) if a == "OUT" else a for a in args]
    process = subprocess.Popen([sys.executable, "-m", "mnv2prof", *argv], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if list(cache.rglob("*.tmp")):  # an export is being written: the worst moment
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("mnv2prof: error: interrupted"), err
    assert "Traceback" not in err
    assert list(tmp_path.rglob("*.tmp")) == [] and not out.exists()


# --- 7. small things ---------------------------------------------------------------------------


def test_a_spec_error_is_reported_before_torch_is_imported():
    code = ("import sys; from mnv2prof.cli import main; rc = main(['compare', '--stride', '3']);"
            "print(rc, 'torch' in sys.modules, 'scipy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.stdout.split() == ["2", "False", "False"], result.stderr
    assert "stride must be 1 or 2, got 3" in result.stderr


@pytest.mark.parametrize("target", ["folder", "empty", "missing-folder"])
@pytest.mark.parametrize("flag", ["--markdown-summary", "--junit"])
def test_gate_outputs_are_checked_before_the_baseline_is_measured(run_cli, tmp_path,
                                                                  nothing_runs, flag, target):
    path = {"folder": tmp_path, "empty": "", "missing-folder": tmp_path / "no" / "x"}[target]
    refused(run_cli("gate", *SMALL, "--baseline", tmp_path / "b.csv", flag, path),
            {"folder": "is a folder", "empty": "empty", "missing-folder": "does not exist"}[target])


@pytest.mark.parametrize("target", ["folder", "empty", "missing-folder"])
def test_profile_output_is_checked_before_the_model_is_timed(run_cli, tmp_path, target):
    from mnv2prof.artifacts.identity import identity_model

    model = tmp_path / "id.onnx"
    model.write_bytes(identity_model())
    path = {"folder": tmp_path, "empty": "", "missing-folder": tmp_path / "no" / "x"}[target]
    refused(run_cli("profile", model, "--csv", path),
            {"folder": "is a folder", "empty": "empty", "missing-folder": "does not exist"}[target])
