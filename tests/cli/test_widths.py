"""Every command's default output fits the terminal: run at COLUMNS=80 and 100 (stdout and stderr
piped, as in a log), for the built-in blocks, a user's block (examples/uib.py:uib_ib) and a
whole model (examples/shufflenet_v2.py:shufflenet_v2_x1_0), no line of stdout or stderr is wider.

One fixture runs them all once per width (tiny specs and budgets: C=8, 8x8, --budget 0.2); the
tests read its outputs. `report` is left out: its Markdown and LaTeX are documents, whose table
rows are one line each by their syntax.
"""

import contextlib
import io
import os
from pathlib import Path

import pytest

from tests.helpers import SPEC8

pytestmark = pytest.mark.slow  # exports and times (about a minute, cache cold)

WIDTHS = (80, 100)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UIB = f"{EXAMPLES / 'uib.py'}:uib_ib"
MODEL = f"{EXAMPLES / 'shufflenet_v2.py'}:shufflenet_v2_x1_0"
SMALL = (*SPEC8, "--budget", "0.2")
MODEL_SHAPE = ("--shape", "1x3x64x64")
def commands(width: int) -> dict[str, tuple[str, ...]]:
    """Each command as a user would run it first, outputs in the working folder."""
    return {
        "variants": ("variants",),
        "compare": ("compare", *SMALL, "--csv", f"c{width}.csv"),
        "compare, a user's block": ("compare", *SMALL, "--variants", f"conv,dwsep,mbv2,{UIB}"),
        "compare --model": ("compare", "--model", MODEL, *MODEL_SHAPE, "--budget", "0.2",
                            "--no-eager"),
        "compare --model beside blocks": ("compare", *SMALL, "--variants", "conv,dwsep",
                                          "--model", MODEL, *MODEL_SHAPE, "--no-eager"),
        "compare --show all": ("compare", *SMALL, "--show", "all"),
        "compare --precision fp32,int8": ("compare", *SMALL, "--variants", "conv,dwsep,mbv2",
                                          "--precision", "fp32,int8", "--no-eager"),
        "export": ("export", "--out", "onnx", "-c", "8", "-r", "8", "--variants", f"mbv2,{UIB}"),
        "layers": ("layers", "mbv2", "-c", "8", "-r", "8", "--runs", "5"),
        "layers --model": ("layers", "--model", MODEL, *MODEL_SHAPE, "--runs", "3"),
        "baseline": ("baseline", "--out", f"b{width}.csv", *SMALL, "--variants",
                     f"conv,dwsep,{UIB}"),
        "baseline --model": ("baseline", "--out", f"bm{width}.csv", "--model", MODEL,
                             *MODEL_SHAPE, "--budget", "0.2"),
        # a wide tolerance: the view is under test, not this machine's noise at --budget 0.2
        "gate": ("gate", "--baseline", f"b{width}.csv", *SMALL, "--variants",
                 f"conv,dwsep,{UIB}", "--max-slowdown", "4"),
        "profiles": ("profiles",),
        "sweep": ("sweep", "tiny.toml", "--out", f"s{width}.csv"),
        "merge": ("merge", f"s{width}.csv", "--out", f"m{width}.csv"),
        "explain": ("explain", f"c{width}.csv"),
        "plot": ("plot", f"c{width}.csv", "--out", f"f{width}.png"),
        "profile": ("profile", MODEL, *MODEL_SHAPE, "--budget", "0.2"),
        "profile ONNX": ("profile", "onnx/mbv2_c8_r8_e6_k3_s1_b1.onnx", "--budget", "0.2"),
        "network": ("network", "mobilenetv2", "--width", "0.35", "--resolution", "64",
                    "--budget", "0.2"),
        "network, a model": ("network", MODEL, *MODEL_SHAPE, "--budget", "0.2"),
        "memory-table": ("memory-table", "--width", "0.35", "--resolution", "64"),
        "calibrate": ("calibrate", "--budget", "0.1"),
        "guidelines": ("guidelines", "--budget", "0.05"),
    }


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """{(command, width): (exit code, stdout, stderr)}, every command run in-process in one
    folder, stdout and stderr piped (so COLUMNS sets the width)."""
    from mnv2prof.cli import main
    from tests.helpers import tiny_profile

    folder = tmp_path_factory.mktemp("widths")
    tiny_profile(folder)  # tiny.toml: conv and mbv2, 8x8, t = 1, 2
    results = {}
    previous, columns = Path.cwd(), os.environ.get("COLUMNS")
    os.chdir(folder)
    try:
        for width in WIDTHS:
            os.environ["COLUMNS"] = str(width)
            for name, args in commands(width).items():
                out, err = io.StringIO(), io.StringIO()
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    code = main(list(args))
                results[(name, width)] = (code, out.getvalue(), err.getvalue())
    finally:
        os.chdir(previous)
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return results


CASES = [(name, width) for width in WIDTHS for name in commands(width)]


@pytest.mark.parametrize("name, width", CASES, ids=[f"{n}@{w}" for n, w in CASES])
def test_no_line_is_wider_than_the_terminal(outputs, name, width):
    code, out, err = outputs[(name, width)]
    assert code == 0, err
    for stream, text in (("stdout", out), ("stderr", err)):
        lines = text.splitlines()
        widest = max(lines, key=len, default="")
        assert len(widest) <= width, f"{stream}: {len(widest)} > {width}: {widest!r}"
        assert "…" not in text  # no cell cut


def test_the_views_say_what_they_show(outputs):
    """The columns the docs promise, in the default views."""
    for width in WIDTHS:
        model = outputs[("compare --model", width)][1]
        assert "2,278,604" in model  # the model's params, by default (README)
        assert "shufflenet_v2_x1_0 1x3x64x64" in model.splitlines()[0]  # named, with its shape
        title = outputs[("baseline --model", width)][1].splitlines()[0]
        assert title.startswith("baseline shufflenet_v2_x1_0 1x3x64x64, 1 thread(s)")
        assert "wrote 1 baseline row (1 grid point)" in outputs[("baseline --model", width)][2]
        assert "2,278,604" in outputs[("profile", width)][1]
        assert "uib_ib" in outputs[("compare, a user's block", width)][1]


def test_a_wide_view_folds_into_parts_each_with_the_names(outputs):
    out = outputs[("compare --show all", 80)][1]
    parts = [line for line in out.splitlines() if line.startswith("variant ")]
    assert len(parts) >= 3  # the 27 columns in parts of at most 80 characters
    for name in ("conv", "mbv2-nonlinear", "shufflev2"):
        assert sum(line.startswith(name + " ") for line in out.splitlines()) >= len(parts)
