import pandas as pd
import pytest

from tests.helpers import results_csv

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
    from tests.helpers import two_hosts_csv

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


# ---- the figure: labels clear of each other and inside the axes --------------------------------


def _compare_frame():
    """The default compare's rows: the eight variants, three mbv2s at one MACs count and a
    hair apart in latency (the labels that used to print on top of each other)."""
    rows = [("conv", 28_901_376, 0.300), ("dwsep", 4_114_432, 0.070), ("mbv2", 43_954_176, 0.550),
            ("mbv2-nonlinear", 43_954_176, 0.556), ("mbv2-noskip", 43_954_176, 0.548),
            ("resnet", 3_411_968, 0.112), ("fused", 192_675_840, 1.980),
            ("shufflev2", 2_058_240, 0.053)]
    return pd.DataFrame([{"variant": v, "macs": m, "latency_min_ms": ms,
                          "latency_min_spread_rel": 0.004, "latency_median_ms": ms * 1.08}
                         for v, m, ms in rows])


def _sweep_frame():
    """30 rows: mbv2, fused and resnet at t = 1..10 (the expansion-sweep profile's grid)."""
    rows = []
    for variant, fixed, per_t in (("mbv2", 0.12, 0.08), ("fused", 0.1, 0.33),
                                  ("resnet", 0.1, -0.004)):
        for t in range(1, 11):
            macs = {"mbv2": 2e6 + 7.3e6 * t, "fused": 3e7 * t, "resnet": 3.4e6 * (1 + 1 / t)}
            rows.append({"variant": variant, "exp_ratio": t, "macs": int(macs[variant]),
                         "latency_min_ms": fixed + per_t * t + 0.2,
                         "latency_min_spread_rel": 0.01, "latency_median_ms": 0.5 + 0.1 * t})
    return pd.DataFrame(rows)


def _assert_clear(fig):
    from mnv2prof.report.labels import text_boxes

    renderer = fig.canvas.get_renderer()
    boxes = text_boxes(fig)
    figure_box = fig.bbox
    inside = fig.axes[0].get_window_extent(renderer)
    for i, (text, box, is_label) in enumerate(boxes):
        for other, other_box, _ in boxes[i + 1:]:
            assert not box.overlaps(other_box), (text, other)
        where = inside if is_label else figure_box  # labels in the axes, a list in the figure
        assert (where.x0 <= box.x0 and box.x1 <= where.x1 and where.y0 <= box.y0
                and box.y1 <= where.y1), text
    return [text for text, _, is_label in boxes if is_label]


@pytest.mark.parametrize("kind", ["macs-latency", "ratio"])
def test_the_default_compare_figure_names_every_point_clear_of_the_others(kind):
    from mnv2prof.report.plot import figure

    frame = _compare_frame()
    fig = figure(frame, kind)
    labels = _assert_clear(fig)
    assert set(frame["variant"]) <= set(labels)  # each named once, no number needed
    assert fig.axes[0].get_legend() is None  # the labels name the points: no legend repeats them
    if kind == "macs-latency":
        # the diagonals within a factor 3 of the points' own 30-97 GMAC/s, named where they fit
        diagonals = {t for t in labels if t.endswith("GMAC/s")}
        assert len(diagonals) >= 3
        assert diagonals <= {"20 GMAC/s", "50 GMAC/s", "100 GMAC/s", "200 GMAC/s"}
        assert "fastest call" in fig.axes[0].get_ylabel()
    # error bars: the fastest call's spread (0.4%) on each point
    bars = [c for c in fig.axes[0].collections if c.get_segments()]
    assert len(bars) == len(frame)


def test_a_30_row_sweep_figure_labels_every_point_clear_of_the_others():
    from mnv2prof.report.plot import figure

    frame = _sweep_frame()
    fig = figure(frame, "macs-latency")
    labels = _assert_clear(fig)
    names = [f"exp_ratio={t}" for t in range(1, 11)]
    listed = " ".join(t.get_text() for t in fig.texts)  # labels numbered when no room
    for name in names:
        shown = labels.count(name) + listed.count(name + "\n") + listed.endswith(name)
        assert shown == 3, name  # one per variant: on the plot or in the list
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["mbv2", "fused", "resnet"]  # colours name the variants


def test_families_colour_by_family_and_every_suffix_writes_its_format(tmp_path):
    from mnv2prof.report.plot import family, figure, plot

    assert [family(v) for v in ("mbv2-noskip", "mbv2", "uib_ib", "conv")] == [
        "mbv2", "mbv2", "uib", "conv"]
    fig = figure(_compare_frame(), "macs-latency", families=True)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["conv", "dwsep", "mbv2", "resnet", "fused", "shufflev2"]
    _assert_clear(fig)
    frame = _compare_frame()
    assert plot(frame, ".png").startswith(PNG_MAGIC)
    assert plot(frame, ".pdf").startswith(b"%PDF")
    assert b"<svg" in plot(frame, ".svg")[:500]
