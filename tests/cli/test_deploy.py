"""--precision and --runtime end to end (issue 17): rows per (variant, precision, runtime),
the int8 columns, the deployment table, and bad input as one line."""

import textwrap

import pandas as pd
import pytest

SPEC = ("--channels", "8", "--resolution", "8", "--budget", "0.05")
SMALL = (*SPEC, "--no-eager")


def test_compare_in_every_precision_on_onnxruntime(run_cli, tmp_path):
    csv = tmp_path / "rows.csv"
    code, out, err = run_cli("compare", *SMALL, "--variants", "conv,mbv2,dwsep",
                             "--precision", "fp32,int8", "--csv", csv)
    assert code == 0, err
    frame = pd.read_csv(csv)
    assert list(zip(frame["variant"], frame["precision"], strict=True)) == [
        (v, p) for v in ("conv", "mbv2", "dwsep") for p in ("fp32", "int8")
    ]
    fp32, int8 = frame[frame["precision"] == "fp32"], frame[frame["precision"] == "int8"]
    assert fp32["macs"].tolist() == int8["macs"].tolist()  # MACs do not change with precision
    assert fp32["params"].tolist() == int8["params"].tolist()
    # int8 weights are a quarter of fp32; at C=8 the per-channel scales and int32 biases
    # are a large share of the total, so only "smaller" holds for every block here
    assert (int8["weight_bytes"].to_numpy() < fp32["weight_bytes"].to_numpy()).all()
    assert (int8["bytes_moved"].to_numpy() < fp32["bytes_moved"].to_numpy()).all()
    assert fp32["int8_speedup_x"].isna().all() and (int8["int8_speedup_x"] > 0).all()
    assert (int8["int8_sqnr_db"] > 15).all() and (int8["int8_max_abs_err"] > 0).all()
    ratio = fp32["latency_min_ms"].to_numpy() / int8["latency_min_ms"].to_numpy()  # the headline
    assert int8["int8_speedup_x"].to_numpy() == pytest.approx(ratio, rel=1e-3)
    assert frame["spec_hash"].is_unique
    for header in ("ORT fp32", "ORT int8", "speedup (x)"):
        assert header in out
    # the deployment view keeps the notes every measured view has
    assert "harness floor:" in out and "int8 gains least on onnxruntime" in out
    # one line per variant: its MACs, fp32 ms, int8 ms and the speedup side by side
    for row in int8.to_dict("records"):
        line = next(line for line in out.splitlines() if line.split()[:1] == [row["variant"]])
        cells = line.replace("!", "").split()
        assert cells[0] == row["variant"] and cells[-1] == f"{row['int8_speedup_x']:.2f}"
        assert len(cells) == 5, line  # variant, MACs, fp32 ms, int8 ms, speedup
    assert "int8 gains least on onnxruntime:" in out
    assert "rank correlation between MACs and latency, onnxruntime int8: rho =" in out


def test_show_accuracy_and_other_groups_in_the_deployment_view(run_cli, tmp_path):
    csv = tmp_path / "rows.csv"
    args = ("compare", *SMALL, "--variants", "conv", "--precision", "fp32,int8", "--csv", csv)
    code, out, err = run_cli(*args, "--show", "accuracy")
    assert code == 0, err
    row = pd.read_csv(csv).iloc[1]
    assert "max abs err" in out and "SQNR (dB)" in out
    line = next(line for line in out.splitlines() if line.split()[:1] == ["conv"])
    assert line.split()[-2:] == [f"{row['int8_max_abs_err']:.4f}", f"{row['int8_sqnr_db']:.1f}"]
    tables = out.split("\n! ")[0]  # before the notes (a flagged row is named there)
    assert "conv (int8)" not in tables  # accuracy alone: the side-by-side table only
    code, out, err = run_cli(*args, "--show", "memory")
    assert code == 0, err
    # other groups: a second table, a row per (block, precision, runtime), with their columns
    assert "SQNR" not in out and "conv (int8)" in out and "weights" in out


@pytest.mark.slow  # ExecuTorch lowers each block: a few seconds each, cached after
def test_compare_on_executorch_in_both_precisions(run_cli, tmp_path):
    pytest.importorskip("executorch")
    csv = tmp_path / "rows.csv"
    code, out, err = run_cli("compare", *SMALL, "--variants", "conv,dwsep", "--precision",
                             "fp32,int8", "--runtime", "onnxruntime,executorch", "--csv", csv)
    assert code == 0, err
    frame = pd.read_csv(csv)
    assert len(frame) == 8 and frame["spec_hash"].is_unique
    assert set(zip(frame["precision"], frame["runtime"], strict=True)) == {
        (p, r) for p in ("fp32", "int8") for r in ("onnxruntime", "executorch")
    }
    et_int8 = frame[(frame["runtime"] == "executorch") & (frame["precision"] == "int8")]
    assert (et_int8["int8_sqnr_db"] > 15).all() and (et_int8["int8_speedup_x"] > 0).all()
    assert "ET fp32" in out and "ET int8" in out and "int8 gains least on executorch" in out


