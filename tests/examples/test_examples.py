"""The files in examples/ as a user would run them, through mnv2prof (its CLI and its Python
API), against closed forms and the published figures.

- examples/uib.py: MobileNetV4's UIB instances beside the built-ins, exact to the closed forms
  of the file's docstring (written again here, from the paper's layer list, not from the code).
- examples/shufflenet_v2.py and examples/mobilenet_v3.py: torchvision's published params
  exactly, MACs within 1% of its figures and equal to torch.utils.flop_counter's count.
"""

import runpy
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import mnv2prof
from mnv2prof.cli import main
from tests.closed_forms import macs as closed_macs
from tests.closed_forms import params as closed_params

EXAMPLES = Path(__file__).parents[2] / "examples"
UIB = EXAMPLES / "uib.py"
# (start dw, middle dw) of each instance (paper Fig. 4)
UIB_KINDS = {"uib_extradw": (True, True), "uib_ib": (False, True),
             "uib_convnext": (True, False), "uib_ffn": (False, False)}
SPEC = dict(in_chs=16, resolution=14, exp_ratio=4, kernel_size=3)  # mid_chs 64: a multiple of 8
SPEC_FLAGS = ("--channels", "16", "--resolution", "14", "--expansion", "4", "--kernel", "3")
QUICK = ("--budget", "0.05", "--no-eager", "--no-chart")


