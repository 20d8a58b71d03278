import pandas as pd
import pytest

from mnv2prof.count.cost import CountedCost
from mnv2prof.errors import UsageError
from mnv2prof.files.atomic import write_atomic
from mnv2prof.measure.env import current_environment
from mnv2prof.measure.latency import Measurement
from mnv2prof.models.variants import VARIANTS, BlockSpec
from mnv2prof.report.console import (
    compare_table,
    measurement_notes,
    rank_agreement,
    table_notes,
)
from mnv2prof.run.frame import records_frame
from mnv2prof.run.records import Record


def _subject(label):
    """A built-in block's spec, or a user's block's named `label`."""
    if label in VARIANTS:
        return BlockSpec(label)
    return BlockSpec(label, source=f"/x/blocks.py:{label}", source_hash="0" * 16)


def _record(label, macs, latency_ms):
    cost = CountedCost(1, macs, 0, 100, 10, 1000, "")
    return Record(_subject(label), cost, Measurement((latency_ms,) * 5), 1, current_environment())


def test_ratios_against_the_baseline():
    frame = records_frame([_record("conv", 100, 2.0), _record("mbv2", 150, 3.0)], "conv")
    assert frame["macs_ratio_x"].tolist() == [1.0, 1.5]
    assert frame["latency_ratio_x"].tolist() == [1.0, 1.5]
    with pytest.raises(UsageError, match=r"--baseline 'x' is not among the rows \(conv\)"):
        records_frame([_record("conv", 100, 2.0)], "x")


def test_every_metric_column_names_its_unit():
    frame = records_frame([_record("conv", 100, 2.0)], "conv")
    for column in ("macs", "flops", "params", "peak_act_bytes", "weight_bytes", "bytes_moved",
                   "latency_median_ms", "latency_iqr_ms", "gmacs_per_s", "macs_ratio_x",
                   "latency_ratio_x", "arith_intensity_flop_per_byte", "elementwise_ops"):
        assert column in frame.columns
    assert {"env_cpu_model", "env_torch", "env_onnxruntime", "env_onnx", "env_timestamp",
            "env_cpu_cores", "threads"} <= set(frame.columns)


def test_rank_agreement_finds_the_disagreeing_pair():
    frame = records_frame(
        [_record("a", 100, 1.0), _record("b", 200, 2.0), _record("fused", 400, 1.5)]
    )
    agreement = rank_agreement(frame)
    assert agreement.rho == pytest.approx(0.5)
    assert agreement.disagreements[0] == ("fused", "b")
    notes = table_notes(frame)
    assert "rho = 0.50 over 3 blocks" in notes[0]
    assert "fused has 2.0x the MACs of b yet takes 0.75x its latency." in notes


def test_write_atomic_refuses_missing_folder_and_leaves_nothing(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        write_atomic(tmp_path / "missing" / "x.csv", "a")
    write_atomic(tmp_path / "x.csv", "a,b\n1,2\n")
    assert pd.read_csv(tmp_path / "x.csv").to_dict("records") == [{"a": 1, "b": 2}]
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]


def test_table_shows_ci_eager_bytes_and_intensity_and_notes_the_floor():
    from rich.console import Console

    from mnv2prof.report.console import compare_table

    samples = tuple(1.0 + 0.001 * i for i in range(100))
    record = Record(BlockSpec("conv"),
                    CountedCost(1, 1000, 0, 100, 10, 3 * 2**20, ""), Measurement(samples), 1,
                    current_environment(), eager=Measurement(samples), measured_peak_bytes=2048)
    frame = records_frame([record], "conv")
    row = frame.iloc[0]
    assert (row["latency_ci_low_ms"], row["latency_ci_high_ms"]) == (1.039, 1.06)
    assert not row["latency_unstable"] and row["eager_n"] == 100
    table = compare_table(frame, "t", "conv", frozenset({"memory", "traffic", "eager"}))
    cells = {header: table.column(header) for header in table.headers}
    assert cells["bytes moved\n(MiB)"] == ["3.00"]  # 3 MiB moved, in its own column
    assert cells["measured\npeak (KiB)"] == ["2.0"] and cells["eager\nmedian (ms)"] == ["1.050"]
    console = Console(width=240, record=True)
    console.print(table)
    text = console.export_text()
    for header in ("bytes moved", "intensity", "eager", "measured"):
        assert header in text
    floor = Measurement((0.01,) * 20)
    notes = table_notes(frame, floor)
    assert "harness floor: 0.0100 ms (median of 20 rounds" in notes[-1]
    assert not any("unstable" in n for n in notes)


def _timed(label, macs, mins, samples=None):
    cost = CountedCost(1, macs, 0, 100, 10, 1000, "")
    mins = tuple(mins)
    m = Measurement(tuple(samples or [x * 1.1 for x in mins]), 1, mins)
    return Record(_subject(label), cost, m, 1, current_environment())


