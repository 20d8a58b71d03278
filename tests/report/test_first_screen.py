"""The first screen right (issue 24): the streamed block streams by default, the chart's log axis
near 1x, help texts that keep their square brackets, notes wrapped to the terminal."""

import re

import click
import pytest
import typer

from mnv2prof.cli import app

# ---- help texts: every option's and argument's help, and every command's, as written ----------


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def _words(text: str) -> str:
    """Text with the help panels' box characters dropped and whitespace collapsed."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _help_texts():
    """(command path, text as written, id) for every command's docstring and every parameter's
    help; a `\\[` in the source is rich markup's escape of `[`, shown as `[`."""
    root = typer.main.get_command(app)
    for path, command in _commands(root):
        texts = [("docstring", command.help or "")]
        texts += [(param.name, getattr(param, "help", None) or "") for param in command.params]
        for name, text in texts:
            if text.strip():
                yield path, text.replace("\\[", "["), f"{' '.join(path)}:{name}"


HELP_TEXTS = list(_help_texts())


def test_the_help_check_covers_the_bracketed_texts():
    by_id = {key: text for _, text, key in HELP_TEXTS}
    assert "pip install 'mnv2prof[mobile]'" in by_id["compare:runtime"]
    assert "pip install 'mnv2prof[ray]'" in by_id["sweep:ray"]
    assert "the profile's [measure] cache" in by_id["sweep:cache"]
    assert len({path for path, _, _ in HELP_TEXTS}) >= 15  # every command


@pytest.fixture
def wide_help(monkeypatch):
    """Help rendered on one line per option, so a help text is never split by the panel."""
    import typer.rich_utils

    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 5000)


@pytest.mark.parametrize("path, text", [(p, t) for p, t, _ in HELP_TEXTS],
                         ids=[key for _, _, key in HELP_TEXTS])
def test_help_text_shown_as_written(run_cli, wide_help, path, text):
    code, out, err = run_cli(*path, "--help")
    assert code == 0, err
    assert _words(text) in _words(out)


# ---- the streamed block streams by default: t chunks, the paper's t pieces ----------------------


def test_streamed_default_is_t_chunks_and_chunks_override():
    from mnv2prof.models.variants import BlockSpec, default_chunks, with_chunks

    specs = [BlockSpec("mbv2"), BlockSpec("mbv2-streamed"), BlockSpec("mbv2-streamed", 8,
                                                                      exp_ratio=4)]
    assert [default_chunks(s) for s in specs] == [1, 6, 4]
    assert [s.chunks for s in with_chunks(specs)] == [1, 6, 4]
    assert [s.chunks for s in with_chunks(specs, (1, 2))] == [1, 1, 2, 1, 2]
    assert with_chunks([BlockSpec("mbv2-streamed", exp_ratio=1)])[0].chunks == 1  # nothing to split


C, R, T = 8, 8, 6
SMALL = ("--channels", C, "--resolution", R, "--budget", "0.05", "--no-eager")


def test_compare_streams_in_t_chunks_by_default(run_cli, tmp_path):
    import pandas as pd

    from mnv2prof.models.variants import BlockSpec

    csv = tmp_path / "rows.csv"
    code, out, err = run_cli("compare", *SMALL, "--variants", "mbv2,mbv2-streamed",
                             "--baseline", "mbv2", "--csv", csv)
    assert code == 0, err
    frame = pd.read_csv(csv)
    assert frame["chunks"].tolist() == [1, T]
    streamed = BlockSpec("mbv2-streamed", C, resolution=R, chunks=T)
    assert frame.loc[1, "spec"] == f"mbv2-streamed_c{C}_r{R}_e{T}_k3_s1_b1_p{T}" == streamed.name
    assert frame.loc[1, "spec_hash"] == streamed.digest(1)  # 1 thread
    # fp32 static peaks: mbv2's whole expansion (conv and ReLU6 outputs) and its input; the
    # streamed block's input, two partial sums and their sum (docs/networks.md)
    assert frame["peak_act_bytes"].tolist() == [4 * R * R * (2 * T * C + C), 4 * R * R * 4 * C]
    assert frame["macs"].nunique() == 1
    assert f"mbv2-streamed ({T} chunks)" in out
    # --baseline names the default row as mbv2-streamed/kT
    code, out, err = run_cli("compare", *SMALL, "--variants", "mbv2-streamed",
                             "--baseline", f"mbv2-streamed/k{T}")
    assert code == 0, err


# ---- the MACs-against-latency chart: bars proportional to log(ratio), axis at least 0.5x-2x -----


def _chart_text(rows, baseline, width):
    from rich.console import Console

    from mnv2prof.report.chart import contrast_chart

    console = Console(width=width, record=True, color_system=None)
    console.print(contrast_chart(rows, baseline))
    return console.export_text()


def test_near_1x_the_axis_is_half_to_twice_and_bars_are_short():
    from mnv2prof.report.chart import LogAxis

    # mbv2, mbv2-nonlinear, mbv2-noskip against mbv2: the 0.99x ... 1xx axis
    axis = LogAxis.spanning([1.0, 1.0, 1.0, 0.99, 1.0, 1.02], 61)
    assert (axis.low, axis.high, axis.one) == (0.5, 2.0, 30)
    assert axis.labels() == "0.5x" + " " * 25 + "1x" + " " * 28 + "2x"
    assert axis.bar(1.0) == (31, 0) and axis.bar(0.99) == (30, 0)  # under half a cell
    assert axis.bar(1.02) == (31, 1)  # log10(1.02) x 60 / log10(4) = 0.86 cells
    assert axis.bar(0.5) == (0, 30) and axis.bar(2.0) == (31, 30)  # a factor 2 is half the axis


