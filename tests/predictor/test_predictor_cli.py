"""`mnv2prof predictor build` and `mnv2prof predict` on the command line: output, the CSV, and
bad input as one line with exit 2 (tests/cli/test_bad_input.py's rules)."""

import shutil

import pandas as pd

from tests.cli.test_bad_input import refused as _one_error_line

BLOCK = ("mbv2", "--channels", "16", "--resolution", "16", "--expansion", "3")


def test_predict_prints_the_table_and_writes_the_csv(run_cli, tiny_build, tmp_path):
    _, folder = tiny_build
    csv = tmp_path / "p.csv"
    code, out, err = run_cli("predict", *BLOCK, "--predictor", folder, "--check", "--csv", csv)
    assert code == 0, err
    assert "predicted per kernel" in out and "FLOPs baseline" in out
    assert "measured" in out and "prediction" in out
    frame = pd.read_csv(csv)
    network = frame[frame["kernel"] == "(network)"].iloc[0]
    assert network["measured_ms"] > 0 and network["predicted_ms"] > 0
    assert len(frame) >= 5  # a block's kernels and the network's row


def test_predict_onnx_file(run_cli, tiny_build, tmp_path):
    from mnv2prof.predictor.graphs import lone_block_model
    from mnv2prof.predictor.space import Block, LoneBlock

    _, folder = tiny_build
    model = tmp_path / "block.onnx"
    model.write_bytes(lone_block_model(LoneBlock(16, 16, Block("ir", 16))).SerializeToString())
    code, out, err = run_cli("predict", "--model", model, "--predictor", folder)
    assert code == 0, err
    assert "block_1x16x16x16: predicted per kernel" in out


def test_missing_predictor_folder(run_cli, tmp_path):
    _one_error_line(run_cli("predict", *BLOCK, "--predictor", tmp_path / "none"), "not found")


def test_corrupt_model_file(run_cli, tiny_build, tmp_path):
    _, folder = tiny_build
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08garbage that is no protobuf")
    _one_error_line(run_cli("predict", "--model", bad, "--predictor", folder), "bad.onnx")


def test_corrupt_predictor_models(run_cli, tiny_build, tmp_path):
    _, folder = tiny_build
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "models.joblib").write_bytes(b"\x00" * 10)
    _one_error_line(run_cli("predict", *BLOCK, "--predictor", copy), "cannot be loaded")


def test_foreign_predictor_refused_then_forced(run_cli, tiny_build, tmp_path):
    import json

    _, folder = tiny_build
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    meta = json.loads((copy / "predictor.json").read_text())
    meta["fingerprint"]["onnxruntime"] = "0.0.1"
    (copy / "predictor.json").write_text(json.dumps(meta))
    _one_error_line(run_cli("predict", *BLOCK, "--predictor", copy),
                    "built in another environment (onnxruntime: 0.0.1 there", "--force")
    code, out, err = run_cli("predict", *BLOCK, "--predictor", copy, "--force")
    assert code == 0, err


def test_empty_space_refused_before_anything(run_cli, tmp_path):
    space = tmp_path / "empty.toml"
    space.write_text("[space]\nkernel_size = []\n")
    out = tmp_path / "p"
    _one_error_line(run_cli("predictor", "build", "--out", out, "--profile", space),
                    "kernel_size is empty")
    assert not out.exists()


def test_build_into_a_used_folder(run_cli, tiny_build):
    _, folder = tiny_build
    _one_error_line(run_cli("predictor", "build", "--out", folder), "pass --resume")


def test_build_into_a_file(run_cli, tmp_path):
    file = tmp_path / "f"
    file.write_text("x")
    _one_error_line(run_cli("predictor", "build", "--out", file), "not a folder")


def test_bad_ray_address(run_cli, tmp_path):
    _one_error_line(run_cli("predictor", "build", "--out", tmp_path / "p", "--ray", "nohost"))
