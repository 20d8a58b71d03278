"""specs -> (export, count, time) -> records: the one path every command measures through.

Each runtime is timed in its own phase (`latency.measure_phases`), with the whole budget each:
first every spec's ONNX file in onnxruntime, beside an identity model that gives the harness
floor (only the blocks' CIs decide when sampling may stop early; the floor rides along), then
every spec's torch module eagerly (same thread count; skipped with `eager=False`), then, with
`device="cuda"`, each GPU runtime. Within a phase the variants' bursts rotate round by round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from mnv2prof import interrupts
from mnv2prof.count.cost import CountedCost, count_model
from mnv2prof.measure.env import current_environment
from mnv2prof.measure.latency import (
    CACHE_COLD,
    Measurement,
    OrtRunner,
    TimingSpec,
    cold_cache_note,
    identity_model,
    measure_phases,
)
from mnv2prof.models.variants import BlockSpec
from mnv2prof.onnx.export import export_cached
from mnv2prof.run.records import Record


@dataclass
class Progress:
    """Callbacks a front end may give to show progress; every one is optional."""

    on_export: Callable[[BlockSpec, int, int], None] | None = None  # spec, done, total
    on_timing: Callable[[float], None] | None = None  # fraction of the budget used


HARNESS_FLOOR = "harness floor"  # the identity model's key among the runners


@dataclass(frozen=True)
class PreparedBlock:
    spec: BlockSpec
    model_path: Path
    cost: CountedCost
    cached: bool
    module: nn.Module  # build_block(spec, seed), built once: exported, counted, timed eagerly


def prepare(spec: BlockSpec, seed: int = 0) -> PreparedBlock:
    """Export (or load from cache) and count one block."""
    from mnv2prof.models.blocks import build_block
    from mnv2prof.onnx.sources import block_source

    module = build_block(spec, seed)
    exported = export_cached(block_source(spec), seed, module=module)
    return PreparedBlock(spec, exported.path, count_model(exported.path), exported.cached, module)


@dataclass(frozen=True)
class ProfileRun:
    records: list[Record]
    harness_floor: Measurement  # the identity model, timed like the blocks
    notes: tuple[str, ...] = ()  # what was left out and why (a GPU column onnxruntime cannot fill)


def profile_run(
    specs: Sequence[BlockSpec],
    timing: TimingSpec,
    seed: int = 0,
    progress: Progress | None = None,
    **options: object,
) -> ProfileRun:
    """Export, count and time `specs`: one `Record` per spec, in order, and the harness floor
    measured with them. `options`: `timed_records`' `device` and `eager`."""
    progress = progress or Progress()
    prepared = []
    for i, spec in enumerate(specs):
        interrupts.check()
        prepared.append(prepare(spec, seed))
        if progress.on_export:
            progress.on_export(spec, i + 1, len(specs))
    return timed_records(prepared, timing, seed, progress, **options)


def timed_records(
    prepared: Sequence[PreparedBlock],
    timing: TimingSpec,
    seed: int = 0,
    progress: Progress | None = None,
    device: str = "cpu",
    eager: bool = True,
) -> ProfileRun:
    """Time `prepared` in onnxruntime, then eagerly, each runtime in its own phase; records and
    the harness floor.

    `device="cuda"` adds a phase per GPU runtime (cuda.block_runners); the CPU columns are
    measured as always, so one table holds both.
    """
    from mnv2prof.measure.eager import EagerRunner, inference_graph, measure_memories, torch_threads
    from mnv2prof.models.blocks import build_block

    progress = progress or Progress()
    ort = {("ort", p.spec): OrtRunner(p.model_path, timing.threads, seed) for p in prepared}
    blocks: list[object] = list(ort)
    ort[HARNESS_FLOOR] = OrtRunner(identity_model(), timing.threads, seed)
    phases: list[dict[object, Callable[[], float | None]]] = [ort]
    if eager:
        phases.append(
            {("eager", p.spec): EagerRunner(p.module, p.spec.input_shape, seed) for p in prepared}
        )
    notes: list[str] = []
    if timing.cache == CACHE_COLD:
        notes.append(cold_cache_note())
    if device == "cuda":
        from mnv2prof.measure import cuda

        ort_note = cuda.ort_cuda_unavailable()
        notes += [ort_note] if ort_note else []
        gpu_phases: dict[str, dict[object, Callable[[], float | None]]] = {}
        for p in prepared:
            gpu_runners = cuda.block_runners(
                lambda p=p: build_block(p.spec, seed),
                p.spec.input_shape,
                None if ort_note else p.model_path,
                seed,
            )
            for kind, run in gpu_runners.items():
                gpu_phases.setdefault(kind, {})[(kind, p.spec)] = run
        phases += gpu_phases.values()
    blocks += [key for phase in phases[1:] for key in phase]
    with torch_threads(timing.threads):
        measurements = measure_phases(phases, timing, progress.on_timing, converge=blocks)
        folded = [(inference_graph(p.module), p.spec.input_shape) for p in prepared]
        memory = dict(zip((p.spec for p in prepared), measure_memories(folded, seed), strict=True))
    env = current_environment(device)
    gpu: dict[BlockSpec, dict[str, object]] = {p.spec: {} for p in prepared}
    if device == "cuda":
        for p in prepared:
            gpu[p.spec] = {
                kind: measurements.get((kind, p.spec))
                for kind in ("cuda_eager", "cuda_graph", "cuda_ort")
            }
            gpu[p.spec]["cuda_peak_bytes"] = cuda.measure_peak_memory(
                inference_graph(p.module), p.spec.input_shape, seed  # a copy: moved to the GPU
            )
    records = [
        make_record(
            p,
            measurements[("ort", p.spec)],
            timing,
            env,
            eager=measurements.get(("eager", p.spec)),
            measured_peak_bytes=memory[p.spec].peak_bytes,
            measured_alloc_peak_bytes=memory[p.spec].alloc_peak_bytes,
            **gpu[p.spec],
        )
        for p in prepared
    ]
    return ProfileRun(records, measurements[HARNESS_FLOOR], tuple(notes))


def make_record(
    prepared: PreparedBlock, latency: Measurement, timing: TimingSpec, env, **measured: object
) -> Record:
    """`measured`: Record's optional fields (eager, measured_peak_bytes, ...)."""
    spec = prepared.spec
    return Record(
        label=spec.label,
        variant=spec.variant,
        spec=spec.name,
        spec_hash=spec.digest(timing.threads),
        spec_fields=tuple((k, v) for k, v in spec.to_dict().items() if k != "variant"),
        cost=prepared.cost,
        latency=latency,
        threads=timing.threads,
        cache_mode=timing.cache,
        env=env,
        **measured,
    )


def block_layers(prepared: PreparedBlock, threads: int, runs: int, device: str = "cpu") -> list:
    """Per-layer rows of one block: the nodes onnxruntime runs on the CPU (measure.layers), or
    the block's layers run eagerly on the GPU (measure.eager_layers)."""
    if device == "cuda":
        from mnv2prof.measure.eager_layers import profile_eager_layers

        spec = prepared.spec
        return profile_eager_layers(
            prepared.module, prepared.model_path, spec.input_shape, "cuda", runs
        )
    from mnv2prof.measure.layers import profile_layers

    return profile_layers(prepared.model_path, threads, runs)