def test_the_axis_widens_to_1_2_5_values_and_bars_stay_proportional():
    from mnv2prof.report.chart import LogAxis

    axis = LogAxis.spanning([1.0, 0.14, 0.27, 6.67, 6.5], 81)
    assert (axis.low, axis.high, axis.one, axis.cells_per_decade) == (0.1, 10.0, 40, 40.0)
    # 0.5x centred on cell 28 (log10 5 x 40 = 27.96), 2x on 52, 1x on 40
    assert axis.labels() == ("0.1x" + " " * 22 + "0.5x" + " " * 9 + "1x" + " " * 10 + "2x"
                             + " " * 25 + "10x")
    assert axis.bar(0.14) == (6, 34)  # |log10 0.14| x 40 = 34.2
    assert axis.bar(6.67) == (41, 33)  # log10 6.67 x 40 = 33.0
    assert axis.bar(0.1) == (0, 40) and axis.bar(10.0) == (41, 40)  # to the axis' ends
    assert LogAxis.spanning([0.3, 3.0], 50).labels().split() == ["0.2x", "0.5x", "1x", "2x", "5x"]
    wide = LogAxis.spanning([0.004, 300.0], 70)
    assert (wide.low, wide.high) == (0.002, 500.0)
    assert wide.labels().split() == ["0.002x", "0.01x", "0.1x", "1x", "2x", "10x", "100x",
                                     "500x"]  # 0.5x would crowd 1x


@pytest.mark.parametrize("ratios", [[1.0, 0.99, 1.02], [1.0, 0.999, 1.001], [1.0, 0.5, 2.0],
                                    [1.0, 0.14, 6.67], [1.0, 1.0], [1.0, 0.01, 150.0]])
@pytest.mark.parametrize("width", [40, 80, 100])
def test_every_axis_reads_1x_once_with_well_formed_labels(ratios, width):
    from mnv2prof.report.chart import LogAxis

    axis = LogAxis.spanning(ratios, width)
    line = axis.labels()
    assert len(line) == width
    tokens = line.split()
    assert tokens.count("1x") == 1 and tokens[0] != "1x" != tokens[-1]
    assert all(re.fullmatch(r"\d+(\.\d+)?x", t) for t in tokens), tokens
    values = [float(t[:-1]) for t in tokens]
    assert values == sorted(values) and values[0] <= 0.5 and values[-1] >= 2
    one = re.search(r"(?<![\d.])1x", line).start()
    assert one in (axis.one - 1, axis.one)  # centred on the 1x line


def test_the_chart_of_near_equal_rows_is_near_empty():
    rows = [("mbv2", 1.0, 1.0), ("mbv2-nonlinear", 1.0, 0.99), ("mbv2-noskip", 1.0, 1.02)]
    text = _chart_text(rows, "mbv2", 100)
    lines = text.splitlines()
    assert lines[0].split() == ["0.5x", "1x", "2x"]
    assert all(len(line) <= 100 for line in lines)
    bars = [line for line in lines if line.rstrip().endswith("x") and "│" in line]
    assert len(bars) == 6
    assert sum(line.count("█") for line in bars) == 1  # the 1.02x latency, one cell
    assert len({line.index("│") for line in bars}) == 1  # one 1x line


# ---- notes under the tables, wrapped to the terminal ---------------------------------------------


@pytest.fixture
def columns_80(monkeypatch):
    """stdout as a pipe with COLUMNS=80 sees it (cli.app builds its console at import)."""
    import importlib
    import sys

    from rich.console import Console

    cli_app = importlib.import_module("mnv2prof.cli.app")  # the module: cli's `app` is the Typer

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(cli_app, "stdout", Console(width=cli_app._width(sys.stdout)))
    assert cli_app.stdout.width == 80


def test_a_note_wraps_at_spaces_indents_and_keeps_brackets_and_paths(columns_80, capsys):
    from mnv2prof.cli.app import note

    path = "/very/long/" + "folder/" * 14 + "file.csv"  # 109 characters: one word
    text = ("! unstable timing (the 95% CI of the median is wider than +-2% of it when the budget "
            "ran out): mbv2-nonlinear, mbv2-streamed (6 chunks); the profile's [grid] and "
            f"[measure] tables; {path} kept whole.")
    note(text)
    note("  an indented note " + "word " * 30)
    note("short")
    lines = capsys.readouterr().out.splitlines()
    long_words = [line for line in lines if len(line) > 80]
    assert long_words == [f"  {path}"]  # a word longer than the line, left whole
    first = lines[: lines.index(f"  {path}") + 2]
    assert first[0].startswith("! unstable") and all(line.startswith("  ") for line in first[1:])
    assert " ".join(" ".join(first).split()) == text  # every word, in order, brackets kept
    assert "mbv2-streamed (6" in " ".join(first) and "mbv2-\n" not in "\n".join(first)
    indented = lines[len(first):-1]
    assert indented[0].startswith("  an indented") and len(indented) > 1
    assert all(line.startswith("    word") for line in indented[1:])
    assert lines[-1] == "short"


def test_compare_notes_fit_80_columns(run_cli, columns_80):
    code, out, err = run_cli("compare", *SMALL, "--variants", "conv,dwsep,mbv2")
    assert code == 0, err
    lines = out.splitlines()
    # the table is printed at its own width; from the first note on, nothing passes 80
    notes = lines[next(i for i, line in enumerate(lines) if line.startswith("1 MAC = 1")):]
    assert max(len(line) for line in notes) <= 80, max(notes, key=len)
    words = " ".join(" ".join(notes).split())
    assert "Spearman rank correlation between MACs and latency: rho = " in words
    assert "harness floor: " in words and "the part of every latency that is the call itself" in words
    assert any(line.startswith("  ") for line in notes)  # a wrapped note's continuation
