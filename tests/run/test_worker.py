"""The worker (run.worker, run.zygote, run.user_code): the user's code runs in a process of its
own, its results come back as the tool's own data, and how it ends is one error naming it."""

import json
import os
import pickle
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mnv2prof
from mnv2prof.errors import ExportError, UsageError
from mnv2prof.measure.timing import TimingSpec
from mnv2prof.models.plugins import PluginError
from mnv2prof.models.variants import parse_variant_list
from mnv2prof.run import user_code, worker
from tests.helpers import PLUGIN_BLOCKS, SPEC8
from tests.helpers import csv_rows as _rows

SMALL = (*SPEC8, "--budget", "0.1")

ROOT = Path(__file__).resolve().parents[2]

BLOCKS = '''
import os
import time

with open("imported_by.txt", "a") as log:
    log.write(f"{os.getpid()}\\n")
''' + PLUGIN_BLOCKS + '''

class Sleeps(nn.Module):
    def forward(self, x):
        time.sleep(60)
        return x


class Prints(nn.Module):
    def forward(self, x):
        print("hello from forward")
        return x
'''


@pytest.fixture
def blocks(tmp_path, monkeypatch):
    path = tmp_path / "blocks.py"
    path.write_text(BLOCKS)
    monkeypatch.chdir(tmp_path)
    user_code._VETTED.clear()  # what an earlier test's vetting learnt is not this one's
    return path


def _spec(text, **values):
    (ref,) = parse_variant_list(text)
    return ref.spec(**{"in_chs": 8, "resolution": 8, **values})


def _spy(jobs: list, run):
    """`worker.run` that notes each job's name (its function's, as `vet`) in `jobs`."""
    def spied(function, *args, **kwargs):
        jobs.append(function.__name__.lstrip("_"))
        return run(function, *args, **kwargs)

    return spied


# -- the user's code runs elsewhere, its facts come back ---------------------------------------

def test_vetting_imports_the_users_file_in_another_process(blocks):
    spec = _spec("blocks.py:Wide", out_chs=16)
    before = {m for m in sys.modules if m.startswith("mnv2prof_user_blocks")}
    vetted = user_code.vet([spec, _spec("conv")], threads=1)
    assert list(vetted) == [spec]  # a built-in needs no worker
    # the meta device's static peak: the BN's input and output (2 x 16 x 8 x 8) and the block's
    # input (8 x 8 x 8) alive at once; weights 8 x 16 + 2 x 16, at 4 bytes each
    size = vetted[spec].size
    assert (size.activation_bytes, size.weight_bytes) == ((2048 + 512) * 4, 160 * 4)
    assert vetted[spec].checked and vetted[spec].memory[1].peak_bytes > 512 * 4
    pids = (blocks.parent / "imported_by.txt").read_text().split()
    assert pids and str(os.getpid()) not in pids
    # (another test may have imported the same file's module here on purpose: the plugins' own)
    assert {m for m in sys.modules if m.startswith("mnv2prof_user_blocks")} == before


def test_the_static_peak_is_kept_in_the_cache_and_a_bad_entry_made_again(blocks, tmp_path,
                                                                           monkeypatch):
    import torch

    monkeypatch.setenv("MNV2PROF_CACHE", str(tmp_path / "cache"))
    spec = _spec("blocks.py:Wide", out_chs=16)
    kept = tmp_path / "cache" / "sizes" / f"{spec.digest(torch.__version__, 1)}.json"
    first = user_code.vet([spec])[spec].size
    assert json.loads(kept.read_text()) == [first.activation_bytes, first.weight_bytes]
    kept.write_text("[1, 2]")  # what a warm run reads, without the meta device
    user_code._VETTED.clear()
    assert user_code.vet([spec])[spec].size.total_bytes == 3
    kept.unlink()
    kept.mkdir()  # not the tool's file: set aside, made again
    user_code._VETTED.clear()
    assert user_code.vet([spec])[spec].size == first
    assert kept.is_file() and Path(f"{kept}.unreadable").is_dir()


def test_vetting_twice_runs_one_job(blocks, monkeypatch):
    jobs = []
    run = worker.run
    monkeypatch.setattr(worker, "run", _spy(jobs, run))
    spec = _spec("blocks.py:Wide")
    first = user_code.vet([spec], threads=1)
    assert user_code.vet([spec], threads=1) == first and jobs == ["vet"]
    user_code.vet([spec], threads=2)  # memory at another thread count: a job
    assert jobs == ["vet", "vet"]


def test_too_large_to_try_is_not_built(blocks):
    spec = _spec("blocks.py:Wide")
    vetted = user_code.vet([spec], limit_bytes=100)[spec]
    assert not vetted.checked and vetted.size.total_bytes > 100
    assert not (blocks.parent / "imported_by.txt").read_text().strip().splitlines()[1:]


