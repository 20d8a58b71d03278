"""Sweeps past one machine, end to end (issue 18): `sweep --shard K/N` and `merge` give the rows
of a plain sweep, `sweep --ray local` does too with each row's host, an interrupted Ray sweep
resumes with every row exactly once, and bad input is one line."""

import os
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.helpers import read_rows, tiny_profile

COUNTED = ["macs", "params", "peak_act_bytes", "bytes_moved", "weight_bytes", "flops",
           "elementwise_ops", "nodes"]
SPEC_COLUMNS = ["variant", "spec", "spec_hash", "threads", "exp_ratio", *COUNTED]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A plain local sweep of the tiny profile (2 expansions x 2 variants, 3 expansions here
    so that two shards are both non-empty): its profile and rows."""
    from mnv2prof.cli import main

    folder = tmp_path_factory.mktemp("plain")
    profile = tiny_profile(folder, name="scale", expansions=(1, 2, 3))
    out = folder / "plain.csv"
    assert main(["sweep", str(profile), "--out", str(out)]) == 0
    return profile, read_rows(out)


def same_rows(frame, reference):
    """Equal spec and counted columns, row by row, whatever the order."""
    ours = frame[SPEC_COLUMNS].sort_values("spec_hash").reset_index(drop=True)
    theirs = reference[SPEC_COLUMNS].sort_values("spec_hash").reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs)


def test_shards_then_merge_give_the_plain_sweeps_rows(run_cli, plain, tmp_path):
    profile, reference = plain
    parts = []
    for k in (1, 2):
        part = tmp_path / f"part-{k}.csv"
        code, _, err = run_cli("sweep", profile, "--shard", f"{k}/2", "--out", part)
        assert code == 0, err
        frame = read_rows(part)
        assert f"in shard {k}/2 of the profile" in err
        # the documented rule, checkable by hand: int(spec_hash, 16) % N + 1
        assert [int(h, 16) % 2 + 1 for h in frame["spec_hash"]] == [k] * len(frame)
        parts.append((part, frame))
    sizes = [len(frame) for _, frame in parts]
    assert sum(sizes) == len(reference) == 6 and min(sizes) > 0
    assert not set(parts[0][1]["spec_hash"]) & set(parts[1][1]["spec_hash"])

    merged = tmp_path / "all.csv"
    code, _, err = run_cli("merge", parts[0][0], parts[1][0], "--out", merged)
    assert code == 0, err
    assert f"wrote 6 rows from 2 file(s) to {merged}" in err
    frame = read_rows(merged)
    same_rows(frame, reference)
    assert set(frame["host"]) == {socket.gethostname()}
    # the parts' bytes, in the order given: a merged file is a journal sweep can resume
    texts = [p.read_text().splitlines() for p, _ in parts]
    assert merged.read_text().splitlines() == texts[0] + texts[1][1:]
    code, _, err = run_cli("sweep", profile, "--out", merged, "--resume")
    assert code == 0 and "wrote 0 rows" in err and "6 already there, 6 in the profile" in err

    # a shard already complete resumes to nothing
    code, _, err = run_cli("sweep", profile, "--shard", "1/2", "--out", parts[0][0], "--resume")
    assert code == 0 and f"wrote 0 rows to {parts[0][0]} ({sizes[0]} already there" in err


@pytest.mark.parametrize(("shard", "message"), [
    ("abc", "--shard must be K/N with whole numbers 1 <= K <= N (e.g. 2/4), got 'abc'"),
    ("0/2", "--shard 0/2: K must be between 1 and N (2), counted from 1"),
    ("3/2", "--shard 3/2: K must be between 1 and N (2), counted from 1"),
    ("1/0", "--shard 1/0: N must be at least 1"),
])
def test_a_bad_shard_is_one_line_and_writes_nothing(run_cli, tmp_path, shard, message):
    out = tmp_path / "out.csv"
    code, out_text, err = run_cli("sweep", tiny_profile(tmp_path), "--shard", shard, "--out", out)
    assert (code, err.strip()) == (2, f"mnv2prof: error: {message}")
    assert not out.exists() and out_text == ""


def test_merge_refusals_are_one_line_and_write_nothing(run_cli, plain, tmp_path):
    _, reference = plain
    a, b, other = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "other.csv"
    reference.to_csv(a, index=False)
    reference.head(2).to_csv(b, index=False)
    reference.drop(columns=["nodes"]).to_csv(other, index=False)
    merged = tmp_path / "all.csv"
    spec_hash = reference["spec_hash"][0]
    cases = [
        ((a, b), f"merge: spec_hash {spec_hash} on host {reference['host'][0]} is in {a} "
                 f"(row 1) and {b} (row 1): a row is merged once"),
        ((a, a), f"merge: {a} is given twice (as {a} and {a})"),
        ((a, other), f"merge: {other} has other columns than {a} (missing: nodes; extra: "
                     "none): files written by different versions are not merged"),
        ((a, tmp_path / "absent.csv"), f"merge input {tmp_path / 'absent.csv'} does not exist"),
    ]
    for files, message in cases:
        code, _, err = run_cli("merge", *files, "--out", merged)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and message in err, err
        assert not merged.exists()
    code, _, err = run_cli("merge", "--out", merged)
    assert code == 2 and "Missing argument 'CSV...'" in err


def test_ray_without_the_extra_is_one_line_naming_it(run_cli, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "out.csv"
    code, _, err = run_cli("sweep", tiny_profile(tmp_path), "--ray", "local", "--out", out)
    assert (code, err.strip().splitlines()[-1]) == (
        2, "mnv2prof: error: --ray needs Ray: pip install -e '.[ray]'"
    )
    assert not out.exists()


@pytest.mark.slow  # starts a local Ray cluster (4-9 s) and stops it
def test_a_ray_sweep_gives_the_plain_sweeps_rows_with_the_host(run_cli, plain, tmp_path):
    pytest.importorskip("ray")
    profile, reference = plain
    out = tmp_path / "ray.csv"
    code, _, err = run_cli("sweep", profile, "--ray", "local", "--out", out)
    assert code == 0, err
    assert f"1 host(s) time, one point at a time each: {socket.gethostname()}" in err
    assert "wrote 6 rows" in err and "0 already there, 6 in the profile" in err
    frame = read_rows(out)
    assert frame["spec_hash"].is_unique
    same_rows(frame, reference)
    assert set(frame["host"]) == {socket.gethostname()}
    assert set(frame["env_cpu_model"]) == set(reference["env_cpu_model"])
    assert (frame["latency_n"] >= 10).all()


def start_ray_sweep(profile, out, *flags):
    return subprocess.Popen(
        [sys.executable, "-m", "mnv2prof", "sweep", str(profile), "--ray", "local", "--out",
         str(out), *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
        start_new_session=True,  # a stray Ray daemon is found and killed by its group
    )


@pytest.mark.slow  # two local clusters in real processes: about 40 s
def test_an_interrupted_ray_sweep_resumes_with_every_row_once(run_cli, tmp_path):
    pytest.importorskip("ray")
    # resolution 11 is used by no other test: the exports are not cached, so the sweep is
    # still running when the signal comes
    profile = tiny_profile(tmp_path, name="ray-kill", resolution=11,
                           expansions=(1, 2, 3, 4, 5, 6), variants=("mbv2",))
    out = tmp_path / "ray.csv"
    process = start_ray_sweep(profile, out)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if out.exists() and out.read_text().count("\n") >= 2:  # the header and a row
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert "interrupted:" in err and "--resume" in err and "Traceback" not in err
    first = read_rows(out)
    assert 1 <= len(first) < 6 and first["spec_hash"].is_unique

    process = start_ray_sweep(profile, out, "--resume")
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert f"wrote {6 - len(first)} rows" in err and f"{len(first)} already there" in err
    frame = read_rows(out)
    assert sorted(frame["exp_ratio"]) == [1, 2, 3, 4, 5, 6]  # every row exactly once
    assert frame["spec_hash"].head(len(first)).tolist() == first["spec_hash"].tolist()
    assert not _session_processes(process.pid), "the local cluster outlived its driver"


def _session_processes(session: int, wait_s: float = 10.0) -> list[str]:
    """Live processes left in the driver's session (its local Ray cluster's daemons start
    there), after waiting up to `wait_s` for them to end. A zombie (stat Z, `<defunct>`) has
    ended: it waits only to be reaped by init, which the exited driver handed it to."""
    deadline = time.monotonic() + wait_s
    while True:
        found = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-s", str(session)],
                               capture_output=True, text=True)
        live = [line for line in found.stdout.strip().splitlines()
                if line.split()[1:2] and not line.split()[1].startswith("Z")]
        if not live or time.monotonic() > deadline:
            return live
        time.sleep(0.2)