@pytest.mark.parametrize("args, message", [
    (("--precision", "int4"), "--precision int4: choose from fp32, int8"),
    (("--runtime", "tflite"), "--runtime tflite: choose from onnxruntime, executorch"),
    (("--precision", ""), "--precision '': choose from fp32, int8"),
    (("--calibration", "kl"), "--calibration 'kl': choose from minmax, entropy, percentile"),
])
def test_unknown_precision_runtime_or_method_is_one_line(run_cli, args, message):
    code, out, err = run_cli("compare", *SMALL, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_executorch_missing_names_the_extra(run_cli, monkeypatch):
    from mnv2prof.artifacts import lowering

    monkeypatch.setattr(lowering, "available", lambda: False)
    code, _, err = run_cli("compare", *SMALL, "--runtime", "executorch")
    assert code == 2
    assert "--runtime executorch needs ExecuTorch: pip install 'mnv2prof[mobile]'" in err


def test_profile_of_a_foreign_model_in_int8_and_its_refusals(run_cli, tmp_path):
    code, _, err = run_cli("export", "--out", tmp_path, "--variants", "mbv2", "-c", "8", "-r", "8")
    assert code == 0, err
    model = tmp_path / "mbv2_c8_r8_e6_k3_s1_b1.onnx"
    csv = tmp_path / "p.csv"
    code, out, err = run_cli("profile", model, "--precision", "fp32,int8", "--budget", "0.05",
                             "--csv", csv)
    assert code == 0, err
    frame = pd.read_csv(csv)
    assert frame["precision"].tolist() == ["fp32", "int8"] and "(int8)" in out
    assert frame["macs"].nunique() == 1 and frame.loc[1, "int8_speedup_x"] > 0
    from mnv2prof.artifacts.quantize import quantize_cached

    quantized = quantize_cached(model).path
    code, _, err = run_cli("profile", quantized, "--precision", "int8")
    assert code == 2 and "is quantized already" in err and "give its fp32 model" in err
    code, _, err = run_cli("profile", model, "--runtime", "executorch")
    assert code == 2 and "an ONNX file runs on onnxruntime only" in err


def test_a_sweep_with_precision_as_a_grid_key(run_cli, tmp_path):
    profile = tmp_path / "q.toml"
    profile.write_text(textwrap.dedent("""
        name = "q"
        description = "conv and mbv2 at 8x8 in fp32 and int8"
        variants = ["conv", "mbv2"]
        [base]
        in_chs = 8
        resolution = 8
        [grid]
        precision = ["fp32", "int8"]
        [measure]
        budget_s = 0.05
        eager = false
    """))
    out = tmp_path / "o.csv"
    code, _, err = run_cli("sweep", profile, "--out", out)
    assert code == 0, err
    frame = pd.read_csv(out)
    assert frame["precision"].tolist() == ["fp32", "fp32", "int8", "int8"]
    assert frame["int8_speedup_x"].notna().tolist() == [False, False, True, True]
    code, _, err = run_cli("sweep", profile, "--out", out, "--resume")
    assert code == 0 and "wrote 0 rows" in err
    profile.write_text(profile.read_text().replace('"int8"]', '"int4"]'))
    code, _, err = run_cli("sweep", profile, "--out", tmp_path / "o2.csv")
    assert code == 2 and "[grid] precision: 'int4': choose from fp32, int8" in err


def test_gate_on_int8_rows(run_cli, tmp_path):
    stored = tmp_path / "b.csv"
    args = (*SPEC, "--variants", "conv,mbv2", "--precision", "fp32,int8")
    code, _, err = run_cli("baseline", *args, "--out", stored)
    assert code == 0, err
    code, out, err = run_cli("gate", *args, "--baseline", stored, "--relative-to", "conv",
                             "--max-slowdown", "2.0")
    assert code == 0, out + err
    assert "mbv2 int8 onnxruntime" in out and "PASS: 0 of 4 rows failed" in out
    code, _, err = run_cli("gate", *SPEC, "--variants", "conv,mbv2", "--baseline", stored)
    assert code == 2 and "baseline rows not measured now" in err