def uib_cost(kind: str, c: int, r: int, t: int, k: int, s: int) -> tuple[int, int]:
    """(MACs, params) of a UIB instance with in_chs = out_chs = c on r x r: each conv has no
    bias and is followed by BN (2 params a channel, no MACs); the stride goes to the middle dw,
    or to the start dw when there is no middle one."""
    start, middle = UIB_KINDS[kind]
    m, d = c * t, c
    out_px, in_px = ((r - 1) // s + 1) ** 2, r * r
    first_px = out_px if start and not middle else in_px  # where dw_start and pw_exp run
    macs = ((first_px * c * k * k if start else 0) + first_px * c * m
            + (out_px * m * k * k if middle else 0) + out_px * m * d)
    params = ((c * k * k + 2 * c if start else 0) + c * m + 2 * m
              + (m * k * k + 2 * m if middle else 0) + m * d + 2 * d)
    return macs, params


def test_uib_closed_forms_are_the_papers():
    # at stride 1 the IB instance is MobileNetV2's bottleneck: h*w*d'*t*(d' + k^2 + d'')
    assert uib_cost("uib_ib", 16, 14, 4, 3, 1) == (14 * 14 * 16 * 4 * (16 + 9 + 16),
                                                   closed_params("mbv2", 16, 4, 3, 1))
    assert uib_cost("uib_ffn", 16, 14, 4, 3, 1)[0] == 14 * 14 * 64 * (16 + 16)


def test_compare_help_names_the_flags_used_here(run_cli):
    code, out, _ = run_cli("compare", "--help")
    flat = " ".join(out.split())
    assert code == 0
    for flag in ("--variants", "--model", "--csv", "--no-eager", "--budget", "--expansion"):
        assert flag in flat
    assert "PATH.py:NAME" in flat


def test_compare_uib_beside_built_ins_gives_the_closed_forms(run_cli, tmp_path):
    out = tmp_path / "rows.csv"
    variants = ["conv", "dwsep", *(f"{UIB}:{kind}" for kind in UIB_KINDS)]
    code, stdout, err = run_cli("compare", *SPEC_FLAGS, *QUICK, "--variants", ",".join(variants),
                                "--csv", out)
    assert code == 0, err
    frame = pd.read_csv(out).set_index("variant")
    assert frame.index.tolist() == ["conv", "dwsep", *UIB_KINDS]
    for name in ("conv", "dwsep"):
        assert frame.loc[name, "macs"] == closed_macs(name, 16, 14, 4, 3, 1)
        assert frame.loc[name, "params"] == closed_params(name, 16, 4, 3, 1)
    for kind in UIB_KINDS:
        assert (frame.loc[kind, "macs"], frame.loc[kind, "params"]) == uib_cost(kind, 16, 14, 4,
                                                                                3, 1), kind
        assert frame.loc[kind, "source"] == f"{UIB}:{kind}"
        assert frame.loc[kind, "spec"] == f"{kind}_c16_r14_e4_k3_s1_b1"
    assert frame.loc["uib_ib", "macs"] == 514_304 and frame.loc["uib_ib", "params"] == 2_912
    assert frame["unhandled_ops"].isna().all()
    assert "uib_extradw" in stdout


def test_python_api_compare_gives_the_closed_forms_at_stride_2():
    frame = mnv2prof.compare(
        variants=["conv", f"{UIB}:uib_ib", f"{UIB}:uib_convnext"], channels=16, resolution=14,
        expansion=4, kernel=3, stride=2, budget=0.05, eager=False,
    )
    assert isinstance(frame, pd.DataFrame)
    assert frame["variant"].tolist() == ["conv", "uib_ib", "uib_convnext"]
    assert frame["macs"].tolist() == [closed_macs("conv", 16, 14, 4, 3, 2),
                                      *(uib_cost(k, 16, 14, 4, 3, 2)[0]
                                        for k in ("uib_ib", "uib_convnext"))]
    assert frame["params"].tolist()[1:] == [uib_cost(k, 16, 14, 4, 3, 2)[1]
                                            for k in ("uib_ib", "uib_convnext")]
    assert frame["input_shape"].tolist() == ["1x16x14x14"] * 3


def test_the_ffn_instance_refuses_stride_2_in_one_line(run_cli):
    code, _, err = run_cli("compare", *SPEC_FLAGS, "--stride", "2", *QUICK,
                           "--variants", f"conv,{UIB}:uib_ffn")
    assert code == 2
    assert "uib_ffn(in_chs=16, out_chs=16, exp_ratio=4, stride=2)" in " ".join(err.split())
    assert "nothing to stride" in " ".join(err.split()) and len(err.strip().splitlines()) == 1


def _counted(file: str, name: str, tmp_path_factory) -> dict:
    """`compare --model examples/FILE:NAME` once (its export then cached for the session), and
    the same model counted in torch: params and FlopCounterMode's MACs (its FLOPs / 2)."""
    reference = f"{EXAMPLES / file}:{name}"
    out = tmp_path_factory.mktemp(name) / "rows.csv"
    code = main(["compare", "--model", reference, *QUICK, "--csv", str(out)])
    assert code == 0
    (row,) = pd.read_csv(out).to_dict("records")
    model = runpy.run_path(str(EXAMPLES / file))[name]().eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    return dict(reference=reference, row=row, torch_macs=counter.get_total_flops() // 2,
                torch_params=sum(p.numel() for p in model.parameters()))


@pytest.fixture(scope="module")
def shufflenet(tmp_path_factory):
    return _counted("shufflenet_v2.py", "shufflenet_v2_x1_0", tmp_path_factory)


@pytest.fixture(scope="module")
def mobilenet_v3(tmp_path_factory):
    return _counted("mobilenet_v3.py", "mobilenet_v3_large", tmp_path_factory)


@pytest.mark.slow  # exports ShuffleNet V2 at 224 (seconds)
def test_shufflenet_v2_has_torchvisions_params_and_macs(shufflenet):
    row = shufflenet["row"]
    assert row["params"] == 2_278_604 == shufflenet["torch_params"]  # torchvision's figure
    assert row["macs"] == 144_907_992 == shufflenet["torch_macs"]
    assert abs(row["macs"] / 145e6 - 1) < 0.01  # torchvision: 0.145 GMACs (0.14 "GFLOPS")
    assert row["variant"] == "shufflenet_v2_x1_0" and row["input_shape"] == "1x3x224x224"
    assert pd.isna(row["unhandled_ops"])


@pytest.mark.slow  # exports MobileNetV3-Large at 224 (seconds)
def test_mobilenet_v3_large_has_torchvisions_params_and_macs(mobilenet_v3):
    row = mobilenet_v3["row"]
    assert row["params"] == 5_483_032 == mobilenet_v3["torch_params"]  # torchvision's figure
    assert row["macs"] == 216_589_760 == mobilenet_v3["torch_macs"]  # the SE's 1x1 convs too
    assert abs(row["macs"] / 217e6 - 1) < 0.01  # torchvision: 0.217 GMACs
    assert pd.isna(row["unhandled_ops"])  # hard-swish, hard-sigmoid, the SE's rescale: counted


@pytest.mark.slow  # exports ShuffleNet V2 again, with its stages' params recorded
def test_network_gives_shufflenet_v2_per_stage(run_cli, tmp_path, shufflenet):
    out = tmp_path / "stages.csv"
    code, stdout, err = run_cli("network", shufflenet["reference"], "--budget", "0.05",
                                "--csv", out)
    assert code == 0, err
    frame = pd.read_csv(out).set_index("stage")
    assert frame.index.tolist() == ["conv1", "maxpool", "stage2", "stage3", "stage4", "conv5",
                                    "fc", "(between stages)", "total"]
    stages, total = frame.iloc[:-1], frame.loc["total"]
    for column in ("params", "macs", "elementwise_ops"):
        assert stages[column].sum() == total[column], column
    assert total["params"] == shufflenet["row"]["params"]
    assert total["macs"] == shufflenet["row"]["macs"]
    assert frame.loc["conv1", "macs"] == 112 * 112 * 24 * 3 * 9  # 3x3 s2, 3 -> 24
    assert frame.loc["conv5", "macs"] == 7 * 7 * 464 * 1024
    assert frame.loc["fc", "macs"] == 1024 * 1000 and frame.loc["fc", "params"] == 1_025_000
    assert frame.loc[["stage2", "stage3", "stage4"], "operator"].tolist() == [
        "Sequential x4", "Sequential x8", "Sequential x4"]  # paper Table 5's repeats
    # only the mean of forward lies between the stages (each unit's chunk is its stage's)
    between = frame.loc["(between stages)"]
    assert between["elementwise_ops"] == 1024 * 7 * 7
    assert between["peak_act_bytes"] == (1024 * 7 * 7 + 1024) * 4
    assert (stages["peak_act_bytes"] <= total["peak_act_bytes"]).all()
