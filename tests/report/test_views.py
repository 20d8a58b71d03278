"""The default views fit a terminal: rendered at 80, 100 and 120 columns, no row wraps and no cell
is cut at 100 or more; `--show` groups add columns; the chart draws both bars on one scale."""

import numpy as np
import pytest
from rich.console import Console

from mnv2prof.count.cost import CountedCost
from mnv2prof.errors import UsageError
from mnv2prof.measure.env import current_environment
from mnv2prof.measure.latency import Measurement
from mnv2prof.measure.layers import LayerRow
from mnv2prof.models.variants import BlockSpec
from mnv2prof.report.chart import contrast_chart
from mnv2prof.report.console import compare_table, layers_frame, layers_table
from mnv2prof.report.views import COMPARE_GROUPS, parse_show
from mnv2prof.run.frame import records_frame
from mnv2prof.run.records import Record

# (label, variant, chunks, MACs, peak bytes, median ms): the compare defaults' magnitudes
ROWS = [
    ("conv", "conv", 1, 28_901_376, 802_816, 0.706), ("dwsep", "dwsep", 1, 4_114_432, 802_816, 0.191),
    ("mbv2", "mbv2", 1, 43_954_176, 5_218_304, 1.48),
    ("mbv2-nonlinear", "mbv2-nonlinear", 1, 43_954_176, 5_218_304, 1.47),
    ("mbv2-noskip", "mbv2-noskip", 1, 43_954_176, 4_816_896, 1.43),
    ("resnet", "resnet", 1, 3_411_968, 1_204_224, 0.245),
    ("fused", "fused", 1, 192_675_840, 5_218_304, 14.665),
    ("shufflev2", "shufflev2", 1, 2_058_240, 802_816, 0.170),
    ("mbv2-streamed/k6", "mbv2-streamed", 6, 43_954_176, 1_605_632, 12.3456),
]  # fmt: skip


def _records():
    env = current_environment()
    records = []
    for label, variant, chunks, macs, peak, ms in ROWS:
        samples = tuple(ms * (1 + 0.05 * np.sin(i)) for i in range(20))
        cost = CountedCost(1_234_567, macs, 2_000_000, peak, 250_000, 20_000_000, "", 9)
        mins = tuple(0.95 * x for x in samples)
        records.append(Record(BlockSpec(variant, chunks=chunks), cost,
                              Measurement(samples, 1, mins), 1,
                              env, eager=Measurement(samples), measured_peak_bytes=peak))
    return records


