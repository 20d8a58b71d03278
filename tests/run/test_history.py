"""A run spent wholly in the machine's slow state is found (run.history); a history file that
cannot be read is set aside and started anew, never a failure."""

import json
import math
import os

import pandas as pd
import pytest

from mnv2prof.run.history import SlowState, read_history, record_fastest

KEY = "{}|warm|cpu|1"  # spec_hash|cache_mode|env_cpu_model|env_onnxruntime


def frame(**mins):
    return pd.DataFrame([{"spec_hash": v, "cache_mode": "warm", "env_cpu_model": "cpu",
                          "env_onnxruntime": "1", "latency_min_ms": ms} for v, ms in mins.items()])


def test_most_rows_above_their_best_is_a_slow_run(tmp_path):
    store = tmp_path / "best.json"
    assert record_fastest(frame(conv=0.530, dwsep=0.124, mbv2=0.97), store) is None  # first
    assert record_fastest(frame(conv=0.531, dwsep=0.1235, mbv2=0.975), store) is None  # as ever
    state = record_fastest(frame(conv=0.5616, dwsep=0.124, mbv2=1.1731), store)
    # dwsep is 0.4% above its best 0.1235: known, not slow
    assert (state.slow, state.known) == (2, 3)
    assert state.low_rel == pytest.approx(0.5616 / 0.530 - 1)
    assert state.high_rel == pytest.approx(1.1731 / 0.97 - 1)
    assert json.loads(store.read_text()) == {KEY.format("conv"): 0.530,
                                             KEY.format("dwsep"): 0.1235,
                                             KEY.format("mbv2"): 0.97}


def test_one_slow_row_is_not_a_slow_run_and_the_best_is_kept(tmp_path):
    store = tmp_path / "best.json"
    record_fastest(frame(conv=0.530, dwsep=0.124, mbv2=0.97), store)
    assert record_fastest(frame(conv=0.60, dwsep=0.1235, mbv2=0.96), store) is None
    assert json.loads(store.read_text())[KEY.format("mbv2")] == 0.96  # a new best
    state = record_fastest(frame(conv=0.52, dwsep=0.2, mbv2=1.2), store)  # 2 of 3
    assert state == SlowState(2, 3, pytest.approx(1.2 / 0.96 - 1), pytest.approx(0.2 / 0.1235 - 1),
                              3)
    assert record_fastest(frame(conv=0.9), store) is None  # one known row is never a slow run


def test_rows_without_a_fastest_call_are_not_recorded(tmp_path):
    store = tmp_path / "best.json"
    assert record_fastest(pd.DataFrame({"latency_median_ms": [1.0]}), store) is None
    assert not store.exists()
    assert record_fastest(frame(conv=float("nan"), dwsep=0.0, mbv2=-1.0), store) is None
    assert json.loads(store.read_text()) == {}


def _nested(depth):
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("make", [
    pytest.param(lambda p: (p.mkdir(), (p / "inside").write_text("{}")), id="folder"),
    pytest.param(lambda p: p.write_bytes(b"\xff\xfe\x00 not json"), id="garbage"),
    pytest.param(lambda p: p.write_text("not json"), id="not-json"),
    pytest.param(lambda p: p.write_text("[0.5, 0.6]"), id="a-list"),
    pytest.param(lambda p: p.write_text('"0.5"'), id="a-string"),
    pytest.param(lambda p: p.write_text(_nested(100_000)), id="nested-100000"),
    pytest.param(lambda p: os.mkfifo(p), id="fifo"),
])
def test_an_unreadable_history_is_set_aside_and_started_anew(tmp_path, make):
    store = tmp_path / "history" / "best.json"
    store.parent.mkdir()
    make(store)
    assert record_fastest(frame(conv=0.530, dwsep=0.124), store) is None  # no best: none known
    assert json.loads(store.read_text()) == {KEY.format("conv"): 0.530,
                                             KEY.format("dwsep"): 0.124}
    assert os.path.lexists(str(store) + ".unreadable")  # kept aside, for a look
    state = record_fastest(frame(conv=0.60, dwsep=0.15), store)  # the new history works
    assert (state.slow, state.known) == (2, 2)


def test_a_history_linked_to_another_file_never_writes_through_the_link(tmp_path):
    theirs = tmp_path / "theirs.json"
    theirs.write_text('{"mine": 1}')
    store = tmp_path / "best.json"
    store.symlink_to(theirs)
    assert record_fastest(frame(conv=0.530), store) is None
    assert theirs.read_text() == '{"mine": 1}'
    assert not store.is_symlink() and json.loads(store.read_text()) == {KEY.format("conv"): 0.53}


def test_a_history_folder_that_is_a_file_is_set_aside(tmp_path):
    (tmp_path / "history").write_text("a file where the folder goes")
    store = tmp_path / "history" / "best.json"
    assert record_fastest(frame(conv=0.530), store) is None
    assert json.loads(store.read_text()) == {KEY.format("conv"): 0.53}
    assert (tmp_path / "history.unreadable").read_text() == "a file where the folder goes"


@pytest.mark.parametrize("stored", ["fast", True, None, [0.5], {"ms": 0.5}, -0.5, 0])
def test_a_best_that_is_not_a_positive_number_is_replaced(tmp_path, stored):
    store = tmp_path / "best.json"
    store.write_text(json.dumps({KEY.format("conv"): stored, KEY.format("dwsep"): 0.124}))
    assert record_fastest(frame(conv=0.9, dwsep=0.2), store) is None  # 1 known row only
    assert json.loads(store.read_text())[KEY.format("conv")] == 0.9


def test_a_best_that_is_not_finite_is_replaced(tmp_path):
    store = tmp_path / "best.json"
    store.write_text(f'{{"{KEY.format("conv")}": NaN, "{KEY.format("dwsep")}": Infinity}}')
    assert record_fastest(frame(conv=0.9, dwsep=0.2), store) is None
    best = read_history(store)
    assert best == {KEY.format("conv"): 0.9, KEY.format("dwsep"): 0.2}
    assert all(math.isfinite(v) for v in best.values())
