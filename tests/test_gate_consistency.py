"""Issue 25, part 6: a baseline row that does not agree with itself (a sample removed, a
summary or a hash edited, an environment column dropped or changed) is refused by `gate` before
anything is measured, in one line naming the row and the field, exit code 2."""

import numpy as np
import pandas as pd
import pytest

from mnv2prof import baseline
from mnv2prof.errors import ExitCode

SMALL = ("--channels", "8", "--resolution", "8", "--budget", "0.05", "--variants", "conv,dwsep")


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    from mnv2prof.cli import main

    path = tmp_path_factory.mktemp("baseline") / "small.csv"
    assert main(["baseline", *SMALL, "--out", str(path)]) == 0
    return path


def edited(stored, tmp_path, edit) -> str:
    rows = pd.read_csv(stored, dtype=str, keep_default_na=False)
    rows = edit(rows)
    path = tmp_path / "edited.csv"
    rows.to_csv(path, index=False)
    return path


def gate_refuses(run_cli, path) -> str:
    code, out, err = run_cli("gate", *SMALL, "--baseline", path)
    assert code == ExitCode.USAGE, out + err
    assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_the_baseline_as_written_is_consistent(stored):
    frame = baseline.load_baseline(stored)
    assert frame["variant"].tolist() == ["conv", "dwsep"]


def _drop_a_sample(rows):
    rows.loc[1, "latency_samples_ms"] = " ".join(rows.loc[1, "latency_samples_ms"].split()[:-1])
    return rows


def test_a_sample_removed(run_cli, stored, tmp_path):
    n = int(pd.read_csv(stored).loc[1, "latency_n"])
    err = gate_refuses(run_cli, edited(stored, tmp_path, _drop_a_sample))
    assert f"row 2 (dwsep): latency_n is {n} but latency_samples_ms holds {n - 1} samples" in err


def test_a_sample_removed_and_the_count_fixed_by_hand(run_cli, stored, tmp_path):
    def edit(rows):
        _drop_a_sample(rows)
        rows.loc[1, "latency_n"] = str(len(rows.loc[1, "latency_samples_ms"].split()))
        # and the samples retouched (1.5x each), so their median is not the stored one (with
        # ties, common at this size, dropping one sample alone may leave the median where it was)
        samples = [f"{1.5 * float(x):.5f}" for x in rows.loc[1, "latency_samples_ms"].split()]
        rows.loc[1, "latency_samples_ms"] = " ".join(samples)
        rows.loc[1, "latency_mins_ms"] = ""  # as in a file from before the column: not checked
        return rows

    err = gate_refuses(run_cli, edited(stored, tmp_path, edit))
    assert "row 2 (dwsep): latency_median_ms is " in err
    assert "but the median of latency_samples_ms is " in err


def test_a_median_edited(run_cli, stored, tmp_path):
    def edit(rows):
        rows.loc[0, "latency_median_ms"] = str(float(rows.loc[0, "latency_median_ms"]) * 0.5)
        return rows

    err = gate_refuses(run_cli, edited(stored, tmp_path, edit))
    assert "row 1 (conv): latency_median_ms is" in err


def test_the_median_within_the_files_rounding_is_kept(stored, tmp_path):
    def edit(rows):  # what a spreadsheet's re-save may do: the 6th decimal
        samples = np.array([float(s) for s in rows.loc[0, "latency_samples_ms"].split()])
        rows.loc[0, "latency_median_ms"] = f"{np.median(samples) + 4e-6:.6f}"
        return rows

    assert len(baseline.load_baseline(edited(stored, tmp_path, edit))) == 2


def test_spec_hash_zeroed(run_cli, stored, tmp_path):
    def edit(rows):
        rows.loc[1, "spec_hash"] = "0" * 16
        return rows

    err = gate_refuses(run_cli, edited(stored, tmp_path, edit))
    assert "row 2 (dwsep): spec_hash is '0000000000000000' but its spec columns hash to" in err


def test_a_spec_column_edited(run_cli, stored, tmp_path):
    def edit(rows):
        rows.loc[0, "kernel_size"] = "5"
        return rows

    err = gate_refuses(run_cli, edited(stored, tmp_path, edit))
    assert "row 1 (conv): spec is 'conv_c8_r8_e6_k3_s1_b1' but its spec columns make " in err
    assert "'conv_c8_r8_e6_k5_s1_b1'" in err


@pytest.mark.parametrize("column", ["env_numpy", "env_python", "env_timestamp"])
def test_an_environment_column_dropped(run_cli, stored, tmp_path, column):
    err = gate_refuses(run_cli, edited(stored, tmp_path, lambda rows: rows.drop(columns=column)))
    assert f"lacks the environment column(s) {column}" in err


def test_one_rows_torch_changed(run_cli, stored, tmp_path):
    def edit(rows):
        rows.loc[1, "env_torch"] = "9.9.9"
        return rows

    err = gate_refuses(run_cli, edited(stored, tmp_path, edit))
    assert "no baseline row" not in err
    assert "row 2 (dwsep): env_torch is '9.9.9' but " in err and "in row 1 of host " in err


def test_every_rows_torch_changed_is_another_environment_not_an_edit(run_cli, stored, tmp_path):
    def edit(rows):
        rows["env_torch"] = "9.9.9"
        return rows

    code, _, err = run_cli("gate", *SMALL, "--baseline", edited(stored, tmp_path, edit))
    assert code == ExitCode.USAGE and "baseline comes from another environment (torch" in err


def test_the_fastest_call_edited(run_cli, stored, tmp_path):
    def edit(rows):
        rows.loc[1, "latency_min_ms"] = "0.000001"  # dwsep's headline made faster by hand
        return rows

    err = gate_refuses(run_cli, edited(stored, tmp_path, edit))
    assert "row 2 (dwsep): latency_min_ms and latency_mins_ms disagree" in err
