import os
import signal
import subprocess
import sys
import time

import pytest

from mnv2prof.errors import UsageError
from mnv2prof.sweeps.sweep import CsvJournal
from tests.helpers import read_rows, tiny_profile


def test_sweep_writes_every_row_then_resume_and_force(run_cli, tmp_path):
    profile, out = tiny_profile(tmp_path), tmp_path / "out.csv"
    code, _, err = run_cli("sweep", profile, "--out", out)
    assert code == 0, err
    assert "wrote 4 rows" in err and "0 already there, 4 in the profile" in err
    frame = read_rows(out)
    assert len(frame) == 4 and frame["spec_hash"].is_unique
    assert frame["spec"].tolist() == [
        f"{v}_c8_r8_e{t}_k3_s1_b1" for t in (1, 2) for v in ("conv", "mbv2")
    ]
    assert (frame["threads"] == 1).all() and (frame["latency_n"] >= 10).all()

    code, _, err = run_cli("sweep", profile, "--out", out)
    assert code == 2 and "exists: pass --resume" in err
    assert len(err.strip().splitlines()) == 1

    code, _, err = run_cli("sweep", profile, "--out", out, "--resume")
    assert code == 0, err
    assert "wrote 0 rows" in err and "4 already there" in err
    assert len(read_rows(out)) == 4

    code, _, err = run_cli("sweep", profile, "--out", out, "--force")
    assert code == 0, err
    assert len(read_rows(out)) == 4


def test_resume_measures_only_missing_rows(run_cli, tmp_path):
    out = tmp_path / "out.csv"
    assert run_cli("sweep", tiny_profile(tmp_path, expansions=(1,)), "--out", out)[0] == 0
    first = read_rows(out)
    code, _, err = run_cli("sweep", tiny_profile(tmp_path, expansions=(1, 2)), "--out", out,
                           "--resume")
    assert code == 0, err
    assert "wrote 2 rows" in err and "2 already there" in err
    frame = read_rows(out)
    assert frame["spec_hash"].is_unique and len(frame) == 4
    assert frame["spec_hash"].head(2).tolist() == first["spec_hash"].tolist()


