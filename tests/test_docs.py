"""The docs run as written: docs/python.md's code blocks and the README's commands, from the
checkout's top folder (where their `examples/` paths point); the README's links lead to files."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def _commands() -> list[str]:
    """The README's `mnv2prof ...` commands, alone on a line or after a set-up line's `&&` (the
    installs themselves are not run here)."""
    return [part.strip() for block in _blocks(README, "sh") for line in block.splitlines()
            for part in line.split("&&") if part.strip().startswith("mnv2prof ")]


def test_the_readme_set_up_names_torch_once_and_says_where_the_cpu_build_is():
    setup = [line for block in _blocks(README, "sh") for line in block.splitlines()
             if "pip install" in line]
    assert len(setup) == 2  # install and run; the tests
    assert all(line.count("torch==2.13.0") == 1 for line in setup), setup
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in (
        " ".join(README.split()))
    assert setup[0].endswith("&& mnv2prof compare --expansion 6")


def test_the_readme_links_lead_to_files():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    assert "docs/figures/macs-latency.png" in links and "docs/errors.md" in links
    missing = [link for link in links if not link.startswith("http") and not (ROOT / link).exists()]
    assert missing == []


def test_every_readme_command_is_run():
    assert _commands()[0] == "mnv2prof compare --expansion 6" and len(_commands()) == 4


@pytest.mark.slow  # exports and times every command as written (about a minute)
@pytest.mark.parametrize("command", _commands())
def test_a_readme_command_runs_as_written(run_cli, monkeypatch, command):
    monkeypatch.chdir(ROOT)
    code, out, err = run_cli(*command.split()[1:])
    assert code == 0, err
    assert "1 MAC = 1 multiply-accumulate" in out  # a measured table and its legend


@pytest.mark.slow  # exports and times four blocks and two models (about 30 s)
def test_the_python_api_page_runs_as_written():
    code = "\n".join(_blocks((ROOT / "docs" / "python.md").read_text(encoding="utf-8"), "python"))
    assert "my_trained_model" not in code
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=900, env={**os.environ, "COLUMNS": "100"})
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("conv", "dwsep", "uib_extradw", "Pointwise", "Sequential"):
        assert name in result.stdout
