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