def test_the_latency_ratio_is_of_minima_with_its_interval_and_named():
    conv = _timed("conv", 100, [2.0, 2.01, 2.02, 2.0, 2.5])  # 4th best 2.02: spread 1%
    dwsep = _timed("dwsep", 14, [0.5, 0.51, 0.5, 0.6, 0.505])  # 4th best 0.51: spread 2%
    frame = records_frame([conv, dwsep], "conv")
    assert frame["latency_min_ms"].tolist() == [2.0, 0.5]
    assert frame["latency_ratio_x"].tolist() == [1.0, 0.25]
    assert frame["latency_ratio_ci_low_x"].tolist() == [1.0, round(0.25 * 0.98 / 1.01, 4)]
    assert frame["latency_ratio_ci_high_x"].tolist() == [1.0, round(0.25 * 1.02 / 0.99, 4)]
    assert set(frame["latency_ratio_estimator"]) == {"min"}
    table = compare_table(frame, "t", "conv")
    cells = {header: table.column(header) for header in table.headers}
    assert cells["latency\n(x conv)"] == ["1.000 ± 0.000", "0.250 ± 0.008"]


def test_rows_without_minima_fall_back_to_a_ratio_of_medians_and_say_so():
    frame = records_frame([_record("conv", 100, 2.0), _record("mbv2", 150, 3.0)], "conv")
    assert set(frame["latency_ratio_estimator"]) == {"median"}


def test_a_row_whose_minimum_was_not_reproduced_is_flagged_with_a_budget_to_try():
    drifting = _timed("mbv2", 150, [2.0 * 0.95**i for i in range(20)])  # each round faster
    steady = _timed("conv", 100, [1.0] * 20)
    frame = records_frame([steady, drifting], "conv")
    assert frame["latency_unstable"].tolist() == [False, True]
    assert frame["latency_min_near_n"].tolist() == [20, 1]
    (note,) = [n for n in measurement_notes(frame, None, budget_s=2.0) if n.startswith("!")]
    assert note.startswith("! fastest call not reproduced (fewer than 4 rounds came within 5%")
    assert ": mbv2 (1 of 20 rounds); --budget 8 should reproduce it" in note
    assert "--budget 8 should" in note  # 1 round within 5% in 2 s: 4 need 8 s


def _sessions(label, macs, mins, trials=3):
    cost = CountedCost(1, macs, 0, 100, 10, 1000, "")
    m = Measurement(tuple(x * 1.1 for x in mins), 1, tuple(mins), trials)
    return Record(_subject(label), cost, m, 1, current_environment())


def test_the_notes_agree_with_the_flag_and_never_advise_the_budget_used():
    # enough rounds near the fastest call, one session's 6.3% above
    slow_session = _sessions("shufflev2", 10, [1.000, 1.001, 1.063, 1.002, 1.000, 1.064, 1.001,
                                               1.0, 1.065, 1.0, 1.0, 1.07])
    few_rounds = _sessions("dwsep", 14, [1.0, 1.0, 1.063, 1.0, 1.0, 1.064, 1.0])  # 7 rounds
    busy = _sessions("fused", 200, [2.0, 2.5, 2.6, 2.02, 2.7, 2.8, 2.9, 3.0, 3.1])  # 2 near
    steady = _sessions("conv", 100, [1.0] * 9)
    frame = records_frame([steady, slow_session, busy, few_rounds], "conv")
    assert frame["latency_unstable"].tolist() == [False, True, True, True]
    assert frame["latency_min_near_n"].tolist() == [9, 8, 2, 5]
    notes = [n for n in measurement_notes(frame, None, budget_s=2.0) if n.startswith("!")]
    assert notes == [
        "! fastest call not reproduced (fewer than 4 rounds came within 5% of it; the machine "
        "was busy): fused (2 of 9 rounds); --budget 4 should reproduce it (estimated from the rate "
        "this run found such rounds in 2 s).",
        "! fastest call not reproduced (a session had fewer than 4 rounds, too few to know its "
        "own): dwsep (7 rounds over 3 sessions); --budget 3.5 should reproduce it (estimated from "
        "the rate this run found such rounds in 2 s).",
        "! fastest call not reproduced (across sessions: the slowest of a block's onnxruntime "
        "sessions read it more than 5% above): shufflev2 (6.30%); a longer --budget would not "
        "narrow this (each session's buffers lie elsewhere in memory), and the interval of the "
        "ratio includes it.",
    ]
    # at 60 s and more, no budget is advised: the note says why
    (note,) = [n for n in measurement_notes(frame.iloc[[2]], None, budget_s=60.0)
               if n.startswith("!")]
    assert "--budget 60 " not in note and "would take more than 60 s of --budget" in note
    # for every budget, the advice names a larger one or none
    for budget in (0.2, 1.0, 2.0, 2.5, 10.0):
        text = " ".join(measurement_notes(frame, None, budget_s=budget))
        assert f"--budget {budget:g} " not in text


def test_one_budget_for_several_rows_names_them_all():
    busy = [_sessions(name, macs, [2.0, 2.5, 2.6, 2.02, 2.7, 2.8, 2.9, 3.0, 3.1])
            for name, macs in (("fused", 200), ("mbv2", 150))]
    lonely = _sessions("resnet", 30, [1.0, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.1])  # 1 near of 8
    frame = records_frame([*busy, lonely], "fused")
    (note,) = [n for n in measurement_notes(frame, None, budget_s=2.0) if n.startswith("!")]
    assert ("fused (2 of 9 rounds), mbv2 (2 of 9 rounds), resnet (1 of 8 rounds); --budget 8 "
            "should reproduce them") in note  # the largest budget any of them needs
