"""The exit-code contract (errors.ExitCode), one test per code, and the README's table of it."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnv2prof.errors import ExitCode, ExportError
from tests.helpers import QUICK_NO_EAGER

SMALL = QUICK_NO_EAGER


def test_ok_is_0(run_cli):
    code, out, _ = run_cli("variants")
    assert code == ExitCode.OK == 0 and "mbv2" in out


@pytest.mark.parametrize("args", [("--expansion", "abc"), ("--expansion", "0"),
                                  ("--variants", "nope"), ("--cache", "hot")])
def test_usage_errors_are_2_with_one_line(run_cli, args):
    code, out, err = run_cli("compare", *SMALL, *args)
    assert code == ExitCode.USAGE == 2
    assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_failed_export_is_3_not_a_regression(run_cli, monkeypatch, tmp_path):
    from mnv2prof.artifacts import export

    monkeypatch.setattr(export, "cache_dir", lambda: tmp_path)  # nothing cached: it must export

    def broken(*args, **kwargs):
        raise ExportError("ONNX export failed for conv.onnx: the exporter broke")

    monkeypatch.setattr(export, "export_module", broken)
    code, _, err = run_cli("compare", *SMALL, "--variants", "conv")
    assert code == ExitCode.TOOL_FAILURE == 3
    assert "the exporter broke" in err and "Traceback" not in err


def test_a_provider_that_cannot_load_is_3(run_cli, monkeypatch):
    from mnv2prof.measure import latency

    def refuse(*args, **kwargs):
        raise latency.ProviderError("onnxruntime could not load CUDAExecutionProvider")

    monkeypatch.setattr(latency.OrtRunner, "__init__", refuse)
    code, _, err = run_cli("compare", *SMALL, "--variants", "conv")
    assert code == 3 and "could not load" in err


def test_readme_holds_the_contract():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = dict(re.findall(r"^\| (\d+) \| ([^|]+?) \|$", readme, flags=re.MULTILINE))
    assert {int(k) for k in rows} == {int(code) for code in ExitCode}
    assert "regression" in rows["1"] and "usage" in rows["2"]
    assert "tool" in rows["3"] and "interrupted" in rows["130"]


def _start(args, cache):
    env = {**os.environ, "MNV2PROF_CACHE": str(cache)}
    return subprocess.Popen([sys.executable, "-m", "mnv2prof", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow  # a real process: torch import and an export, about 10 s
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_an_export_ends_with_130_one_line_and_no_temp_file(tmp_path, signum):
    cache = tmp_path / "cache"
    # resolution 11 is used by no other test: the exports run while the signal comes
    process = _start(["compare", "--channels", "8", "--resolution", "11", "--budget", "0.05",
                      "--variants", "conv,mbv2,fused"], cache)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if list(cache.glob("onnx/*.tmp")):  # an export is writing its file right now
            break
        time.sleep(0.005)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == ExitCode.INTERRUPTED == 130, err
    assert err.strip().splitlines()[-1].startswith("mnv2prof: error: interrupted")
    assert "Traceback" not in err and "export failed" not in err and out == ""
    assert list(cache.rglob("*.tmp")) == []  # the running export finished or was removed
