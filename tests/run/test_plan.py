"""One plan, one place for every rule (issue 29): each rule that needs no measurement is decided
in one function, and the command line, the Python API and a profile all reach it."""

import inspect
import subprocess
from pathlib import Path

import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper

import mnv2prof
from mnv2prof.errors import UsageError
from mnv2prof.run import plan
from tests.helpers import QUICK_NO_EAGER, tiny_profile

ROOT = Path(__file__).resolve().parents[2]
TINY = QUICK_NO_EAGER


def _refused(result, fragment):
    code, out, err = result
    assert code == 2, out + err
    assert fragment in " ".join(err.split()), err


def _profile(folder: Path, budget: str = "0.05", grid: str = "") -> Path:
    return tiny_profile(folder, "p", expansions=(6,), variants=("conv",), budget=budget,
                        grid=grid)


def _definitions(name: str) -> list[str]:
    """Where `def NAME(` is written in the package."""
    found = subprocess.run(["grep", "-rln", f"def {name}(", str(ROOT / "mnv2prof")],
                           capture_output=True, text=True).stdout.split()
    return sorted(Path(f).relative_to(ROOT).as_posix() for f in found)


@pytest.mark.parametrize("name, home", [
    ("check_seconds", "mnv2prof/measure/timing.py"),  # the budget cap
    ("parse_targets", "mnv2prof/models/targets.py"),  # precision, runtime, calibration names
    ("default_baseline", "mnv2prof/run/plan.py"),
    ("check_targets", "mnv2prof/run/plan.py"),  # ExecuTorch needs a torch module
    ("check_ray_address", "mnv2prof/sweeps/ray_address.py"),
    ("check_one_row_per_host", "mnv2prof/files/results.py"),  # one spec_hash per host
])
def test_each_rule_is_written_once(name, home):
    assert _definitions(name) == [home]


def test_the_budget_cap_through_the_command_line_the_api_and_a_profile(run_cli, tmp_path):
    _refused(run_cli("compare", *TINY, "--budget", "3601"), "--budget must be at most 3600")
    with pytest.raises(UsageError, match="^budget must be at most 3600 seconds"):
        mnv2prof.compare(["conv"], budget=1e308)
    profile = _profile(tmp_path, budget="1e308")
    _refused(run_cli("sweep", profile, "--out", tmp_path / "o.csv"),
             "[measure] budget_s: must be at most 3600 seconds (an hour), got 1e+308")
    assert not (tmp_path / "o.csv").exists()


def test_the_target_names_through_the_command_line_the_api_and_a_profile(run_cli, tmp_path):
    _refused(run_cli("compare", *TINY, "--precision", "int4"), "--precision int4: choose from")
    with pytest.raises(UsageError, match="^precision int4: choose from fp32, int8"):
        mnv2prof.compare(["conv"], precision="int4")
    profile = _profile(tmp_path, grid='precision = ["int4"]')
    _refused(run_cli("sweep", profile, "--out", tmp_path / "o.csv"),
             "[grid] precision: 'int4': choose from fp32, int8")


def test_executorch_needs_a_torch_module_through_the_command_line_and_the_api(run_cli, tmp_path):
    model = tmp_path / "m.onnx"
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), model)
    pytest.importorskip("executorch")
    rule = "an ONNX file runs on onnxruntime only"
    _refused(run_cli("compare", *TINY, "--model", model, "--runtime", "executorch"), rule)
    _refused(run_cli("profile", model, "--runtime", "executorch"), rule)
    with pytest.raises(UsageError, match=rule):
        mnv2prof.compare(models=[str(model)], runtime="executorch")


def test_the_ray_address_through_the_command_line_and_the_api(run_cli, tmp_path):
    profile = _profile(tmp_path)
    _refused(run_cli("sweep", profile, "--out", tmp_path / "o.csv", "--ray", ":6379"),
             "--ray :6379: not HOST:PORT (no host)")
    with pytest.raises(UsageError, match="not HOST:PORT"):
        mnv2prof.sweep(profile, tmp_path / "o.csv", ray=":6379")


def test_the_default_baseline_row_is_conv_else_the_first(run_cli, tmp_path):
    assert plan.default_baseline(["dwsep", "conv"]) == "conv"
    assert plan.default_baseline(["dwsep", "mbv2"]) == "dwsep"
    assert plan.default_baseline(["dwsep"], "blocks.py:mine") == "mine"
    frame = mnv2prof.compare(["dwsep", "mbv2"], channels=8, resolution=8, budget=0.05,
                             eager=False)
    assert frame["latency_ratio_x"].iloc[0] == 1.0 and frame["macs_ratio_x"].iloc[0] == 1.0
    code, out, err = run_cli("compare", *TINY, "--variants", "dwsep,mbv2")
    assert code == 0 and "(x dwsep)" in out, err


def test_the_api_takes_the_command_lines_words():
    frame = mnv2prof.compare(["conv", "dwsep"], expansion=6, channels=32, budget=0.5,
                             eager=False)
    assert isinstance(frame, pd.DataFrame) and frame["in_chs"].tolist() == [32, 32]
    words = set(inspect.signature(mnv2prof.compare).parameters)
    assert {"channels", "resolution", "expansion", "kernel", "stride", "batch", "budget",
            "threads", "cache", "precision", "runtime", "calibration"} <= words


def test_profile_gives_the_same_columns_and_notes_in_python_and_on_the_command_line(run_cli,
                                                                                   tmp_path):
    model = tmp_path / "m.onnx"
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "n"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "n"])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), model)
    frame = mnv2prof.profile(str(model), shape="x=1x16", budget=0.05)
    code, out, err = run_cli("profile", model, "--shape", "x=1x16", "--budget", "0.05",
                             "--csv", tmp_path / "p.csv")
    assert code == 0, err
    assert list(pd.read_csv(tmp_path / "p.csv").columns) == list(frame.columns)
    shown = " ".join(out.split())
    assert frame.attrs["notes"] and all(" ".join(n.split()) in shown
                                        for n in frame.attrs["notes"])


def test_a_plan_is_checked_once_and_names_its_rows_once(tmp_path):
    checked = plan.block_plan(["conv", "dwsep"], channels=8, resolution=8, budget=0.5)
    assert checked.check() is checked and checked.baseline == "conv"
    with pytest.raises(UsageError, match="variant listed twice"):
        plan.block_plan(["conv", "conv"])
    block = tmp_path / "conv.py"
    block.write_text("from torch import nn\n\ndef conv(in_chs):\n    return nn.Identity()\n")
    with pytest.raises(UsageError, match="two variants are named 'conv'"):
        plan.block_plan(["conv", f"{block}:conv"])
