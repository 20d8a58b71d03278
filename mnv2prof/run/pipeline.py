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
from mnv2prof.models.variants import BlockSpec, row_hash
from mnv2prof.onnx.export import export_cached
from mnv2prof.run.deploy import (
    Artifact,
    RowRequest,
    Target,
    artifact_runner,
    build_artifact,
    int8_onnx,
)
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
    rows: Sequence[BlockSpec | RowRequest],
    timing: TimingSpec,
    seed: int = 0,
    progress: Progress | None = None,
    calibration: str = "minmax",
    **options: object,
) -> ProfileRun:
    """Export, count and time `rows` (specs: fp32 onnxruntime): one `Record` per row, in order,
    and the harness floor measured with them. `options`: `timed_records`' `device`, `eager`."""
    progress = progress or Progress()
    wanted = [r if isinstance(r, RowRequest) else RowRequest(r) for r in rows]
    specs = list(dict.fromkeys(r.spec for r in wanted))
    prepared: dict[BlockSpec, PreparedBlock] = {}
    for i, spec in enumerate(specs):
        interrupts.check()
        prepared[spec] = prepare(spec, seed)
        if progress.on_export:
            progress.on_export(spec, i + 1, len(specs))
    int8 = {}  # spec -> its int8 ONNX file and cost, shared by the int8 rows of every runtime
    built = []
    for row in wanted:
        interrupts.check()
        p = prepared[row.spec]
        if row.precision == "int8" and row.spec not in int8:
            int8[row.spec] = int8_onnx(p, seed, calibration)
        built.append((p, build_artifact(p, row.target, seed, calibration, int8.get(row.spec))))
    return timed_records(built, timing, seed, progress, **options)


def timed_records(
    rows: Sequence[PreparedBlock | tuple[PreparedBlock, Artifact]],
    timing: TimingSpec,
    seed: int = 0,
    progress: Progress | None = None,
    device: str = "cpu",
    eager: bool = True,
) -> ProfileRun:
    """Time `rows` (a block, or a block and the artefact of a precision and runtime), each
    (runtime, precision) in its own phase, then the torch modules eagerly; records and the
    harness floor (timed in the first onnxruntime phase).

    `device="cuda"` adds a phase per GPU runtime (cuda.block_runners); the CPU columns are
    measured as always, so one table holds both.
    """
    from mnv2prof.measure.eager import EagerRunner, inference_graph, measure_memories, torch_threads
    from mnv2prof.models.blocks import build_block

    progress = progress or Progress()
    rows = [r if isinstance(r, tuple) else (r, build_artifact(r, Target(), seed)) for r in rows]
    blocks = list(dict.fromkeys(p for p, _ in rows))
    by_target: dict[Target, dict[object, Callable[[], float | None]]] = {}
    for p, artifact in rows:
        runner = artifact_runner(artifact, timing.threads, p.spec.input_shape, seed)
        by_target.setdefault(artifact.target, {})[(artifact.target, p.spec)] = runner
    watched: list[object] = [key for phase in by_target.values() for key in phase]
    floor_phase = next((ph for t, ph in by_target.items() if t.runtime == "onnxruntime"), None)
    if floor_phase is None:
        floor_phase = by_target.setdefault(Target(), {})
    floor_phase[HARNESS_FLOOR] = OrtRunner(identity_model(), timing.threads, seed)
    phases = list(by_target.values())
    if eager:
        phases.append(
            {("eager", p.spec): EagerRunner(p.module, p.spec.input_shape, seed) for p in blocks}
        )
        watched += list(phases[-1])
    notes: list[str] = []
    if timing.cache == CACHE_COLD:
        notes.append(cold_cache_note())
    if device == "cuda":
        from mnv2prof.measure import cuda

        ort_note = cuda.ort_cuda_unavailable()
        notes += [ort_note] if ort_note else []
        gpu_phases: dict[str, dict[object, Callable[[], float | None]]] = {}
        for p in blocks:
            gpu_runners = cuda.block_runners(
                lambda p=p: build_block(p.spec, seed),
                p.spec.input_shape,
                None if ort_note else p.model_path,
                seed,
            )
            for kind, run in gpu_runners.items():
                gpu_phases.setdefault(kind, {})[(kind, p.spec)] = run
        phases += gpu_phases.values()
        watched += [key for phase in gpu_phases.values() for key in phase]
    with torch_threads(timing.threads):
        measurements = measure_phases(phases, timing, progress.on_timing, converge=watched)
        folded = [(inference_graph(p.module), p.spec.input_shape) for p in blocks]
        memory = dict(zip((p.spec for p in blocks), measure_memories(folded, seed), strict=True))
    env = current_environment(device)
    gpu: dict[BlockSpec, dict[str, object]] = {p.spec: {} for p in blocks}
    if device == "cuda":
        for p in blocks:
            gpu[p.spec] = {
                kind: measurements.get((kind, p.spec))
                for kind in ("cuda_eager", "cuda_graph", "cuda_ort")
            }
            gpu[p.spec]["cuda_peak_bytes"] = cuda.measure_peak_memory(
                inference_graph(p.module), p.spec.input_shape, seed  # a copy: moved to the GPU
            )
    # the torch module's own columns (eager, measured memory, GPU) go on one row of its block:
    # the fp32 onnxruntime row, else its first fp32 row, else its first row
    owner: dict[BlockSpec, Target] = {}
    for p, artifact in sorted(rows, key=lambda r: (r[1].target != Target(),
                                                     r[1].target.precision != "fp32")):
        owner.setdefault(p.spec, artifact.target)
    records = []
    for p, artifact in rows:
        target = artifact.target
        own = owner[p.spec] == target
        fp32 = measurements.get((Target("fp32", target.runtime), p.spec))
        latency = measurements[(target, p.spec)]
        speedup = (fp32.median_ms / latency.median_ms if target.precision == "int8" and fp32
                   and latency.median_ms > 0 else None)
        records.append(make_record(
            p, latency, timing, env, artifact=artifact, int8_speedup_x=speedup,
            eager=measurements.get(("eager", p.spec)) if own else None,
            measured_peak_bytes=memory[p.spec].peak_bytes if own else None,
            measured_alloc_peak_bytes=memory[p.spec].alloc_peak_bytes if own else None,
            **(gpu[p.spec] if own else {}),
        ))
    return ProfileRun(records, measurements[HARNESS_FLOOR], tuple(notes))


def make_record(
    prepared: PreparedBlock,
    latency: Measurement,
    timing: TimingSpec,
    env,
    artifact: Artifact,
    **measured: object,
) -> Record:
    """`measured`: Record's optional fields (eager, measured_peak_bytes, ...)."""
    spec = prepared.spec
    target = artifact.target
    return Record(
        label=spec.label,
        variant=spec.variant,
        spec=spec.name,
        spec_hash=row_hash(spec, timing.threads, target.precision, target.runtime),
        spec_fields=tuple((k, v) for k, v in spec.to_dict().items() if k != "variant"),
        cost=artifact.cost,
        latency=latency,
        threads=timing.threads,
        cache_mode=timing.cache,
        env=env,
        precision=target.precision,
        runtime=target.runtime,
        int8_max_abs_err=artifact.max_abs_err,
        int8_sqnr_db=artifact.sqnr_db,
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