@pytest.fixture(params=["forked", "fresh"])
def zygote_kind(request, monkeypatch):
    """Jobs served by a zygote forked from this process, or by a fresh interpreter (when this
    process cannot fork safely): marks, progress and stdout checks must reach the parent from
    both. The zygote is started before the test (a fresh one imports torch: 2-3 s)."""
    monkeypatch.setattr(worker, "fork_safe", lambda: request.param == "forked")
    monkeypatch.setattr(worker, "_ZYGOTES", [])
    made = worker.zygote()
    assert (made.process is None) == (request.param == "forked")
    yield request.param
    worker._stop(made)


def test_the_eager_phase_comes_back_as_samples_and_memory(blocks, zygote_kind):
    spec = _spec("blocks.py:Wide")
    ref = user_code.ModuleRef(spec)
    seen = []
    timing = TimingSpec(budget_s=0.05, min_samples=3)
    measured, memory = user_code.eager([(("eager", spec), ref, spec.input_shape)], timing, 0,
                                       [("eager", spec)], seen.append, [spec])
    samples = measured[("eager", spec)]
    assert samples.n >= 3 and all(s > 0 for s in samples.samples_ms) and samples.min_ms > 0
    assert memory[spec].peak_bytes >= 512 * 4  # the input at least
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


def test_a_hang_stops_at_the_limit_naming_the_phase(blocks, monkeypatch, zygote_kind):
    monkeypatch.setenv(worker.TIMEOUT_ENV, "5")  # every phase before forward must stay under it
    with pytest.raises(PluginError) as err:
        user_code.vet([_spec("blocks.py:Sleeps")])
    assert str(err.value) == ("blocks.py:Sleeps was still running forward after 5 s: stopped "
                              "(the limit is $MNV2PROF_WORKER_TIMEOUT, 300 s unless set)")


def test_a_print_on_stdout_is_caught_naming_the_phase(blocks, zygote_kind):
    with pytest.raises(PluginError) as err:
        user_code.vet([_spec("blocks.py:Prints")])
    assert str(err.value).startswith("blocks.py:Prints wrote to stdout while running forward "
                                     "('hello from forward')")


@pytest.mark.parametrize("value", ["abc", "0", "-1", "inf", "nan"])
def test_the_limit_is_a_number_of_seconds(monkeypatch, value):
    monkeypatch.setenv(worker.TIMEOUT_ENV, value)
    with pytest.raises(UsageError, match=rf"\$MNV2PROF_WORKER_TIMEOUT must be a number of "
                                         rf"seconds > 0, got '{value}'"):
        worker.timeout_s()
    monkeypatch.setenv(worker.TIMEOUT_ENV, "2.5")
    assert worker.timeout_s() == 2.5


def test_a_warm_export_is_read_here_and_a_miss_made_there(blocks, monkeypatch):
    jobs = []
    run = worker.run
    monkeypatch.setattr(worker, "run", _spy(jobs, run))
    spec = _spec("blocks.py:Wide", resolution=6)
    first = user_code.export(spec)
    again = user_code.export(spec)
    assert again.path == first.path and again.cached and again.max_abs_diff is None
    assert jobs == (["export"] if not first.cached else [])
    assert first.cached or first.max_abs_diff < 1e-4


def test_another_checkout_is_imported_from_its_root(tmp_path, monkeypatch):
    # gate --against REV: the revision's file runs in the revision's folder, with that folder
    # (not the working tree) first on its path, and this process's path is never changed
    other = tmp_path / "base"
    (other / "pkg").mkdir(parents=True)
    (other / "pkg" / "blocks.py").write_text(BLOCKS)
    monkeypatch.chdir(tmp_path)
    spec = _spec(f"{other / 'pkg' / 'blocks.py'}:Wide")
    user_code._VETTED.clear()
    with user_code.rooted(other) as root:
        assert user_code.root_of(spec) == root == str(other) and root not in sys.path
        assert user_code.vet([spec])[spec].checked
        assert user_code.export(spec).path.exists()
    assert root not in sys.path and user_code.root_of(spec) is None
    assert (other / "imported_by.txt").exists()  # the jobs ran in the root's folder
    assert not (tmp_path / "imported_by.txt").exists()


# -- the zygote ---------------------------------------------------------------------------------

def test_a_fresh_interpreter_serves_when_the_process_cannot_fork(blocks, monkeypatch):
    monkeypatch.setattr(worker, "fork_safe", lambda: False)
    monkeypatch.setattr(worker, "_ZYGOTES", [])
    spec = _spec("blocks.py:Wide")
    assert user_code.vet([spec])[spec].checked
    made = worker._ZYGOTES[0]
    assert made.process is not None and made.process.args[1:3] == ["-m", "mnv2prof.run.zygote"]
    made.sock.close()  # the zygote ends with its socket
    assert made.process.wait(timeout=30) == 0