def rendered(table, width):
    console = Console(width=width, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def assert_fits(text, width):
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width, max(lines, key=len)
    assert "…" not in text  # rich's mark of a cut cell


@pytest.mark.parametrize("width", [80, 100, 120])
def test_the_default_compare_view_fits_with_every_number_whole(width):
    frame = records_frame(_records(), "conv")
    text = rendered(compare_table(frame, "C=32 56x56 t=6, onnxruntime CPU", "conv"), width)
    assert_fits(text, width)
    names = ("conv", "dwsep", "mbv2", "resnet", "fused", "shufflev2")
    rows = [line for line in text.splitlines() if line.split() and line.split()[0].startswith(names)]
    assert len(rows) == 9  # one line per row: none wrapped, no second table
    assert "mbv2-streamed (6 chunks)" in text
    # the fastest call, the median beside it, each to 3 decimals (the column's smallest, 0.162
    # ms, keeps 3 significant digits so); the ratio of fastest calls with its interval
    for median, fastest in zip(frame["latency_median_ms"], frame["latency_min_ms"], strict=True):
        assert f"{median:,.3f}" in text and f"{fastest:,.3f}" in text
    for ratio in frame["latency_ratio_x"]:
        assert f"{ratio:.{3 if ratio < 10 else 1}f} ±" in text
    for header in ("(M)", "peak act", "(KiB)", "latency", "min (ms)", "median", "(x conv)"):
        assert header in text
    assert "95% CI" not in text  # the median's CI is one --show stats away


def test_at_50_columns_the_compare_view_folds_and_repeats_the_names():
    frame = records_frame(_records(), "conv")
    text = rendered(compare_table(frame, "C=32 56x56 t=6, onnxruntime CPU", "conv"), 50)
    assert_fits(text, 50)
    lines = text.splitlines()
    parts = sum(line.startswith("variant ") for line in lines)
    assert parts >= 2
    for name in ("conv", "shufflev2", "mbv2-nonli~1", "mbv2-strea~2"):  # in each part
        assert sum(line.startswith(name + " ") for line in lines) == parts, name
    legend = " ".join(text[text.index("names shortened:"):].split())
    assert legend == ("names shortened: mbv2-nonli~1 = mbv2-nonlinear; mbv2-strea~2 = "
                      "mbv2-streamed (6 chunks).")
    conv = [line.split() for line in lines if line.startswith("conv ")]
    assert conv[0][:2] == ["conv", "28.90"]  # the columns in order, part after part
    assert conv[-1][-3:] == ["1.000", "±", "0.000"]


def test_a_long_name_is_shortened_just_enough_to_fit_one_table():
    frame = records_frame(_records(), "conv")
    text = rendered(compare_table(frame, "t", "conv"), 80)  # 2 columns too many, whole
    assert_fits(text, 80)
    assert "mbv2-streamed (6~1 " in text and "mbv2-nonlinear " in text  # 18 of 24 kept
    assert text.count("variant") == 1  # one table
    assert "names shortened: mbv2-streamed (6~1 = mbv2-streamed (6 chunks)." in text


def test_show_adds_the_groups_and_all_adds_every_group():
    frame = records_frame(_records(), "conv")
    default = rendered(compare_table(frame, "t", "conv"), 400)
    with_stats = rendered(compare_table(frame, "t", "conv", parse_show("stats", COMPARE_GROUPS)), 400)
    everything = rendered(compare_table(frame, "t", "conv", parse_show("all", COMPARE_GROUPS)), 400)
    assert "IQR" not in default and "IQR" in with_stats and "intensity" not in with_stats
    for header in ("params", "measured", "elem ops", "intensity", "IQR", "rounds", "bound",
                   "eager"):
        assert header in everything
    with pytest.raises(UsageError, match="--show nope: choose from memory, traffic, stats"):
        parse_show("stats,nope", COMPARE_GROUPS)


@pytest.mark.parametrize("width", [100, 120])
def test_the_layers_view_fits(width):
    rows = [LayerRow("node_Conv_%d_hardtanh_nchwc" % i, "Conv", "conv_pw", ("a",), 19_267_584,
                     2_835_000, 0.6185) for i in range(4)]
    text = rendered(layers_table(layers_frame(rows), "mbv2: nodes onnxruntime runs"), width)
    assert_fits(text, width)
    assert "hardtanh" not in text  # node names are one --show away


@pytest.mark.parametrize("width", [100, 120])
def test_the_gate_view_fits(width):
    from mnv2prof.gating import decide as gate
    from mnv2prof.report.gate_report import verdict_table
    from tests.helpers import POLICY, frame, tight

    base = frame({v: tight(1.0 + i) for i, v in enumerate(("conv", "dwsep", "mbv2", "fused"))})
    result = gate.decide(base, base, POLICY, relative_to="conv")
    assert_fits(rendered(verdict_table(result), width), width)


def test_the_chart_puts_both_bars_on_one_log_scale_around_1x():
    chart = contrast_chart([("conv", 1.0, 1.0), ("dwsep", 0.14, 0.27), ("fused", 6.67, 6.5)],
                           "conv")
    text = rendered(chart, 100)
    assert_fits(text, 100)
    lines = {tuple(line.split()[:2]): line for line in text.splitlines() if "█" in line}
    dwsep_macs = lines[("dwsep", "MACs")].count("█")
    dwsep_latency = next(v for k, v in lines.items() if k[0] == "latency" and "0.27x" in v)
    assert dwsep_macs > dwsep_latency.count("█") > 1  # fewer MACs than it saves in time
    conv = next(line for line in text.splitlines() if line.split()[:2] == ["conv", "MACs"])
    one = conv.index("│")  # conv's bars are the 1x line alone
    assert "█" not in conv
    assert lines[("dwsep", "MACs")].rstrip().rindex("█") == one - 1  # dwsep's end beside it
    assert lines[("fused", "MACs")].index("█") == one + 1  # fused's start beside it, rightwards
    assert "multiples of conv's, log scale" in text


@pytest.mark.parametrize("width", [100, 120])
def test_the_deployment_view_is_one_line_per_block_and_fits(width):
    import pandas as pd

    from mnv2prof.report.deploy_report import deployment_table

    rows = []
    for _, variant, _, macs, _, ms in ROWS[:8]:
        for runtime, scale in (("onnxruntime", 1.0), ("executorch", 1.2)):
            for precision, factor in (("fp32", 1.0), ("int8", 0.7)):
                rows.append({"variant": variant, "macs": macs, "runtime": runtime,
                             "precision": precision, "latency_median_ms": ms * scale * factor,
                             "latency_unstable": precision == "int8",
                             "int8_speedup_x": 1 / 0.7 if precision == "int8" else None,
                             "int8_sqnr_db": 30.0 if precision == "int8" else None})
    text = rendered(deployment_table(pd.DataFrame(rows), "C=32 56x56"), width)
    assert_fits(text, width)
    lines = [line.split() for line in text.splitlines()]
    for _, variant, *_ in ROWS[:8]:
        [cells] = [c for c in lines if c[:1] == [variant]]  # one line per block
        assert cells[-1] == "1.43" and cells.count("!") == 2  # int8 cells marked unstable
    for header in ("ORT fp32", "ORT int8", "ET fp32", "ET int8", "speedup (x)"):
        assert header in text
    assert "SQNR" not in text  # the accuracy group is shown on request (--show accuracy)


# ---- the fitting rules, on their own -------------------------------------------------------------


def test_titles_break_between_phrases_never_inside_one():
    from mnv2prof.report.views import phrase_lines, phrases

    title = "C=32 56x56 t=6 k=3 s=1 N=1, onnxruntime CPU, 1 thread(s), cache warm, ratios of min"
    assert phrase_lines(title, 100) == [title]
    assert phrase_lines(title, 80) == [
        "C=32 56x56 t=6 k=3 s=1 N=1, onnxruntime CPU, 1 thread(s), cache warm,", "ratios of min"]
    assert phrase_lines(title, 40) == ["C=32 56x56 t=6 k=3 s=1 N=1,",
                                       "onnxruntime CPU, 1 thread(s),", "cache warm, ratios of min"]
    # a parenthesis is one phrase; a phrase longer than the line breaks between words
    assert phrases("mbv2: nodes onnxruntime runs (CPU, 1 thread(s)), median of 50 runs") == [
        "mbv2:", "nodes onnxruntime runs (CPU, 1 thread(s)),", "median of 50 runs"]
    assert phrase_lines("a very long phrase without any comma in it", 20) == [
        "a very long phrase", "  without any comma", "  in it"]


def test_fold_repeats_the_keys_and_keeps_the_order():
    from mnv2prof.report.views import fold

    widths = [10, 8, 8, 8, 30, 8]  # the key, then five columns, 2 spaces between
    assert fold(widths, 1, 82) == [[0, 1, 2, 3, 4, 5]]  # 72 + 2 x 5 = 82: one line
    assert fold(widths, 1, 81) == [[0, 1, 2, 3, 4], [0, 5]]
    assert fold(widths, 1, 40) == [[0, 1, 2, 3], [0, 4], [0, 5]]
    assert fold(widths, 1, 20) == [[0, 1], [0, 2], [0, 3], [0, 4], [0, 5]]  # 30 alone: its own
    assert fold(widths, 2, 40) == [[0, 1, 2, 3], [0, 1, 4], [0, 1, 5]]


def test_any_rich_table_becomes_a_view_that_folds():
    from rich.table import Table

    from mnv2prof.report.views import as_view

    table = Table(title="G1, onnxruntime CPU, 1 thread(s); 1 MAC = 1 multiply-accumulate")
    table.add_column("block")
    for header in ("MACs (M)", "params", "bytes moved (MiB)", "latency median (ms)"):
        table.add_column(header, justify="right")
    table.add_row("c1=c2", "1.00", "1,024", "0.50", "[bold]0.123[/]")
    table.add_row("c1=4c2", "1.00", "1,024", "0.70", "0.150", end_section=True)
    table.add_row("total", "2.00", "2,048", "1.20", "0.273")
    view = as_view(table)
    assert view.headers[0] == "block" and view.column("latency median (ms)") == [
        "0.123", "0.150", "0.273"]
    assert view.sections == {1}
    text = rendered(view, 40)
    assert_fits(text, 40)
    assert text.splitlines()[:2] == ["G1, onnxruntime CPU, 1 thread(s);",
                                     "1 MAC = 1 multiply-accumulate"]
    assert sum(line.startswith("c1=4c2 ") for line in text.splitlines()) == 3  # 3 parts


def test_the_gate_table_leads_with_the_fastest_calls_and_names_what_the_verdict_reads():
    from mnv2prof.gating import decide as gate
    from mnv2prof.report.gate_report import gate_headline, markdown_summary, verdict_table
    from tests.helpers import POLICY, frame, tight

    base = frame({"conv": tight(1.0), "dwsep": tight(0.25)})
    current = frame({"conv": tight(1.0, seed=1), "dwsep": tight(0.30, seed=1)})
    base = base.assign(latency_min_ms=[0.900, 0.200], latency_min_spread_rel=[0.01, 0.02])
    current = current.assign(latency_min_ms=[0.909, 0.230], latency_min_spread_rel=[0.01, 0.02])
    result = gate.decide(base, current, POLICY)
    headline = gate_headline(base, current)
    assert headline["dwsep"].ratio_x == pytest.approx(1.15)  # 0.230 / 0.200
    assert headline["dwsep"].low_x == pytest.approx(1.15 * 0.98 / 1.02)
    view = verdict_table(result, headline=headline)
    assert view.headers[1:4] == ["baseline\nmin (ms)", "current\nmin (ms)", "min\nratio (x)"]
    assert "median\nratio (x)" in view.headers and "baseline\nmedian (ms)" not in view.headers
    assert view.column("min\nratio (x)")[1] == "1.150 ± 0.047"
    assert "the verdict reads the ratio of medians" in view.title
    text = rendered(view, 80)
    assert_fits(text, 80)
    assert "| baseline min (ms) | current min (ms) | min ratio (x) |" in markdown_summary(
        result, headline)
    # without the fastest calls (a baseline from before them): the medians, and the title says
    plain = verdict_table(result)
    assert "baseline\nmedian (ms)" in plain.headers and "min = " not in plain.title
