"""Issue 25, part 6: a baseline row that does not agree with itself (a sample removed, a
summary or a hash edited, an environment column dropped or changed) is refused by `gate` before
anything is measured, in one line naming the row and the field, exit code 2."""

import numpy as np
import pandas as pd
import pytest

from mnv2prof.errors import ExitCode
from mnv2prof.gating import baseline
from tests.helpers import QUICK, restated

SMALL = (*QUICK, "--variants", "conv,dwsep")


@pytest.fixture(scope="module")
def stored(stored_baseline):
    return stored_baseline("conv,dwsep")


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


# --- issue 31.8: every stored statistic is its samples', every count agrees ---------------------

@pytest.mark.parametrize("column", ["latency_q1_ms", "latency_q3_ms", "latency_iqr_ms",
                                    "latency_p95_ms", "latency_ci_low_ms", "latency_ci_high_ms"])
def test_a_statistic_edited(run_cli, stored, tmp_path, column):
    def edit(rows):  # 1.5x, and never by less than 0.001 ms: 100x the file's rounding (a
        # 0.01 ms block's IQR can be 0.00003 ms, which 1.5x moves by less than its tolerance)
        value = float(rows.loc[1, column])
        rows.loc[1, column] = f"{max(value * 1.5, value + 0.001):.6f}"
        return rows

    err = gate_refuses(run_cli, edited(stored, tmp_path, edit))
    assert f"row 2 (dwsep): {column} is " in err and " of latency_samples_ms is " in err
    assert "the row was edited; take a new baseline" in err


def test_the_slowest_sample_times_100_is_refused(run_cli, stored, tmp_path):
    def ten_rounds(rows):  # the row as a run of 10 rounds would have written it
        samples = rows.loc[0, "latency_samples_ms"].split()[:10]
        mins = rows.loc[0, "latency_mins_ms"].split()[:10]
        return restated(rows, 0, [float(v) for v in samples], [float(v) for v in mins])

    whole = edited(stored, tmp_path, ten_rounds)
    assert len(baseline.load_baseline(whole)) == 2  # restated: consistent

    def slowest_times_100(rows):
        samples = [float(v) for v in rows.loc[0, "latency_samples_ms"].split()]
        slowest = int(np.argmax(samples))
        samples[slowest] *= 100  # the median kept
        rows.loc[0, "latency_samples_ms"] = " ".join(f"{v:.5f}" for v in samples)
        return rows

    err = gate_refuses(run_cli, edited(whole, tmp_path, slowest_times_100))
    assert "row 1 (conv): latency_p95_ms is " in err  # p95 of 10 rounds leans on the slowest


def test_a_sample_below_its_rounds_fastest_call_is_refused(run_cli, stored, tmp_path):
    def edit(rows):  # a round made 10x faster by hand, the median and the statistics restated
        samples = [float(v) for v in rows.loc[1, "latency_samples_ms"].split()]
        samples[0] /= 10
        return restated(rows, 1, samples,
                        [float(v) for v in rows.loc[1, "latency_mins_ms"].split()])

    err = gate_refuses(run_cli, edited(stored, tmp_path, edit))
    assert "row 2 (dwsep): sample 1 of latency_samples_ms (" in err
    assert "is below its round's fastest call" in err


@pytest.mark.parametrize("column, fragment", [
    ("macs", "flops is {flops} but 2 x macs gives"),
    ("flops", "flops is {new} but 2 x macs gives"),
    ("gmacs_per_s", "gmacs_per_s is {new} but macs / the median of latency_samples_ms gives"),
    ("bytes_moved", "arith_intensity_flop_per_byte is {ai} but flops / bytes_moved gives"),
])
def test_a_count_edited_is_named(run_cli, stored, tmp_path, column, fragment):
    rows = pd.read_csv(stored, dtype=str, keep_default_na=False)
    new = str(int(float(rows.loc[0, column]) * 2)) if column != "gmacs_per_s" else "1.2345"
    err = gate_refuses(run_cli, edited(stored, tmp_path,
                                       lambda r: r.assign(**{column: [new, r.loc[1, column]]})))
    assert "row 1 (conv): " + fragment.format(
        flops=rows.loc[0, "flops"], new=new, ai=rows.loc[0, "arith_intensity_flop_per_byte"]
    ) in err  # exit 2 naming the field, not a "cost changed" regression (exit 1)


