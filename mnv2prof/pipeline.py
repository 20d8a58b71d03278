"""specs -> (export, count, time) -> records: the one path every command measures through."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mnv2prof.counting import count_graph
from mnv2prof.env import current_environment
from mnv2prof.export import export_spec
from mnv2prof.graph import load_graph
from mnv2prof.latency import Measurement, OrtRunner, TimingSpec, measure_interleaved
from mnv2prof.memory import peak_activation_memory
from mnv2prof.records import CountedCost, Record
from mnv2prof.variants import BlockSpec


@dataclass
class Progress:
    """Callbacks a front end may give to show progress; every one is optional."""

    on_export: Callable[[BlockSpec, int, int], None] | None = None  # spec, done, total
    on_timing: Callable[[float], None] | None = None  # fraction of the budget used


@dataclass(frozen=True)
class PreparedBlock:
    spec: BlockSpec
    model_path: Path
    cost: CountedCost
    cached: bool


def count_model(model_path: Path, params: int) -> CountedCost:
    graph = load_graph(model_path)
    return CountedCost.from_graph(params, count_graph(graph), peak_activation_memory(graph))


def prepare(spec: BlockSpec, seed: int = 0) -> PreparedBlock:
    """Export (or load from cache) and count one block."""
    from mnv2prof.blocks import build_block, count_params

    exported = export_spec(spec, seed)
    params = count_params(build_block(spec, seed))
    return PreparedBlock(spec, exported.path, count_model(exported.path, params), exported.cached)


def profile_blocks(
    specs: Sequence[BlockSpec],
    timing: TimingSpec,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[Record]:
    """Export, count and time `specs` (timed interleaved); one `Record` per spec, in order."""
    progress = progress or Progress()
    prepared = []
    for i, spec in enumerate(specs):
        prepared.append(prepare(spec, seed))
        if progress.on_export:
            progress.on_export(spec, i + 1, len(specs))
    runners = {p.spec: OrtRunner(p.model_path, timing.threads, seed) for p in prepared}
    measurements = measure_interleaved(runners, timing, progress.on_timing)
    env = current_environment()
    return [make_record(p, measurements[p.spec], timing.threads, env) for p in prepared]


def make_record(prepared: PreparedBlock, latency: Measurement, threads: int, env) -> Record:
    spec = prepared.spec
    return Record(
        label=spec.variant,
        spec=spec.name,
        spec_hash=spec.digest(threads),
        spec_fields=tuple(spec.to_dict().items()),
        cost=prepared.cost,
        latency=latency,
        threads=threads,
        env=env,
    )
