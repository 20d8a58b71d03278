import pandas as pd

from tests.report.test_paper import results_csv

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_macs_latency_figure(run_cli, tmp_path):
    out = tmp_path / "macs.png"
    code, _, err = run_cli("plot", results_csv(tmp_path), "--out", out)
    assert code == 0, err
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_sweep_figure_finds_the_swept_column(run_cli, tmp_path):
    out = tmp_path / "sweep.svg"
    code, _, err = run_cli("plot", results_csv(tmp_path), "--out", out, "--kind", "sweep")
    assert code == 0, err
    assert "<svg" in out.read_text()[:500] and "exp_ratio" in out.read_text()


def test_sweep_figure_needs_x_when_two_columns_vary(run_cli, tmp_path):
    path = results_csv(tmp_path)
    frame = pd.read_csv(path)
    frame["resolution"] = [8, 16, 8, 16]
    frame.to_csv(path, index=False)
    code, _, err = run_cli("plot", path, "--out", tmp_path / "s.png", "--kind", "sweep")
    assert code == 2 and "--x is needed: the rows vary in resolution, exp_ratio" in err
    code, _, err = run_cli("plot", path, "--out", tmp_path / "s.png", "--kind", "sweep",
                           "--x", "exp_ratio")
    assert code == 0, err


def test_bad_plot_input_one_line_exit_2(run_cli, tmp_path):
    path = results_csv(tmp_path)
    for args, message in [
        (("--out", tmp_path / "f.jpg"), "give a file ending in .png, .pdf, .svg"),
        (("--out", tmp_path / "f.png", "--kind", "bars"), "--kind 'bars': choose from"),
        (("--out", tmp_path / "no" / "f.png"), "does not exist"),
        (("--out", tmp_path / "f.png", "--kind", "sweep", "--x", "nope"), "--x 'nope'"),
    ]:
        code, _, err = run_cli("plot", path, *args)
        assert code == 2 and message in err, err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "f.png").exists()


def test_two_hosts_are_separate_series(run_cli, tmp_path):
    from tests.report.test_paper import two_hosts_csv

    path = two_hosts_csv(tmp_path)
    out = tmp_path / "hosts.svg"
    code, _, err = run_cli("plot", path, "--out", out)
    assert code == 0, err
    text = out.read_text()
    for label in ("@ alpha", "@ beta", "conv", "mbv2"):  # colours by variant, markers by host
        assert label in text
    # the sweep figure still finds its one swept column: hosts are series, not the x axis
    out = tmp_path / "sweep.svg"
    code, _, err = run_cli("plot", path, "--out", out, "--kind", "sweep")
    assert code == 0, err
    assert "conv host=alpha: latency" in out.read_text()