@pytest.mark.parametrize("cell", ["1_0", "\u0661\u0662", "\uff11"])
def test_number_syntax_is_strict(run_cli, stored, tmp_path, cell):
    def in_samples(rows):
        samples = rows.loc[0, "latency_samples_ms"].split()
        rows.loc[0, "latency_samples_ms"] = " ".join([cell, *samples[1:]])
        return rows

    err = gate_refuses(run_cli, edited(stored, tmp_path, in_samples))
    assert "latency_samples_ms must be positive milliseconds separated by spaces" in err
    err = gate_refuses(run_cli, edited(stored, tmp_path, lambda r: r.assign(macs=cell)))
    assert f"row 1, column macs: {cell!r} is not a whole number >= 0" in err


def test_a_compare_csv_given_as_baseline_is_named(run_cli, tmp_path):
    path = tmp_path / "compare.csv"
    code, _, err = run_cli("compare", *SMALL, "--no-eager", "--no-chart", "--csv", path)
    assert code == 0, err
    err = gate_refuses(run_cli, path)  # a "regression" (exit 1) before
    assert err.strip() == (
        f"mnv2prof: error: baseline {path} is a `compare --csv` file (it has macs_ratio_x), "
        "not a baseline: take one with `mnv2prof baseline --out`"
    )


def test_a_json_baseline_nested_past_the_limit_is_bad_input(run_cli, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)  # RecursionError, exit 3, before
    err = gate_refuses(run_cli, path)
    assert f"baseline {path} is not JSON the tool reads: nested 100000 deep, past the limit " \
        "of 64" in err


# --- issue 29: one rule, one place: a row twice on one host is refused alike by every reader ---

def test_a_row_twice_on_one_host_is_one_verdict_for_merge_sweep_report_and_gate(run_cli, stored,
                                                                               tmp_path):
    from mnv2prof.files import readers, results

    rows = pd.read_csv(stored, dtype=str, keep_default_na=False)
    twice = tmp_path / "twice.csv"
    pd.concat([rows, rows.head(1)], ignore_index=True).to_csv(twice, index=False)
    before = twice.read_bytes()
    profile = tmp_path / "p.toml"
    profile.write_text('name = "p"\ndescription = "d"\nvariants = ["conv"]\n[base]\n'
                       'in_chs = 8\nresolution = 8\n')
    calls = []
    rule = results.check_one_row_per_host

    def counted(*args, **kwargs):
        calls.append(kwargs.get("label", "spec_hash"))
        return rule(*args, **kwargs)

    words = (f": spec_hash {rows.loc[0, 'spec_hash']} on host {rows.loc[0, 'host']} is twice "
             "(rows 1 and 3): a row is in a results file once")
    commands = {
        "merge": ("merge", twice, "--out", tmp_path / "m.csv"),
        "sweep --resume": ("sweep", profile, "--resume", "--out", twice),
        "report": ("report", twice),
        "gate": ("gate", *SMALL, "--baseline", twice),
    }
    for name, args in commands.items():
        calls.clear()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(readers, "check_one_row_per_host", counted)
            code, out, err = run_cli(*args)
        assert code == ExitCode.USAGE, (name, out + err)
        assert err.strip().splitlines() == [f"mnv2prof: error: {_reader(name)} {twice}{words}"]
        assert calls == ["spec_hash"], name  # decided by the one function, for every reader
    assert twice.read_bytes() == before and not (tmp_path / "m.csv").exists()


def _reader(command: str) -> str:
    """What each command calls the file it reads, in its messages."""
    return {"merge": "merge input", "sweep --resume": "sweep file", "report": "results file",
            "gate": "baseline"}[command]
