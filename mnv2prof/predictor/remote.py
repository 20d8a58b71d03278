"""`predictor build --ray ADDRESS`: samples timed as Ray tasks, the table journaled here.

Thin on purpose: the connection, its checks and its one-timing-per-host resource are
sweeps/cluster.py's (`connect`), and each task runs what a local build runs,
`sampling.measure_batch` (write a batch of samples' graphs, detect their kernels, time the new
ones beside the drift probes), holding the host's timer resource, so one timing runs on a host
at a time. A round holds one batch per timer slot (the runner's `slots`, build.py); each task
gets the keys timed when its round began, and a kernel two hosts timed in one round is kept once
(the first to arrive). Each result carries its host's
fingerprint, which the build checks against its own: a predictor is timed on identical hosts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from mnv2prof import interrupts
from mnv2prof.errors import Mnv2profError, first_line
from mnv2prof.predictor.sampling import Sample, SampleResult, measure_batch

POLL_S = 0.5  # the longest wait between checks for a signal


class ClusterFailure(Mnv2profError):
    """A task failed on the cluster (exit 3): what is journaled stays, --resume goes on."""


def cluster_runner(handle, threads: int, kernel_budget_s: float | None):
    """A build.Runner that times each batch as a task on the connected cluster `handle`."""
    from mnv2prof.sweeps.ray_address import import_ray

    ray = import_ray()
    task = ray.remote(num_cpus=1, resources={handle.resource: 1}, max_retries=2)(measure_batch)

    def run(batches: Sequence[Sequence[Sample]], known: set[str]
            ) -> Iterator[list[SampleResult]]:
        snapshot = ray.put(frozenset(known))
        pending = {task.remote(list(b), snapshot, threads, kernel_budget_s): b for b in batches}
        try:
            while pending:
                interrupts.check()
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    batch = pending.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        shown = ", ".join(s.id for s in batch)
                        raise ClusterFailure(f"samples {shown}: "
                                             f"{first_line(exc, with_type=True)}") from None
        finally:
            for ref in pending:  # an interrupt, a failure, or the budget spent mid-round
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)

    run.slots = int(sum(handle.hosts.values())) or 1
    return run
