"""`sweep`: a profile's grid measured row by row into a journal, here or on a Ray cluster."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from mnv2prof.run.plan import Plan


def sweep(
    plan: Plan,
    out: Path | str,
    *,
    resume: bool = False,
    force: bool = False,
    device: str = "cpu",
    shard: tuple[int, int] | None = None,
    ray: str | None = None,
    hooks=None,
    on_cluster: Callable[[object], None] | None = None,
):
    """Check `plan` (a profile's), open the journal `out` (checked, resumed or replaced), and
    measure the rows it lacks; with `ray`, on the cluster at that address (`on_cluster` is
    called with the connection once its hosts are known). Rows a cluster could not measure are
    in the result's `missing` (`check_complete` makes them an error)."""
    from mnv2prof.sweeps.sweep import Sweep

    plan.check()
    run = Sweep(plan.profile, Path(out), resume, force, device=device, shard=shard,
                on_cluster=ray is not None)
    return run.run(hooks) if ray is None else _on_cluster(run, ray, device, hooks, on_cluster)


def check_complete(result, out: Path | str) -> None:
    """`SweepIncomplete` (exit 3) when rows are missing: they are not in `out`, and
    `--resume` measures them."""
    from mnv2prof.sweeps.sweep import SweepIncomplete

    if result.missing:
        raise SweepIncomplete(
            f"{len(result.missing)} of {result.total} rows could not be measured on the cluster "
            f"and are not in {out}: run again with --resume to measure them")


def _on_cluster(run, address: str, device: str, hooks, on_cluster):
    from mnv2prof.sweeps import cluster

    with cluster.connect(address) as handle:
        if on_cluster:
            on_cluster(handle)
        if device == "cuda":
            cluster.check_gpus(handle)
        return run.run(hooks, remote=functools.partial(cluster.run_points, handle))
