"""Values that slipped past the checks (issue 31, part 8): each is one line and exit 2 on the
command line, and a UsageError (never Python's own error) in the API."""

import pytest

import mnv2prof
from mnv2prof.errors import UsageError
from tests.helpers import QUICK_NO_EAGER

TINY = QUICK_NO_EAGER


def _one_line(result, *fragments):
    code, out, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, out + err
    assert len(lines) == 1 and lines[0].startswith("mnv2prof: error: "), err
    for fragment in fragments:
        assert fragment in " ".join(err.split()), err


@pytest.mark.parametrize("args, fragment", [
    (("compare", *TINY, "--variants", "mbv2-streamed", "--chunks", "\u00b2"), "--chunks"),
    (("compare", *TINY, "--model", "examples/uib.py:uib_ib", "--shape", "1x8x1\u00b2x14"),
     "is not a positive integer dim"),
    (("compare", *TINY, "--threads", "2147483648"), "--threads must be at most"),
    (("layers", "conv", "--channels", "8", "--resolution", "8", "--runs", "2147483648"),
     "--runs must be at most 10,000"),
    (("network", "mobilenetv1", "--width", "1e300", "--budget", "0"),
     "width must be between 0.05 and 10"),
    (("network", "mobilenetv1", "--width", "1e-300", "--budget", "0"),
     "width must be between 0.05 and 10"),
    (("memory-table", "--resolution", "1000000000"), "resolution must be from 32"),
    (("sweep", "expansion-sweep", "--out", "x.csv", "--shard", " 1/2"),
     "--shard must be K/N"),
])
def test_a_number_past_the_limit_is_one_line(run_cli, args, fragment):
    _one_line(run_cli(*args), fragment)


def test_a_path_with_markup_is_printed_as_it_is(run_cli, tmp_path):
    out = tmp_path / "o[red]x[b].csv"
    code, _, err = run_cli("compare", *TINY, "--variants", "conv", "--csv", out)
    assert code == 0, err
    assert "o[red]x[b].csv" in err and out.is_file()


@pytest.mark.parametrize("call, message", [
    (lambda: mnv2prof.compare(["conv"], precision=None), "precision None: choose from"),
    (lambda: mnv2prof.compare(["conv"], precision=5), "precision 5: choose from"),
    (lambda: mnv2prof.compare(["conv"], threads=2**31), "threads must be at most"),
    (lambda: mnv2prof.compare(["conv"], seed=-1), "seed must be at least 0"),
    (lambda: mnv2prof.compare(["conv"], seed=2**64), "seed must be at most"),
    (lambda: mnv2prof.compare(["conv"], seed=1.5), "seed must be an integer"),
    (lambda: mnv2prof.compare(["conv"], budget=1e308), "budget must be at most 3600"),
    (lambda: mnv2prof.compare(["conv"], budget=True), "budget must be a number of seconds"),
    (lambda: mnv2prof.compare(["conv"], budget=3601), "budget must be at most 3600"),
    (lambda: mnv2prof.profile("examples/uib.py:uib_ib", shape=(1, 3, 16.5, 16)), "shape"),
    (lambda: mnv2prof.compare(["conv"], in_chs=8), "unknown word 'in_chs'"),
])
def test_the_api_raises_usage_errors_for_bad_arguments(call, message, capsys, tmp_path,
                                                       monkeypatch):
    monkeypatch.setenv("MNV2PROF_CACHE", str(tmp_path))
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        call()
    assert capsys.readouterr() == ("", "")
    assert not list(tmp_path.rglob("*.onnx"))  # refused before any export
