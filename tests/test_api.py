"""The Python API: mnv2prof.compare and mnv2prof.profile return the CSV's columns as a
DataFrame, print nothing, and raise the domain exceptions."""

import pandas as pd
import pytest
from torch import nn

import mnv2prof
from mnv2prof.errors import SpecError, UsageError
from mnv2prof.run.records import row_columns

SMALL = dict(channels=8, resolution=8, budget=0.1, eager=False)


class Pointwise(nn.Module):
    """A user's block defined in the caller's own code (a notebook cell)."""

    def __init__(self, in_chs, out_chs):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, 1, bias=False)

    def forward(self, x):
        return self.conv(x)


def test_compare_returns_the_csv_columns_and_prints_nothing(capsys, tmp_path):
    frame = mnv2prof.compare(["conv", Pointwise], **SMALL)
    assert isinstance(frame, pd.DataFrame)
    assert frame["variant"].tolist() == ["conv", "Pointwise"]
    assert set(row_columns()) <= set(frame.columns)
    assert frame["macs"].tolist() == [8 * 8 * 8 * 8 * 9, 8 * 8 * 8 * 8]
    assert frame["params"].tolist()[1] == 64 and frame["latency_ratio_x"].iloc[0] == 1.0
    assert frame["source"].iloc[1].startswith("python:") and len(frame["source_hash"][1]) == 16
    assert capsys.readouterr() == ("", "")


def test_compare_takes_a_file_reference_and_a_baseline(tmp_path):
    path = tmp_path / "blocks.py"
    path.write_text("from torch import nn\n\ndef one(in_chs):\n    return nn.Conv2d(in_chs, "
                    "in_chs, 1)\n")
    frame = mnv2prof.compare([f"{path}:one", "dwsep"], baseline="dwsep", **SMALL)
    assert frame["variant"].tolist() == ["one", "dwsep"]
    assert frame.loc[1, "macs_ratio_x"] == 1.0


def test_profile_takes_a_module_as_it_is():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    frame = mnv2prof.profile(model, shape=(1, 3, 8, 8), budget=0.1)
    (row,) = frame.to_dict("records")
    assert row["variant"] == "Sequential" and row["input_shape"] == "1x3x8x8"
    assert row["params"] == 4 * 3 * 9 + 4 and row["macs"] == 8 * 8 * 4 * 27


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: mnv2prof.compare(["nope"]), SpecError, "unknown variant 'nope'"),
        (lambda: mnv2prof.compare(["conv"], budget=-1), UsageError, "budget must be positive"),
        (lambda: mnv2prof.compare(["conv"], precision="int4"), UsageError, "choose from fp32"),
        (lambda: mnv2prof.compare([]), UsageError, "nothing to measure"),
        (lambda: mnv2prof.profile(42), UsageError, "a model is a path"),
    ],
)
def test_errors_are_the_domain_exceptions(call, error, message, capsys):
    with pytest.raises(error, match=message):
        call()
    assert capsys.readouterr() == ("", "")


def test_gate_against_another_file_returns_the_paired_verdicts(tmp_path, capsys):
    block = ("from torch import nn\n\ndef net(in_chs):\n"
             "    return nn.Conv2d(in_chs, in_chs, 1)\n")
    (tmp_path / "old.py").write_text(block)
    (tmp_path / "new.py").write_text(block)
    frame = mnv2prof.gate(against=f"{tmp_path}/old.py:net", variants=[f"{tmp_path}/new.py:net"],
                          channels=8, resolution=8, budget=0.2, max_slowdown=1.0)
    assert frame["row"].tolist() == ["net"] and frame.attrs["exit_code"] == 0
    assert frame["cost_changes"].tolist() == [0] and frame["rounds_n"].iloc[0] >= 10
    assert capsys.readouterr() == ("", "")
    with pytest.raises(UsageError, match="one of them"):
        mnv2prof.gate(variants=["conv"])