def start_sweep(profile, out, *flags):
    return subprocess.Popen(
        [sys.executable, "-m", "mnv2prof", "sweep", str(profile), "--out", str(out), *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )


def interrupt_after_rows(process, out, rows, signum):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 1 + rows:  # the header and `rows`
            break
        time.sleep(0.02)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted:" in err and "--resume" in err and "Traceback" not in err
    return read_rows(out)


@pytest.mark.slow  # two real processes (torch import) and six exports: about 20 s
def test_interrupted_sweep_keeps_whole_rows_and_resume_completes(run_cli, tmp_path):
    # Resolution 9 is used by no other test, so exports are not cached and the sweep is still
    # running when each signal comes.
    # one row a batch: each row is journaled as soon as its point is timed
    profile = tiny_profile(tmp_path, resolution=9, expansions=(1, 2, 3, 4, 5, 6),
                           variants=("mbv2",), batch_rows=1)
    out = tmp_path / "out.csv"
    first = interrupt_after_rows(start_sweep(profile, out), out, 1, signal.SIGINT)  # Ctrl-C
    assert 1 <= len(first) < 6 and first["spec_hash"].is_unique
    second = interrupt_after_rows(
        start_sweep(profile, out, "--resume"), out, len(first) + 1, signal.SIGTERM  # kill
    )
    assert len(first) < len(second) < 6 and second["spec_hash"].is_unique
    assert second["spec_hash"].head(len(first)).tolist() == first["spec_hash"].tolist()

    code, _, err = run_cli("sweep", profile, "--out", out, "--resume")
    assert code == 0, err
    assert f"{len(second)} already there" in err
    frame = read_rows(out)
    assert sorted(frame["exp_ratio"]) == [1, 2, 3, 4, 5, 6]  # every row exactly once
    assert frame["spec_hash"].is_unique
    assert frame["spec_hash"].head(len(second)).tolist() == second["spec_hash"].tolist()


ROW = {"variant": "mbv2", "spec_hash": "abc", "latency_median_ms": 1.5}


COLUMNS = list(ROW)


def test_journal_refuses_a_file_with_other_columns_before_any_work(tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("variant,spec_hash,latency_mean_ms\nmbv2,def,1.0\n")
    with pytest.raises(UsageError, match="other columns than this version writes .*missing "
                                         "here: latency_mean_ms; new: latency_median_ms"):
        CsvJournal(out, resume=True, force=False).check_columns(COLUMNS)
    assert out.read_text() == "variant,spec_hash,latency_mean_ms\nmbv2,def,1.0\n"


@pytest.mark.parametrize(("content", "message"), [
    (b"variant,spec_hash,latency_median_ms\nmbv2,def,1.0\nmbv2,gh",
     r"row 2: 2 fields where the header has 3 \(cut off mid-row\?\)"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, r"is not UTF-8 text \(byte 0 is 0x89\)"),
    (b"variant,latency_median_ms\nmbv2,1.0\n", "no spec_hash column: not a sweep or compare CSV"),
    (b"variant,spec_hash,latency_median_ms\nmbv2,,1.0\n", "row 1: spec_hash is empty"),
])
def test_a_refused_resume_leaves_the_file_byte_for_byte(tmp_path, content, message):
    out = tmp_path / "out.csv"
    out.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        CsvJournal(out, resume=True, force=False)
    assert out.read_bytes() == content  # never cut, never rewritten


def test_journal_keeps_a_whole_last_row_that_lost_its_newline(tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("variant,spec_hash,latency_median_ms\nmbv2,def,1.0")  # no final newline
    journal = CsvJournal(out, resume=True, force=False)
    assert journal.done == {"def"}
    assert out.read_text().endswith("1.0")  # untouched until a row is appended
    journal.append(ROW)
    assert out.read_text() == (
        "variant,spec_hash,latency_median_ms\nmbv2,def,1.0\nmbv2,abc,1.5\n"
    )


def test_journal_force_keeps_the_old_file_until_the_first_row(tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("old\n")
    journal = CsvJournal(out, resume=False, force=True)
    assert out.read_text() == "old\n"
    journal.append(ROW)
    journal.append({**ROW, "spec_hash": "xyz"})
    assert out.read_text().splitlines() == [
        "variant,spec_hash,latency_median_ms", "mbv2,abc,1.5", "mbv2,xyz,1.5",
    ]


@pytest.mark.parametrize(("written", "message"), [
    ("variant,spec_hash,env_onnxruntime\nmbv2,def,0.1\n",
     "measured in another environment (onnxruntime: 0.1 there"),
    ("variant,spec_hash,env_gpu_name\nmbv2,def,NVIDIA H200\n",  # on a GPU, resumed on the CPU
     "measured in another environment (gpu_name: NVIDIA H200 there, none here)"),
])
def test_resume_refuses_rows_from_another_environment(run_cli, tmp_path, written, message):
    out = tmp_path / "out.csv"
    out.write_text(written)
    code, _, err = run_cli("sweep", tiny_profile(tmp_path), "--out", out, "--resume")
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_resume_never_mixes_cache_modes(run_cli, tmp_path):
    profile, out = tiny_profile(tmp_path, expansions=(1,)), tmp_path / "out.csv"
    code, _, err = run_cli("sweep", profile, "--out", out, "--cache", "cold")
    assert code == 0, err
    assert read_rows(out)["cache_mode"].tolist() == ["cold", "cold"]
    before = out.read_bytes()
    code, _, err = run_cli("sweep", profile, "--out", out, "--resume")  # the profile's: warm
    assert code == 2
    assert "was timed with cache mode cold and this sweep with warm: cache modes are never " \
        "mixed in one file; start a new file" in err
    assert len(err.strip().splitlines()) == 1
    assert out.read_bytes() == before
    code, _, err = run_cli("sweep", profile, "--out", out, "--resume", "--cache", "cold")
    assert code == 0 and "wrote 0 rows" in err


def test_sweep_bad_out_and_flags(run_cli, tmp_path):
    profile = tiny_profile(tmp_path)
    code, _, err = run_cli("sweep", profile, "--out", tmp_path / "no" / "out.csv")
    assert code == 2 and "folder" in err and "does not exist" in err
    code, _, err = run_cli("sweep", profile, "--out", tmp_path / "o.csv", "--resume", "--force")
    assert code == 2 and "exclude each other" in err
    code, _, err = run_cli("sweep", tmp_path / "missing.toml", "--out", tmp_path / "o.csv")
    assert code == 2 and "does not exist" in err


def test_batches_group_consecutive_points_of_one_thread_count_up_to_the_limit():
    from mnv2prof.models.variants import BlockSpec
    from mnv2prof.profiles.shipped import GridPoint
    from mnv2prof.sweeps.sweep import batches

    def point(t, threads, variants=("conv", "mbv2")):
        specs = tuple(BlockSpec(v, in_chs=8, resolution=8, exp_ratio=t) for v in variants)
        return GridPoint((("exp_ratio", t),), specs, threads), specs

    points = [point(1, 1), point(2, 1), point(3, 1), point(4, 2), point(5, 2), point(6, 1)]
    grouped = batches(points, limit=4)
    assert [[p.values[0][1] for p, _ in b] for b in grouped] == [[1, 2], [3], [4, 5], [6]]
    assert [len(b) for b in batches(points, limit=1)] == [1] * 6  # a point alone past the limit
    assert [[p.threads for p, _ in b] for b in batches(points, limit=48)] == [
        [1, 1, 1], [2, 2], [1]
    ]


def test_a_batch_is_timed_as_one_rotation_with_the_budget_of_its_points(monkeypatch, tmp_path):
    from mnv2prof.models.targets import Target
    from mnv2prof.profiles.shipped import load_profile
    from mnv2prof.run import pipeline
    from mnv2prof.sweeps.sweep import batches, measure_points

    seen = []
    monkeypatch.setattr(pipeline, "measure_rows", lambda rows, timing, **kw: seen.append(
        (rows, timing, kw)) or pipeline.Measured(rows, None))
    profile = load_profile(tiny_profile(tmp_path, expansions=(1, 2, 3)))
    (batch,) = batches([(p, p.subjects) for p in profile.points()], profile.batch_rows)
    measured = measure_points(profile, batch)
    assert [r.subject for r in measured] == [s for p in profile.points() for s in p.subjects]
    assert {r.target for r in measured} == {Target("fp32", "onnxruntime")}
    ((specs, timing, kw),) = seen
    assert len(specs) == 6 and timing.budget_s == pytest.approx(3 * 0.05)
    assert kw["eager"] is True and kw["seed"] == 0


def test_a_batch_holds_at_most_ten_seconds_of_timing():
    """A kill loses at most the batch being timed: the expansion sweep (10 points of 1 s, eager
    on: 2 s a point) is two batches of 5 points, not one of 10."""
    from mnv2prof.profiles.shipped import load_profile, profiles_dir
    from mnv2prof.sweeps.sweep import BATCH_TIMING_S, batch_points, batches

    profile = load_profile(profiles_dir() / "expansion-sweep.toml")
    assert BATCH_TIMING_S == 10.0 and profile.timing.budget_s == 1.0 and profile.eager
    assert batch_points(profile) == 5 and batch_points(profile, eager=False) == 10
    points = [(p, p.subjects) for p in profile.points()]
    grouped = batches(points, profile.batch_rows, batch_points(profile))
    assert [len(b) for b in grouped] == [5, 5]  # 15 rows each, within batch_rows = 48
    assert [p.values for b in grouped for p, _ in b] == [p.values for p, _ in points]


# --- issue 31.5: one writer at a time -----------------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from mnv2prof.files.locks import hold
held = hold(Path(sys.argv[1]), "--out")
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def other_writer(tmp_path):
    """A process that holds the journal's lock, as a running sweep does."""
    out = tmp_path / "out.csv"
    out.write_text("variant,spec_hash,latency_median_ms\nmbv2,def,1.0\n")
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE,
                               text=True, env=os.environ.copy())
    assert process.stdout.readline() == "held\n"
    yield out, process.pid
    process.kill()
    process.wait()


@pytest.mark.parametrize("flags", [{"resume": True, "force": False},
                                   {"resume": False, "force": True},
                                   {"resume": False, "force": False}])
def test_a_second_writer_is_refused_naming_the_first(other_writer, flags):
    out, pid = other_writer
    before = out.read_bytes()
    with pytest.raises(UsageError) as caught:
        CsvJournal(out, **flags)
    assert str(caught.value) == (
        f"--out {out} is being written by process {pid}: one writer at a time, or rows would be "
        "written twice; wait for it to end, or write to another file"
    )
    assert out.read_bytes() == before


def test_the_lock_is_released_with_the_writer(other_writer):
    out, pid = other_writer
    os.kill(pid, signal.SIGKILL)  # a killed writer leaves no stale lock
    deadline = time.monotonic() + 10
    while True:
        try:
            journal = CsvJournal(out, resume=True, force=False)
            break
        except UsageError:
            assert time.monotonic() < deadline, "the lock outlived its process"
            time.sleep(0.05)
    assert journal.done == {"def"}
    journal.close()


def test_within_one_process_the_newest_journal_writes(tmp_path):
    out = tmp_path / "out.csv"
    first = CsvJournal(out, resume=False, force=False)
    first.append(ROW)
    second = CsvJournal(out, resume=True, force=False)  # the first is not closed yet
    second.append({**ROW, "spec_hash": "xyz"})
    assert second.done == {"abc", "xyz"}
    assert out.read_text().splitlines()[1:] == ["mbv2,abc,1.5", "mbv2,xyz,1.5"]


def test_a_journal_closed_before_its_first_row_leaves_no_file(tmp_path):
    out = tmp_path / "out.csv"
    journal = CsvJournal(out, resume=False, force=False)
    assert not out.exists()  # checked, not made: a refusal after the checks leaves nothing
    journal.begin()
    assert out.exists()  # made, to be locked, before anything is measured
    journal.close()
    assert not out.exists()
    kept = tmp_path / "kept.csv"
    kept.write_text("")
    CsvJournal(kept, resume=True, force=False).close()
    assert kept.exists()  # not made by it: left as it was


@pytest.mark.slow  # two real sweeps (torch import, exports): about 20 s
def test_two_resumes_at_once_never_write_a_row_twice(tmp_path):
    # a cache of its own: the first sweep is still exporting when the second starts
    env = {**os.environ, "MNV2PROF_CACHE": str(tmp_path / "cache")}
    profile = tiny_profile(tmp_path, expansions=(1, 2, 3, 4), variants=("mbv2",), batch_rows=1)
    out = tmp_path / "out.csv"
    argv = [sys.executable, "-m", "mnv2prof", "sweep", str(profile), "--out", str(out)]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
    deadline = time.monotonic() + 60
    while not out.exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    second = subprocess.run([*argv, "--resume"], capture_output=True, text=True, env=env,
                            timeout=120, check=False)
    assert second.returncode == 2, second.stderr
    assert second.stderr.strip().splitlines() == [(
        f"mnv2prof: error: --out {out} is being written by process {first.pid}: one writer at "
        "a time, or rows would be written twice; wait for it to end, or write to another file"
    )]
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    frame = read_rows(out)
    assert len(frame) == 4 and frame["spec_hash"].is_unique


def test_a_file_made_by_another_writer_after_the_checks_is_refused(tmp_path):
    out = tmp_path / "out.csv"
    journal = CsvJournal(out, resume=False, force=False)
    other = CsvJournal(out, resume=False, force=False)
    other.append(ROW)  # the other sweep started first, and is done
    other.close()
    with pytest.raises(UsageError, match="was written by another process since it was checked"):
        journal.begin()
    assert out.read_text().splitlines()[1:] == ["mbv2,abc,1.5"]
