"""A run spent wholly in the machine's slow state is said (run.history)."""

import pandas as pd

from mnv2prof.run.history import slow_state_note


def frame(**mins):
    return pd.DataFrame([{"spec_hash": v, "cache_mode": "warm", "env_cpu_model": "cpu",
                          "env_onnxruntime": "1", "latency_min_ms": ms} for v, ms in mins.items()])


def test_most_rows_above_their_best_is_a_slow_run(tmp_path):
    store = tmp_path / "best.json"
    assert slow_state_note(frame(conv=0.530, dwsep=0.124, mbv2=0.97), store) is None  # first
    assert slow_state_note(frame(conv=0.531, dwsep=0.1235, mbv2=0.975), store) is None  # as ever
    note = slow_state_note(frame(conv=0.5616, dwsep=0.124, mbv2=1.1731), store)
    assert note.startswith("! 2 of 3 rows read 6-21% above the fastest calls")
    assert "slow state" in note and "run again" in note


def test_one_slow_row_is_not_a_slow_run_and_the_best_is_kept(tmp_path):
    store = tmp_path / "best.json"
    slow_state_note(frame(conv=0.530, dwsep=0.124, mbv2=0.97), store)
    assert slow_state_note(frame(conv=0.60, dwsep=0.1235, mbv2=0.96), store) is None
    assert slow_state_note(frame(conv=0.52, dwsep=0.2, mbv2=1.2), store) is not None  # 2 of 3
    store.write_text("not json")  # a damaged history is started again, never an error
    assert slow_state_note(frame(conv=0.53, dwsep=0.124), store) is None
