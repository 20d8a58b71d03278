"""This machine's calibration on disk (run.machine_file): keyed by CPU and threads; a file that
cannot be read is no calibration for a run (set aside), and one line for `plot --roofline`."""

import json
import os

import onnxruntime as ort
import pandas as pd
import pytest

from mnv2prof.errors import UsageError
from mnv2prof.measure.machine import cpu_model
from mnv2prof.measure.roofline import CEILINGS_FORMAT, MachineCeilings
from mnv2prof.run.machine_file import ceilings_path, load_machine, machine_for_frame, save_machine
from tests.helpers import QUICK

SMALL = (*QUICK, "--variants", "conv,dwsep")


def _machine(threads=1, cpu=None):
    return MachineCeilings(cpu or cpu_model(), threads, 100.0, 10.0, 50.0, ort.__version__,
                           "2026-01-01T00:00:00+00:00")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MNV2PROF_CACHE", str(tmp_path))
    return tmp_path


def _rows(threads=1):
    return pd.DataFrame({"env_cpu_model": [cpu_model()] * 2, "threads": [threads] * 2,
                         "flops": [2.0, 4.0], "bytes_moved": [1.0, 2.0]})


def test_round_trip_keyed_by_cpu_and_threads(cache):
    assert load_machine(1) is None
    path = save_machine(_machine(threads=2))
    assert path == ceilings_path(cpu_model(), 2)
    assert path.parent == cache / "machine" and path.name.endswith("-t2.json")
    assert json.loads(path.read_text())["format"] == CEILINGS_FORMAT
    assert load_machine(2) == _machine(threads=2)
    assert machine_for_frame(_rows(threads=2)) == _machine(threads=2)
    assert load_machine(1) is None
    assert load_machine(2, cpu="another cpu") is None
    assert ceilings_path("Intel(R) Xeon(R) @ 2.20GHz", 4).name == "intel-r-xeon-r-2-20ghz-t4.json"


def test_an_older_measurement_is_not_a_calibration_and_is_kept(cache):
    path = save_machine(_machine())
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "format": CEILINGS_FORMAT - 1}))
    assert load_machine(1) is None
    assert path.is_file()  # valid, only old: `calibrate` replaces it
    with pytest.raises(UsageError, match="no machine calibration for .* at 1 thread"):
        machine_for_frame(_rows())


def _nested(path):
    path.write_text("[" * 100_000 + "]" * 100_000)


BAD_FILES = {  # what is written in place of the file -> what `plot --roofline` says
    "garbage": (lambda p: p.write_bytes(b"\xff\x00{"), "is unreadable ("),
    "not-json": (lambda p: p.write_text("{not json"), "is unreadable (Expecting"),
    "a-list": (lambda p: p.write_text("[100.0]"), "is unreadable (a JSON list, not an object)"),
    "a-field-missing": (lambda p: p.write_text('{"threads": 1}'), "is unreadable ("),
    "nested-100000": (_nested, "is unreadable (nested 100000 deep, past the limit of 64"),
    "folder": (lambda p: p.mkdir(), "is unreadable (not a regular file)"),
    "fifo": (lambda p: os.mkfifo(p), "is unreadable (not a regular file)"),
    "peak-not-a-number": (lambda p: _with(p, peak_gflops="fast"),
                          ": peak_gflops is 'fast', not a positive number"),
    "dram-negative": (lambda p: _with(p, dram_gbs=-1.0), ": dram_gbs is -1.0, not a positive"),
    "cache-null": (lambda p: _with(p, cache_gbs=None), ": cache_gbs is None, not a positive"),
    "threads-true": (lambda p: _with(p, threads=True), ": threads is True, not a positive"),
    "peak-infinite": (lambda p: _with(p, peak_gflops=float("inf")), ": peak_gflops is inf"),
}


def _with(path, **fields):
    data = {**json.loads(json.dumps(_machine().__dict__)), **fields}
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("bad", BAD_FILES)
def test_an_unreadable_calibration_is_one_line_for_plot_and_none_for_a_run(cache, bad):
    make, said = BAD_FILES[bad]
    path = ceilings_path(cpu_model(), 1)
    path.parent.mkdir(parents=True)
    make(path)
    with pytest.raises(UsageError) as raised:
        machine_for_frame(_rows())  # plot --roofline needs it: one line, the file left alone
    assert str(raised.value).startswith(f"machine calibration {path}")
    assert said in str(raised.value)
    assert str(raised.value).endswith("; run mnv2prof calibrate --threads 1 again")
    assert os.path.lexists(path)
    assert load_machine(1) is None  # a run goes on without the roofline, the file set aside
    assert not os.path.lexists(path) and os.path.lexists(str(path) + ".unreadable")
    save_machine(_machine())  # `calibrate` makes it again
    assert load_machine(1) == _machine()


@pytest.mark.parametrize("bad", ["folder", "fifo"])
def test_calibrate_replaces_what_is_not_a_regular_file(cache, bad):
    path = ceilings_path(cpu_model(), 1)
    path.parent.mkdir(parents=True)
    BAD_FILES[bad][0](path)
    assert save_machine(_machine()) == path
    assert load_machine(1) == _machine()


def test_frame_rules_are_one_line_each(cache):
    with pytest.raises(UsageError, match="the results lack flops, bytes_moved: cannot pick"):
        machine_for_frame(_rows().drop(columns=["flops", "bytes_moved"]))
    mixed = _rows().assign(threads=[1, 2])
    with pytest.raises(UsageError, match="one CPU at one thread count; these have 1 CPU.s. and "
                                         "threads 1, 2$"):
        machine_for_frame(mixed)
    with pytest.raises(UsageError, match=r"^no machine calibration for .* at 1 thread\(s\): run "
                                         r"mnv2prof calibrate --threads 1$"):
        machine_for_frame(_rows())


def test_compare_measures_and_writes_despite_unreadable_cache_files(cache, run_cli, tmp_path):
    """Issue 31: the history nested 100,000 deep failed the run after measuring (exit 3, no
    CSV); a bad calibration did too (exit 2). Both are now set aside."""
    calibration = ceilings_path(cpu_model(), 1)
    history = cache / "history" / "fastest_calls.json"
    for path in (calibration, history):
        path.parent.mkdir(parents=True)
        _nested(path)
    csv = tmp_path / "rows.csv"
    code, out, err = run_cli("compare", *SMALL, "--csv", csv)
    assert code == 0, err
    assert list(pd.read_csv(csv)["variant"]) == ["conv", "dwsep"]
    assert "no roofline bound: this CPU has no calibration at 1 thread(s)" in out
    assert len(json.loads(history.read_text())) == 2  # started anew with the two rows
    assert os.path.lexists(str(history) + ".unreadable")
    assert os.path.lexists(str(calibration) + ".unreadable")
