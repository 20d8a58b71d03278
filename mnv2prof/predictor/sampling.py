"""Samples: the graphs whose kernels `predictor build` times, and the one function that times
them (here, or on a Ray worker: remote.py).

A sample is a recipe (a network or a lone block drawn from the space, or a pattern around a
kernel the predictor got wrong), small enough to send to a worker, which writes its graph
(graphs.py), lets onnxruntime optimize it, and times each of its kernels that is not yet in the
table (`measure_batch`: a batch of samples, their new kernels timed in one rotation beside the
drift probes). Every kernel of a sample is kept, not only the one a pattern aims at: the
reorders and convs around it are kernels of their own kinds.

Prior samples are numbered and seeded by their number (`prior_samples`), so a resumed build
draws the same ones and skips those it has.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from mnv2prof import interrupts

from mnv2prof.predictor.space import Arch, LoneBlock, Space, random_arch, random_lone_block


@dataclass(frozen=True)
class Pattern:
    """A graph around a kernel of `kind` like the one of `features` (graphs.pattern)."""

    kind: str
    features: tuple[tuple[str, float], ...]
    seed: int


@dataclass(frozen=True)
class Sample:
    id: str  # "n12" a network, "b7" a lone block, "p3.1" a pattern, "c4" a calibration network
    recipe: Arch | LoneBlock | Pattern

    def model(self) -> bytes | None:
        from mnv2prof.predictor import graphs

        recipe = self.recipe
        if isinstance(recipe, Arch):
            model = graphs.network_model(recipe, _seed(self.id))
        elif isinstance(recipe, LoneBlock):
            model = graphs.lone_block_model(recipe, _seed(self.id))
        else:
            model = graphs.pattern(recipe.kind, dict(recipe.features), recipe.seed)
        return model.SerializeToString() if model is not None else None

    @property
    def text(self) -> str:
        """What it is, in a few words (the samples.csv `recipe` column)."""
        recipe = self.recipe
        if isinstance(recipe, Arch):
            kinds = sorted({b.kind for b in recipe.blocks})
            return (f"network {'+'.join(kinds)} r{recipe.resolution} stem{recipe.stem_chs} "
                    f"{len(recipe.blocks)} blocks")
        if isinstance(recipe, LoneBlock):
            b = recipe.block
            return (f"block {b.kind} c{recipe.in_chs} o{b.out_chs} r{recipe.resolution} "
                    f"k{b.kernel_size} s{b.stride} e{b.exp_ratio:g} se{int(b.se)} {b.act}")
        return f"pattern {recipe.kind}"


def _seed(sample_id: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(sample_id))


@dataclass
class SampleResult:
    sample: str
    rows: list[dict[str, object]]  # the kernels timed now (folder.KERNEL_COLUMNS)
    kernels: int  # kernels in the sample
    seconds: float
    host: str = field(default_factory=socket.gethostname)
    fingerprint: dict[str, object] = field(default_factory=dict)


def prior_samples(space: Space, start: int = 0, prefix: str = "",
                  lone_share: float | None = None) -> Iterator[Sample]:
    """Networks and lone blocks drawn from `space`, numbered from `start`: sample i is the same
    in every build over the space (seeded by the space's seed and i)."""
    share = space.lone_blocks if lone_share is None else lone_share
    i = start
    while True:
        rng = np.random.default_rng([space.seed, i, len(prefix)])
        if rng.random() < share:
            yield Sample(f"{prefix}b{i}", random_lone_block(space, rng))
        else:
            yield Sample(f"{prefix}n{i}", random_arch(space, rng))
        i += 1


def take(samples: Iterator[Sample], done: set[str], count: int) -> list[Sample]:
    """The next `count` samples of `samples` whose ids are not in `done`."""
    taken: list[Sample] = []
    while len(taken) < count:
        sample = next(samples)
        if sample.id not in done:
            taken.append(sample)
    return taken


def kernel_row(kernel, sample: str, timing, floor_ms: float, probe_ms: float,
               host: str) -> dict[str, object]:
    """A kernel's row of the table (folder.KERNEL_COLUMNS)."""
    return {"key": kernel.key, "kind": kernel.kind, "op": kernel.op, "sample": sample,
            "macs": kernel.macs, **{k: v for k, v in kernel.features.items() if k != "macs"},
            "kernel_ms": round(timing.ms, 7), "kernel_median_ms": round(timing.median_ms, 7),
            "spread_rel": round(timing.spread_rel, 5), "rounds": timing.rounds,
            "floor_ms": round(floor_ms, 7), "probe_ms": round(probe_ms, 7), "host": host}


MAX_BATCH_KERNELS = 160  # sessions held at once in one timing call


def measure_batch(samples: Sequence[Sample], known: frozenset[str] | set[str], threads: int = 1,
                  kernel_budget_s: float | None = None) -> list[SampleResult]:
    """Write each sample's graph, detect its kernels, and time alone, in one rotation with the
    drift probes (timing.probe_graphs), those of a known kind whose key is not in `known` (each
    once, credited to the first sample that has it): what a local build and a Ray task run."""
    from mnv2prof.predictor.detect import detect, kernel_graph
    from mnv2prof.predictor.fingerprint import fingerprint

    start = time.perf_counter()
    fresh: dict[str, tuple[str, object, bytes]] = {}  # key -> (sample, kernel, its graph)
    counts: dict[str, int] = {}
    for sample in samples:
        interrupts.check()
        model = sample.model()
        detected = detect(model, threads) if model is not None else None
        counts[sample.id] = len(detected.kernels) if detected else 0
        for kernel in detected.kernels if detected else ():
            if kernel.kind and kernel.timeable and kernel.key not in known \
                    and kernel.key not in fresh:
                fresh[kernel.key] = (sample.id, kernel, kernel_graph(detected, kernel))
    rows = _time_fresh(fresh, threads, kernel_budget_s)
    host, here = socket.gethostname(), fingerprint(threads)
    seconds = (time.perf_counter() - start) / max(1, len(samples))
    return [SampleResult(s.id, [r for r in rows if r["sample"] == s.id], counts[s.id], seconds,
                         host, here) for s in samples]


def _time_fresh(fresh: dict, threads: int, kernel_budget_s: float | None) -> list[dict]:
    """Time the fresh kernels in batches of at most `MAX_BATCH_KERNELS`, each with the probes."""
    from mnv2prof.predictor.timing import KERNEL_BUDGET_S, probe_graphs, time_kernels

    host, probes = socket.gethostname(), probe_graphs(threads)
    keys, rows = list(fresh), []
    for first in range(0, len(keys), MAX_BATCH_KERNELS):
        part = keys[first:first + MAX_BATCH_KERNELS]
        times, floor, probe = time_kernels({k: fresh[k][2] for k in part}, threads,
                                           kernel_budget_s or KERNEL_BUDGET_S, probes)
        rows += [kernel_row(fresh[k][1], fresh[k][0], times[k], floor, probe, host)
                 for k in part]
    return rows
