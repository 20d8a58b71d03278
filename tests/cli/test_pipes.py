"""A closed stdout or stderr (issue 31, part 3): the files are written before the terminal, a
reader that went away (`| head -1`) ends the showing and never the command, and the exit code is
the command's own (click's 1 for a broken pipe read as a gate's regression)."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = "--channels 8 --resolution 8 --budget 0.05"
TINY = f"{SPEC} --no-eager"


def _shell(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """`script` in bash, with `mnv2prof` this checkout's, in `tmp_path`; it ends with the exit
    code of the pipeline's first command."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    mnv2prof = f"{sys.executable} -m mnv2prof"
    return subprocess.run(["bash", "-c", script.replace("mnv2prof", mnv2prof)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_reader_that_leaves_early_loses_no_file_and_no_exit_code(tmp_path):
    done = _shell(f"mnv2prof compare {TINY} --variants conv,dwsep,mbv2 --csv out.csv "
                  "| head -1; exit ${PIPESTATUS[0]}", tmp_path)
    assert done.returncode == 0, done.stderr
    assert pd.read_csv(tmp_path / "out.csv")["variant"].tolist() == ["conv", "dwsep", "mbv2"]
    assert "Traceback" not in done.stderr and "Broken pipe" not in done.stderr


@pytest.mark.slow
def test_an_export_folder_is_whole_when_its_listing_is_cut(tmp_path):
    done = _shell("mnv2prof export --channels 8 --resolution 8 --variants conv,dwsep,mbv2 "
                  "--out o | head -1; exit ${PIPESTATUS[0]}", tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name.split("_")[0] for p in (tmp_path / "o").iterdir()) == [
        "conv", "dwsep", "mbv2"]


@pytest.mark.slow
def test_a_gate_keeps_its_verdict_when_its_table_is_cut(tmp_path):
    assert _shell(f"mnv2prof baseline {SPEC} --variants conv --out b.csv",
                  tmp_path).returncode == 0
    done = _shell(f"mnv2prof gate {SPEC} --variants conv --baseline b.csv --junit j.xml "
                  "| head -1; exit ${PIPESTATUS[0]}", tmp_path)
    assert done.returncode in (0, 1), done.stderr  # the gate's own verdict, never click's
    assert "testsuite" in (tmp_path / "j.xml").read_text()


def test_a_closed_stdout_is_no_traceback(tmp_path):
    done = _shell("mnv2prof variants >&-", tmp_path)
    assert done.returncode == 0 and done.stderr == ""


def test_a_closed_stderr_keeps_the_usage_code(tmp_path):
    done = _shell("mnv2prof compare --expansion abc 2>&-", tmp_path)
    assert done.returncode == 2 and done.stdout == ""