@pytest.mark.skipif(platform.machine() != "x86_64" or not Path("/proc/self/task").exists(),
                    reason="reads the threads' calls in /proc (x86-64, GNU OpenMP)")
def test_fork_is_safe_until_torch_has_run_a_parallel_op():
    code = textwrap.dedent("""
        import threading, time
        import numpy, torch
        from mnv2prof.run.zygote import fork_safe
        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
        before = fork_safe()
        torch.set_num_threads(2)
        torch.nn.functional.conv2d(torch.ones(1, 32, 64, 64), torch.ones(32, 32, 3, 3))
        time.sleep(0.2)
        print(before, fork_safe())
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.stdout.split() == ["True", "False"], result.stderr


# -- what comes back is the tool's own data ------------------------------------------------------

class _Foreign:
    pass


def test_a_result_never_imports_a_class_of_another_module():
    data = pickle.dumps(_Foreign())  # tests.run.test_worker: not one of mnv2prof's classes
    with pytest.raises(ExportError, match="cannot read: tests.run.test_worker._Foreign"):
        list(worker._frames(bytearray(worker.FRAME.pack(len(data)) + data)))
    ok = pickle.dumps(("result", TimingSpec(budget_s=0.5), Path("/x")))
    assert list(worker._frames(bytearray(worker.FRAME.pack(len(ok)) + ok)))[0][1].budget_s == 0.5


# -- cache hits stay here -----------------------------------------------------------------------

def test_a_warm_run_reads_the_export_from_the_cache_without_an_export_job(run_cli, blocks,
                                                                          monkeypatch):
    jobs = []
    run = worker.run
    monkeypatch.setattr(worker, "run", _spy(jobs, run))
    args = (*SMALL, "--variants", "blocks.py:Wide")
    assert run_cli("compare", *args, "--no-eager")[0] == 0  # the export is cached from here on
    for eager, expected in ((("--no-eager",), ["vet"]), ((), ["vet", "eager"])):
        user_code._VETTED.clear()  # as a new process would
        jobs.clear()
        code, _, err = run_cli("compare", *args, *eager)
        assert code == 0, err
        assert jobs == expected


# -- the Python API: the user's code in the caller's process ----------------------------------

def test_the_api_turns_a_callables_exit_into_a_usage_error(capsys):

    def exits(in_chs):
        sys.exit(0)

    def interrupts(in_chs):
        raise KeyboardInterrupt

    for factory, raised in ((exits, "SystemExit: 0"), (interrupts, "KeyboardInterrupt")):
        with pytest.raises(UsageError, match=f"{factory.__name__}.* raised {raised}"):
            mnv2prof.compare([factory], channels=8, resolution=8, budget=0.1, eager=False)
    assert capsys.readouterr() == ("", "")


GRAPH_BREAK = '''
import torch
from torch import nn


class Breaks(nn.Module):
    def __init__(self, in_chs):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, in_chs, 1)

    def forward(self, x):
        y = self.conv(x)
        return y * 2 if y.sum() > 0 else y
'''


def test_the_api_never_prints_the_exporters_log(tmp_path, monkeypatch, capsys):

    monkeypatch.chdir(tmp_path)
    (tmp_path / "breaks.py").write_text(GRAPH_BREAK)
    scope = {}
    exec(compile(GRAPH_BREAK, str(tmp_path / "breaks.py"), "exec"), scope)
    for variant in ("breaks.py:Breaks", scope["Breaks"]):
        with pytest.raises(ExportError, match="Could not guard on data-dependent expression"):
            mnv2prof.compare([variant], channels=8, resolution=8, budget=0.1, eager=False)
    assert capsys.readouterr() == ("", "")


@pytest.mark.slow  # ExecuTorch lowers the block: seconds, in the worker
def test_executorch_lowers_a_users_block_in_the_worker(run_cli, blocks, tmp_path, monkeypatch):
    pytest.importorskip("executorch")
    jobs = []
    monkeypatch.setattr(worker, "run", _spy(jobs, worker.run))
    out = tmp_path / "rows.csv"
    code, _, err = run_cli("compare", *SMALL, "--variants", "blocks.py:Wide", "--no-eager",
                           "--precision", "fp32,int8", "--runtime", "executorch", "--csv", out)
    assert code == 0, err
    rows = _rows(out)
    assert [(r["precision"], r["runtime"]) for r in rows] == [("fp32", "executorch"),
                                                              ("int8", "executorch")]
    # both precisions in one job (run.user_code.lower): the lowering stack is imported once
    assert jobs.count("lower_all") == 1 and float(rows[1]["int8_sqnr_db"]) > 10
