"""`predictor build` on a tiny space, in seconds: the folder it writes, its journals, resume
and interrupts."""

import csv
import json

import pytest

from mnv2prof.errors import Interrupted, UsageError
from mnv2prof.predictor import folder as files
from mnv2prof.predictor.build import BuildInterrupted, BuildPlan, build, local_runner
from mnv2prof.predictor.fingerprint import fingerprint
from mnv2prof.predictor.fitting import CANDIDATES
from mnv2prof.predictor.space import load_space


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_the_folder_holds_every_file(tiny_build):
    result, out = tiny_build
    names = {p.name for p in out.iterdir()}
    assert names == {files.BUILD_FILE, files.KERNELS_FILE, files.SAMPLES_FILE,
                     files.NETWORKS_FILE, files.CONTEXTS_FILE, files.PREDICTOR_FILE,
                     files.MODELS_FILE, files.FORESTS_FILE, files.ERRORS_FILE}
    kernels = _rows(out / files.KERNELS_FILE)
    assert tuple(kernels[0]) == files.KERNEL_COLUMNS
    keys = [row[0] for row in kernels[1:]]
    assert len(keys) == len(set(keys)) == result.kernels == result.kernels_timed > 0
    meta = json.loads((out / files.PREDICTOR_FILE).read_text())
    assert meta["fingerprint"] == fingerprint(1)
    assert set(meta["kinds"]) == {row[1] for row in kernels[1:]} == set(result.kinds)
    assert all(k["regressor"] in CANDIDATES for k in meta["kinds"].values())
    assert meta["build"]["kernels"] == result.kernels
    assert meta["calibration"]["networks"] == 1 == len(_rows(out / files.NETWORKS_FILE)) - 1
    contexts = _rows(out / files.CONTEXTS_FILE)
    assert {row[0] for row in contexts[1:]} == {row[0] for row in _rows(
        out / files.NETWORKS_FILE)[1:]}  # the one calibration model's kinds, profiled
    assert meta["calibration"]["context"] == {}  # one model: too few for any factor
    assert meta["calibration"]["dispatch_ms"] >= 0
    errors = _rows(out / files.ERRORS_FILE)
    assert errors[0][:3] == ["kind", "regressor", "samples_n"]
    assert {row[0] for row in errors[1:]} == set(meta["kinds"])


def test_resume_of_a_finished_build_times_nothing_again(tiny_build, tiny_space):
    result, out = tiny_build
    again = build(BuildPlan(out, load_space(tiny_space), 5.0, resume=True))
    assert again.stopped == "sampled before" and again.kernels_timed == 0
    assert again.kernels == result.kernels


def test_a_used_folder_needs_resume(tiny_build, tiny_space):
    _, out = tiny_build
    with pytest.raises(UsageError, match="exists and is not empty: pass --resume"):
        build(BuildPlan(out, load_space(tiny_space), 5.0))


def test_resume_refuses_another_space(tiny_build, tiny_space):
    import dataclasses

    _, out = tiny_build
    other = dataclasses.replace(load_space(tiny_space), kernel_size=(5,))
    with pytest.raises(UsageError, match="built over another space"):
        build(BuildPlan(out, other, 5.0, resume=True))


def test_resume_needs_a_build(tmp_path, tiny_space):
    with pytest.raises(UsageError, match="holds no build to resume"):
        build(BuildPlan(tmp_path / "new", load_space(tiny_space), 5.0, resume=True))


def test_interrupt_keeps_the_timed_kernels_and_resume_finishes(tmp_path, tiny_space):
    space = load_space(tiny_space)
    timed = local_runner(space.threads, space.kernel_budget_s)

    batches = []

    def interrupted(samples, known):
        for results in timed(samples, known):
            batches.append(results)
            if len(batches) == 2:  # a signal after the second batch, as interrupts.check raises
                raise Interrupted("interrupted (SIGINT)")
            yield results

    out = tmp_path / "p"
    with pytest.raises(BuildInterrupted, match="run again with --resume") as caught:
        # 60 s: the interrupt comes with the second batch, which an 8 s budget on a slow runner
        # might never start (the budget is not in the header that --resume checks)
        build(BuildPlan(out, space, 60.0), run=interrupted)
    assert caught.value.exit_code == 130
    kept = len(_rows(out / files.KERNELS_FILE)) - 1
    assert kept == sum(len(r.rows) for r in batches[0]) > 0  # the first batch, whole
    assert not (out / files.PREDICTOR_FILE).exists()
    finished = build(BuildPlan(out, space, 8.0, resume=True))
    assert finished.kernels >= kept and (out / files.PREDICTOR_FILE).is_file()


def test_journal_leaves_out_a_row_cut_off_mid_write(tmp_path):
    journal = files.Journal(tmp_path / "j.csv", ("key", "value"))
    journal.append([{"key": "a", "value": 1}, {"key": "b", "value": 2}])
    with open(journal.path, "a") as fh:
        fh.write("c,3")  # a kill mid-write: no newline
    assert [r["key"] for r in journal.rows()] == ["a", "b"]
    journal.append([{"key": "d", "value": 4}])
    assert [r["key"] for r in journal.rows()] == ["a", "b", "c", "d"]


def test_journal_refuses_other_columns(tmp_path):
    (tmp_path / "j.csv").write_text("x,y\n1,2\n")
    with pytest.raises(UsageError, match="other columns than this version writes"):
        files.Journal(tmp_path / "j.csv", ("key", "value")).rows()


def test_budget_must_be_positive(tmp_path):
    with pytest.raises(UsageError, match="--budget-minutes must be positive"):
        BuildPlan(tmp_path, budget_s=0)
