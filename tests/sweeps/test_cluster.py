"""`sweep --ray`'s core against a real local Ray cluster (one node, the timer resource set).

Ray is an optional extra: without it, only the tests of the one-line refusal run.
"""

import dataclasses
import signal
import socket
import sys
import textwrap
import time

import pandas as pd
import pytest

from mnv2prof import interrupts
from mnv2prof.errors import Interrupted, UsageError
from mnv2prof.profiles.shipped import load_profile
from mnv2prof.sweeps import cluster
from mnv2prof.sweeps.sweep import CsvJournal, measure_profile

COUNTED = ["macs", "params", "peak_act_bytes", "bytes_moved", "weight_bytes", "flops",
           "elementwise_ops", "nodes"]


def test_without_ray_the_flag_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(UsageError) as caught:
        cluster.connect("local")
    assert str(caught.value) == "--ray needs Ray: pip install -e '.[ray]'"


@pytest.mark.parametrize(("address", "message"), [
    ("", "--ray needs an address: auto, local or HOST:PORT of the head node"),
    ("ray://head:10001", (
        "--ray ray://head:10001: Ray Client addresses (ray://) are not supported; give the head "
        "node's GCS address HOST:PORT (ray start --head prints it), auto or local"
    )),
])
def test_addresses_refused_before_ray_is_imported(address, message):
    with pytest.raises(UsageError) as caught:
        cluster.connect(address)
    assert str(caught.value) == message


@pytest.fixture(scope="module")
def handle():
    pytest.importorskip("ray")
    with interrupts.deferred():
        handle = cluster.connect("local")
        # ray.init replaced SIGTERM's handler; connect put the deferring one back
        assert signal.getsignal(signal.SIGTERM) is interrupts._handler
        assert signal.getsignal(signal.SIGINT) is interrupts._handler
    try:
        yield handle
    finally:
        cluster.shutdown(handle)
        cluster.shutdown(handle)  # twice is harmless
    assert handle.closed


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    path = tmp_path_factory.mktemp("profiles") / "tiny-ray.toml"
    path.write_text(textwrap.dedent("""
        name = "tiny-ray"
        description = "channels 8, 8x8, t in [1, 2]"
        variants = ["conv", "mbv2"]
        [base]
        in_chs = 8
        resolution = 8
        [grid]
        exp_ratio = [1, 2]
        [measure]
        budget_s = 0.05
        warmup = 1
    """))
    return load_profile(path)


def todo(profile, done=frozenset()):
    return [
        (p, [s for s in p.subjects if s.digest(p.threads) not in done]) for p in profile.points()
    ]


def test_the_cluster_offers_one_timer_on_this_host(handle):
    assert handle.started and handle.hosts == {socket.gethostname(): 1}


def test_counted_columns_equal_a_local_sweeps_and_every_row_has_its_host(
    handle, profile, tmp_path
):
    local = {
        r.spec_hash: r.row() for _, records in measure_profile(profile) for r in records
    }
    out = tmp_path / "ray.csv"
    journal = CsvJournal(out, resume=False, force=False)
    with interrupts.deferred():
        result = cluster.run_points(handle, profile, todo(profile), journal.append)
    assert result == cluster.RayResult(written=4, missing=[], reasons=[])
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert sorted(frame["spec_hash"]) == sorted(local) and frame["spec_hash"].is_unique
    for _, row in frame.iterrows():
        assert {c: row[c] for c in COUNTED} == {c: str(local[row["spec_hash"]][c]) for c in COUNTED}
    assert set(frame["host"]) == {socket.gethostname()}
    # each row carries the environment of the host that measured it (here: this one)
    assert set(frame["env_cpu_model"]) == {str(next(iter(local.values()))["env_cpu_model"])}
    assert (frame["latency_n"].astype(int) >= 10).all()


def test_an_interrupted_run_keeps_whole_rows_and_a_resume_gives_every_row_once(
    handle, profile, tmp_path
):
    out = tmp_path / "ray.csv"
    journal = CsvJournal(out, resume=False, force=False)

    def on_row(row):
        journal.append(row)
        interrupts._received.append(signal.SIGTERM)  # as the deferred handler does

    with interrupts.deferred(), pytest.raises(Interrupted, match="SIGTERM"):
        cluster.run_points(handle, profile, todo(profile), on_row)
    first = pd.read_csv(out, dtype=str, keep_default_na=False)
    # the first point's rows arrived together and were all written; the second was cancelled
    assert len(first) == 2 and first["spec_hash"].is_unique

    journal = CsvJournal(out, resume=True, force=False)
    remaining = todo(profile, journal.done)
    assert sum(len(specs) for _, specs in remaining) == 2
    with interrupts.deferred():
        result = cluster.run_points(handle, profile, remaining, journal.append)
    assert (result.written, result.missing) == (2, [])
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    expected = sorted(s.digest(p.threads) for p in profile.points() for s in p.subjects)
    assert sorted(frame["spec_hash"]) == expected  # every row exactly once
    assert frame["spec_hash"].head(2).tolist() == first["spec_hash"].tolist()


def test_with_no_host_offering_the_timer_the_points_are_reported_missing(handle, profile):
    # the watchdog: tasks that no node can ever run are given up after the grace period
    absent = dataclasses.replace(handle, resource="mnv2prof_timer_absent", hosts={})
    rows = []
    started = time.monotonic()
    with interrupts.deferred():
        result = cluster.run_points(absent, profile, todo(profile), rows.append,
                                    poll_s=0.1, no_timer_grace_s=0.3)
    assert time.monotonic() - started < 10
    expected = [s.digest(p.threads) for p in profile.points() for s in p.subjects]
    assert rows == [] and result.written == 0 and sorted(result.missing) == sorted(expected)
    assert result.reasons == [
        f"exp_ratio={t}: no host offers mnv2prof_timer_absent any more" for t in (1, 2)
    ]
