"""`predictor build --ray`: samples timed as tasks on a real local Ray cluster (one node, the
timer resource once), the table journaled on the driver. Skipped without Ray."""

import csv
import socket

import pytest

from mnv2prof import interrupts
from mnv2prof.predictor.build import BuildPlan, build
from mnv2prof.predictor.space import load_space


@pytest.mark.slow
def test_a_build_on_a_local_cluster(tmp_path, tiny_space):
    pytest.importorskip("ray")
    from mnv2prof.predictor.remote import cluster_runner
    from mnv2prof.sweeps import cluster

    space = load_space(tiny_space)
    with interrupts.deferred(), cluster.connect("local") as handle:
        run = cluster_runner(handle, space.threads, space.kernel_budget_s)
        result = build(BuildPlan(tmp_path / "p", space, 10.0), run=run)
    assert result.kernels_timed > 0 and (tmp_path / "p" / "predictor.json").is_file()
    with open(tmp_path / "p" / "kernels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == result.kernels == len({r["key"] for r in rows})
    assert {r["host"] for r in rows} == {socket.gethostname()}
