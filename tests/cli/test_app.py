import json

import pandas as pd
import pytest

from mnv2prof.models.variants import DEFAULT_VARIANTS, VARIANTS
from tests.helpers import QUICK

SMALL = QUICK


def test_variants_lists_every_variant_and_wraps_under_its_description(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli("variants")
    assert code == 0
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines if not line.startswith(" ")] == list(VARIANTS)
    assert max(map(len, lines)) <= 80
    column = len("mbv2-nonlinear  ")  # the longest name and two spaces
    assert all(line.startswith(" " * column) and line[column] != " "
               for line in lines if line.startswith(" "))  # continued under the description


def test_compare_all_variants_table_csv_json(run_cli, tmp_path):
    csv, js = tmp_path / "out.csv", tmp_path / "out.json"
    code, out, err = run_cli("compare", *SMALL, "--expansion", "6", "--csv", csv, "--json", js)
    assert code == 0, err
    # the default view: two-line headers, each naming its unit; the other groups only on --show
    for header in ("variant", "(M)", "peak act", "(KiB)", "latency", "min (ms)", "median",
                   "(x conv)"):
        assert header in out
    assert "95% CI (ms)" not in out  # the median's CI: --show stats
    assert "ratios of min" in out.splitlines()[0]  # the headline estimator, in the title line
    assert "IQR" not in out and "intensity" not in out and "GMAC/s" not in out
    assert "baseline: conv (the x columns are multiples of its MACs and of its fastest call" in out
    assert "MACs and latency as multiples of conv's, log scale" in out  # the chart
    assert "Spearman rank correlation between MACs and latency" in out
    frame = pd.read_csv(csv)
    assert frame["variant"].tolist() == list(DEFAULT_VARIANTS)
    assert (frame["macs_ratio_x"][frame["variant"] == "conv"] == 1.0).all()
    assert (frame["latency_n"] >= 10).all()
    assert (frame["exp_ratio"] == 6).all() and (frame["in_chs"] == 8).all()
    samples = frame.loc[0, "latency_samples_ms"].split()
    assert len(samples) == frame.loc[0, "latency_n"]
    mins = [float(x) for x in frame.loc[0, "latency_mins_ms"].split()]
    assert len(mins) == len(samples) and frame.loc[0, "latency_min_ms"] == pytest.approx(min(mins), abs=1e-6)
    assert set(frame["latency_ratio_estimator"]) == {"min"}
    assert (frame["latency_trials"] == 3).all()  # three onnxruntime sessions per block
    assert (frame["latency_ratio_ci_low_x"] <= frame["latency_ratio_x"]).all()
    assert (frame["latency_ratio_x"] <= frame["latency_ratio_ci_high_x"]).all()
    assert frame.loc[frame["variant"] == "conv", "macs"].item() == 8 * 8 * 8 * 8 * 9
    records = json.loads(js.read_text())
    assert [r["variant"] for r in records] == list(DEFAULT_VARIANTS)


def test_compare_subset_and_baseline(run_cli):
    code, out, err = run_cli("compare", *SMALL, "--variants", "mbv2,dwsep", "--baseline", "dwsep",
                             "--show", "stats,traffic", "--no-chart")
    assert code == 0, err
    assert "(x dwsep)" in out and "conv " not in out
    assert "IQR" in out and "intensity" in out and "log scale" not in out


def test_the_default_baseline_is_conv_else_the_first_row(run_cli):
    code, out, err = run_cli("compare", *SMALL, "--variants", "dwsep,mbv2")
    assert code == 0, err
    assert "(x dwsep)" in out and "baseline: dwsep" in out
    code, out, err = run_cli("compare", *SMALL, "--variants", "dwsep", "--no-chart")
    assert code == 0, err  # one row: no multiples of itself, its fastest call ± its spread
    assert "(x dwsep)" not in out and "baseline:" not in out and "min ± (ms)" in out
    code, out, err = run_cli("compare", *SMALL, "--variants", "mbv2,conv", "--no-chart")
    assert code == 0, err
    assert "baseline: conv" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (("--expansion", "abc"), "Invalid value for '--expansion'"),
        (("--expansion", "0"), "expansion must be a positive integer, got 0"),
        (("--expansion", "-2"), "expansion must be a positive integer, got -2"),
        (("--variants", "conv,nope"), "unknown variant 'nope'"),
        (("--channels", "0"), "channels must be a positive integer"),
        (("--resolution", "-1"), "resolution must be a positive integer"),
        (("--stride", "3"), "stride must be 1 or 2, got 3"),
        (("--variants", "shufflev2", "--baseline", "shufflev2", "--channels", "7"),
         "channels must be even"),
        (("--variants", "mbv2", "--baseline", "conv"),
         "--baseline 'conv' is not among the rows (mbv2)"),
        (("--variants", "mbv2-streamed", "--chunks", "2", "--baseline", "mbv2-streamed/k3"),
         "--baseline 'mbv2-streamed/k3' is not among the rows (mbv2-streamed/k2)"),
        (("--show", "memory,colours"), "--show colours: choose from memory, traffic, stats"),
        (("--budget", "0"), "--budget must be positive"),
    ],
)
def test_bad_input_one_line_exit_2(run_cli, args, message):
    code, out, err = run_cli("compare", *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err + out


def test_csv_in_missing_folder_fails_before_measuring(run_cli, tmp_path):
    target = tmp_path / "missing" / "out.csv"
    code, out, err = run_cli("compare", *SMALL, "--csv", target)
    assert code == 2
    assert "folder" in err and "does not exist" in err
    assert not target.exists() and out == ""


def test_export_writes_checked_files(run_cli, tmp_path):
    code, out, err = run_cli("export", "--out", tmp_path / "models", "--variants", "mbv2,conv",
                             "--channels", "8", "--resolution", "8")
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert names == ["conv_c8_r8_e6_k3_s1_b1.onnx", "mbv2_c8_r8_e6_k3_s1_b1.onnx"]


def test_unknown_command_and_help(run_cli):
    code, _, err = run_cli("frobnicate")
    assert code == 2 and "No such command" in err
    code, out, _ = run_cli("compare", "--help")
    assert code == 0 and "--expansion" in out and "--budget" in out


def test_python_dash_m_entry_point():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "mnv2prof", "compare", "--expansion", "abc"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_compare_streamed_chunks_rows(run_cli, tmp_path):
    csv = tmp_path / "chunks.csv"
    code, out, err = run_cli("compare", *SMALL, "--variants", "mbv2,mbv2-streamed",
                             "--chunks", "1,2,6", "--baseline", "mbv2", "--csv", csv)
    assert code == 0, err
    frame = pd.read_csv(csv)
    # the CSV's variant is the variant's name; the chunk count is a column of its own
    assert frame["variant"].tolist() == ["mbv2"] + ["mbv2-streamed"] * 3
    assert frame["chunks"].tolist() == [1, 1, 2, 6]
    assert (frame["macs"] == frame.loc[0, "macs"]).all()
    peaks = frame["peak_act_bytes"].tolist()
    assert peaks[0] == peaks[1] > peaks[2] > peaks[3]
    assert "mbv2-streamed (2 chunks)" in out and "mbv2-streamed/k2" not in out  # a label
    code, _, err = run_cli("compare", "--variants", "mbv2-streamed", "--baseline", "mbv2-streamed",
                           "--chunks", "5")
    assert code == 2 and "chunks 5 must divide the expanded channels 32 x 6 = 192" in err


# ---- an error is one line on stderr, whatever stderr is -----------------------------------------


def test_an_error_while_measuring_is_one_line_on_a_pipe(run_cli):
    # the model fails in its export, once the progress bars have started
    code, out, err = run_cli("compare", "--model", "examples/shufflenet_v2.py:shufflenet_v2_x1_0",
                             "--shape", "224x224", "--budget", "0.1")
    assert code == 2
    lines = err.split("\n")  # every line, blank ones too
    assert lines[-1] == "" and len(lines) == 2, repr(err)
    assert lines[0].startswith("mnv2prof: error: shufflenet_v2_x1_0 from ") and out == ""


def _screen(raw: str) -> list[str]:
    """What a terminal shows after `raw`: carriage return, newline, cursor up (ESC[nA) and erase
    line (ESC[2K) applied; other escape sequences (colours, cursor shown) ignored."""
    import re

    lines, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", raw):
        if token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
            lines += [""] * (row + 1 - len(lines))
        elif token.endswith("A") and token.startswith("\x1b["):
            row = max(0, row - int(token[2:-1] or 1))
        elif token == "\x1b[2K":
            lines[row] = ""
        elif not token.startswith("\x1b"):
            line = lines[row].ljust(col)
            lines[row] = line[:col] + token + line[col + len(token):]
            col += len(token)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


@pytest.mark.parametrize("terminal", [True, False])
def test_a_progress_bar_or_a_status_leaves_no_line_before_an_error(monkeypatch, terminal):
    import io

    from rich.console import Console

    from mnv2prof.cli import progress

    raw = io.StringIO()
    console = Console(file=raw, force_terminal=terminal, width=80, color_system=None)
    monkeypatch.setattr(progress, "stderr", console)
    with pytest.raises(RuntimeError):
        with progress.progress_bar() as bar:
            task = bar.add_task("timing", total=10)
            bar.advance(task, 3)
            raise RuntimeError("export failed")
    with console.status("export + count"):
        pass
    console.print("mnv2prof: error: export failed")
    assert _screen(raw.getvalue()) == ["mnv2prof: error: export failed"], repr(raw.getvalue())
