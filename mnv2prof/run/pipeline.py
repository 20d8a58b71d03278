"""rows -> (export, count, time) -> records: the one path every command measures through.

A row is a subject (a built-in block's spec, a user's block's, a user's model: torch or an ONNX
file) on a target (run.deploy). Each subject is prepared once (`prepare`: exported and counted),
each row's artefact made once (`deploy.artifacts`), then `time_artifacts` times them.

Each runtime is timed in its own phase (`latency.measure_phases`), with the whole budget each:
first every row's artefact of one (runtime, precision) beside, in the first onnxruntime phase, an
identity model that gives the harness floor (only the rows' CIs decide when sampling may stop
early; the floor rides along), then every torch module eagerly (same thread count; skipped with
`eager=False`; an ONNX file has none), then, with `device="cuda"`, each GPU runtime. Within a
phase the rows' bursts rotate round by round.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mnv2prof import interrupts
from mnv2prof.measure.latency import Measurement
from mnv2prof.measure.timing import TimingSpec
from mnv2prof.models.targets import Target
from mnv2prof.errors import UsageError
from mnv2prof.run.deploy import Artifact, Prepared, Row, artifact_runner, artifacts, ort_error
from mnv2prof.run.records import Record

if TYPE_CHECKING:
    from mnv2prof.measure.cuda import OrtCudaGap

Runners = dict[Hashable, Callable[[], float | None]]


@dataclass
class Progress:
    """Callbacks a front end may give to show progress; every one is optional."""

    on_export: Callable[[object, int, int], None] | None = None  # subject, done, total
    on_timing: Callable[[float], None] | None = None  # fraction of the budget used
    on_batch: Callable[[list, int], None] | None = None  # a profile's grid points, their rows
    on_rows: Callable[[int], None] | None = None  # rows of a profile's grid measured


HARNESS_FLOOR = "harness floor"  # the identity model's key among the runners
GPU_KINDS = ("cuda_eager", "cuda_graph", "cuda_ort")


def prepare(subject, seed: int = 0) -> Prepared:
    """Export (or load from the cache) and count one block or torch model; an ONNX file is
    vetted and counted where it is (run.model_file). The user's code is exported in the worker
    (run.user_code), its module built there whenever one is needed."""
    from mnv2prof.artifacts.export import export_cached
    from mnv2prof.artifacts.sources import source_of
    from mnv2prof.count.cost import count_cached
    from mnv2prof.run import user_code

    if getattr(subject, "onnx_file", False):
        from mnv2prof.run.model_file import prepare_file

        return prepare_file(subject)
    source = source_of(subject)
    if user_code.needs_worker(subject):
        exported = user_code.export(subject, seed)
        # module_of builds it in this process: for the GPU paths alone (--device cuda)
        return Prepared(subject, subject.name, source.identity, exported.path,
                        count_cached(exported.path), subject.input_shape,
                        module_of=lambda: source.build(seed), cached=exported.cached,
                        worker=user_code.ModuleRef(subject, seed))
    with in_process(subject):
        module = source.build(seed)
        exported = export_cached(source, seed, module=module)
    return Prepared(subject, subject.name, source.identity, exported.path,
                    count_cached(exported.path), subject.input_shape, module_of=lambda: module,
                    cached=exported.cached, torch_module=[module])


def exported(subject, seed: int = 0):
    """The checked ONNX file of a block or a torch model (artifacts.export.ExportResult): the
    user's code is exported in the worker, a cache hit read here."""
    from mnv2prof.artifacts.export import export_cached
    from mnv2prof.artifacts.sources import source_of
    from mnv2prof.run import user_code

    if user_code.needs_worker(subject):
        return user_code.export(subject, seed)
    with in_process(subject):
        return export_cached(source_of(subject), seed)


def in_process(subject):
    """Where a Python API callable runs in this process: its SystemExit or KeyboardInterrupt is
    one error naming it, and what torch prints about it stays unprinted (plugins.guarded)."""
    import contextlib

    from mnv2prof.models.plugins import guarded

    if getattr(subject, "builtin", False) or not getattr(subject, "source", ""):
        return contextlib.nullcontext()
    return guarded(subject.source)


@dataclass(frozen=True)
class Measured:
    records: list[Record]
    harness_floor: Measurement  # the identity model, timed like the rows
    notes: tuple[OrtCudaGap, ...] = ()  # what was left out and why (report.notes words it)
    cache_mode: str = "warm"  # the cache state every latency was timed in (TimingSpec.cache)


def measure_rows(
    rows: Sequence[object | Row],
    timing: TimingSpec,
    seed: int = 0,
    progress: Progress | None = None,
    calibration: str = "minmax",
    device: str = "cpu",
    eager: bool = True,
    paired: bool = False,
) -> Measured:
    """Export, count and time `rows` (subjects alone: fp32 onnxruntime): one `Record` per row,
    in order, and the harness floor measured with them; `paired`: every row in every round (an
    A/B gate's base and change)."""
    progress = progress or Progress()
    wanted = [r if isinstance(r, Row) else Row(r) for r in rows]
    subjects = list(dict.fromkeys(r.subject for r in wanted))
    prepared: dict[object, Prepared] = {}
    for i, subject in enumerate(subjects):
        interrupts.check()
        prepared[subject] = prepare(subject, seed)
        if progress.on_export:
            progress.on_export(subject, i + 1, len(subjects))
    built = artifacts([(prepared[r.subject], r.target) for r in wanted], seed, calibration,
                      between=interrupts.check)
    return time_artifacts(built, timing, seed, progress, device, eager, paired)


def time_artifacts(
    rows: Sequence[tuple[Prepared, Artifact]],
    timing: TimingSpec,
    seed: int = 0,
    progress: Progress | None = None,
    device: str = "cpu",
    eager: bool = True,
    paired: bool = False,
) -> Measured:
    """Time `rows` (a prepared thing and the artefact of one of its targets), each (runtime,
    precision) in its own phase, then the torch modules eagerly, then with `device="cuda"` each
    GPU runtime; records and the harness floor (timed in the first onnxruntime phase).
    The CPU columns are measured as always with a GPU, so one table holds both."""
    from mnv2prof.measure.eager import torch_threads
    from mnv2prof.measure.env import current_environment
    from mnv2prof.measure.latency import measure_phases

    progress = progress or Progress()
    things = list(dict.fromkeys(p for p, _ in rows))
    modules = [p for p in things if p.has_module]
    away = worker_modules(modules) if eager else []
    phases = runtime_phases(rows, timing.threads, seed)
    if eager and (here := [p for p in modules if p not in away]):
        phases.append(eager_phase(here, seed))
    notes: list[OrtCudaGap] = []
    gpu: list[Runners] = []
    if device == "cuda":
        gpu, note = gpu_phases(modules, seed)
        notes += [note] if note else []
    watched = [key for phase in phases + gpu for key in phase if key != HARNESS_FLOOR]
    total = len(phases) + bool(away) + len(gpu)
    on = progress.on_timing
    with torch_threads(timing.threads), in_process_all(modules):
        measurements = measure_phases(phases, timing, _share(on, 0, len(phases), total),
                                      converge=watched, paired=paired)
        memory: dict[object, dict[str, int]] = {}
        if away:
            timed, memory = worker_eager(away, timing, seed,
                                         _share(on, len(phases), 1, total))
            measurements.update(timed)
        if gpu:
            measurements.update(measure_phases(gpu, timing, _share(on, total - len(gpu),
                                                                   len(gpu), total),
                                               converge=watched))
        memory.update(measured_memory([p for p in modules if p.subject not in memory], seed,
                                      timing.threads))
    env = current_environment(device)
    gpu_columns = {p.subject: gpu_extras(p, measurements, seed) if device == "cuda" else {}
                   for p in modules}
    owners = module_owners(rows)
    records = []
    for p, artifact in rows:
        own = owners.get(p.subject) == artifact.target
        extras = {**memory.get(p.subject, {}), **gpu_columns.get(p.subject, {}),
                  "eager": measurements.get(("eager", p.subject))} if own else {}
        records.append(make_record(p, artifact, measurements, timing, env, **extras))
    return Measured(records, measurements[HARNESS_FLOOR], tuple(notes), timing.cache)


def runtime_phases(rows: Sequence[tuple[Prepared, Artifact]], threads: int, seed: int = 0
                   ) -> list[Runners]:
    """One phase per target, each row's runner keyed (target, subject), and the harness floor
    in the first onnxruntime phase (one of its own when no row runs on onnxruntime)."""
    from mnv2prof.artifacts.identity import identity_model
    from mnv2prof.measure.latency import OrtRunner

    by_target: dict[Target, Runners] = {}
    for p, artifact in rows:
        runner = artifact_runner(artifact, p, threads, seed)
        by_target.setdefault(artifact.target, {})[(artifact.target, p.subject)] = runner
    floor = next((ph for t, ph in by_target.items() if t.runtime == "onnxruntime"), None)
    if floor is None:
        floor = by_target.setdefault(Target(), {})
    floor[HARNESS_FLOOR] = OrtRunner(identity_model(), threads, seed)
    return list(by_target.values())


def eager_phase(things: Sequence[Prepared], seed: int = 0) -> Runners:
    """Each torch module run eagerly, keyed ("eager", subject)."""
    from mnv2prof.measure.eager import EagerRunner

    return {("eager", p.subject): EagerRunner(p.module, p.input_shape, seed) for p in things}


def gpu_phases(things: Sequence[Prepared], seed: int = 0
               ) -> tuple[list[Runners], OrtCudaGap | None]:
    """One phase per GPU runtime (cuda.block_runners), keyed (kind, subject), and why the
    onnxruntime GPU column is left out (None: it is not)."""
    from mnv2prof.measure import cuda

    ort_note = cuda.ort_cuda_gap()
    phases: dict[str, Runners] = {}
    for p in things:
        fresh = p.module_of  # a fresh module per runner: a graph's weights are its own
        runners = cuda.block_runners(fresh, p.input_shape, None if ort_note else p.onnx_path,
                                     seed)
        for kind, run in runners.items():
            phases.setdefault(kind, {})[(kind, p.subject)] = run
    return list(phases.values()), ort_note


def gpu_extras(p: Prepared, measurements: dict, seed: int = 0) -> dict[str, object]:
    """A torch module's GPU columns: each GPU runtime's measurement and its peak memory."""
    from mnv2prof.measure import cuda
    from mnv2prof.measure.eager import inference_graph

    extras: dict[str, object] = {kind: measurements.get((kind, p.subject)) for kind in GPU_KINDS}
    # on a copy of the module: measuring moves it to the GPU
    extras["cuda_peak_bytes"] = cuda.measure_peak_memory(inference_graph(p.module_of()),
                                                         p.input_shape, seed)
    return extras


def measured_memory(things: Sequence[Prepared], seed: int = 0, threads: int = 1
                    ) -> dict[object, dict[str, int]]:
    """Each torch module's measured peak memory (eager.measure_memories, one profiler session;
    the user's code measured in the worker, run.user_code), as Record fields by subject."""
    from mnv2prof.measure.eager import inference_graph, measure_memories
    from mnv2prof.run import user_code

    here = [p for p in things if p.worker is None]
    found = dict(zip([p.subject for p in here], measure_memories(
        [(inference_graph(p.module), p.input_shape) for p in here], seed) if here else [],
        strict=True))
    away = [p.subject for p in things if p.worker is not None]
    if away:
        found.update(user_code.memories(away, seed, threads))
    return {subject: memory_fields(m) for subject, m in found.items()}


def memory_fields(memory) -> dict[str, int]:
    return {"measured_peak_bytes": memory.peak_bytes,
            "measured_alloc_peak_bytes": memory.alloc_peak_bytes}


def worker_modules(things: Sequence[Prepared]) -> list[Prepared]:
    """The modules timed eagerly in the worker: the user's code, and beside it every built-in
    block (built there alike), so that the eager phase stays one phase; none without user code.
    A Python API callable is timed here, in its own phase."""
    if not any(p.worker is not None for p in things):
        return []
    return [p for p in things if p.worker is not None or getattr(p.subject, "builtin", False)]


def worker_eager(things: Sequence[Prepared], timing: TimingSpec, seed: int, on_progress
                 ) -> tuple[dict, dict[object, dict[str, int]]]:
    """The eager phase of `things` in the worker (run.user_code.eager): their measurements,
    and the measured memory of those whose memory is not known yet."""
    from mnv2prof.run import user_code

    entries = [(("eager", p.subject), p.worker or user_code.ModuleRef(p.subject, seed),
                p.input_shape) for p in things]
    known = user_code.known_memories([p.subject for p in things], seed, timing.threads)
    timed, memory = user_code.eager(entries, timing, seed, [key for key, _, _ in entries],
                                    on_progress, [p.subject for p in things
                                                  if p.subject not in known])
    return timed, {s: memory_fields(m) for s, m in {**known, **memory}.items()}


def _share(on_timing, start: int, count: int, total: int):
    """`on_timing` for `count` phases from the `start`-th of `total`."""
    if on_timing is None:
        return None
    return lambda fraction: on_timing((start + fraction * count) / total)


def in_process_all(things: Sequence[Prepared]):
    """`in_process` for the Python API callables among `things`, timed in this process."""
    import contextlib

    from mnv2prof.models.plugins import guarded, shown

    users = [shown(p.subject.source) for p in things if p.worker is None
             and not getattr(p.subject, "builtin", False) and getattr(p.subject, "source", "")]
    return guarded(", ".join(users), quiet=False) if users else contextlib.nullcontext()


def module_owners(rows: Sequence[tuple[Prepared, Artifact]]) -> dict[object, Target]:
    """The row of each subject that carries its torch module's own columns (eager, measured
    memory, GPU): its fp32 onnxruntime row, else its first fp32 row, else its first row."""
    owners: dict[object, Target] = {}
    ranked = sorted(rows, key=lambda r: (not r[1].target.default, r[1].target.precision != "fp32"))
    for p, artifact in ranked:
        owners.setdefault(p.subject, artifact.target)
    return owners


def make_record(prepared: Prepared, artifact: Artifact, measurements: dict, timing: TimingSpec,
                env, **measured: object) -> Record:
    """The row of `artifact`: its latency and, for int8, its speedup over the fp32 row of the
    same runtime when that was timed (a ratio of fastest calls, the headline); `measured`:
    Record's optional fields (eager, ...)."""
    target = artifact.target
    latency = measurements[(target, prepared.subject)]
    fp32 = measurements.get((target.fp32(), prepared.subject))
    speedup = (fp32.min_ms / latency.min_ms
               if target.precision == "int8" and fp32 and latency.min_ms > 0 else None)
    return Record(
        subject=prepared.subject, cost=artifact.cost, latency=latency, threads=timing.threads,
        env=env, cache_mode=timing.cache, target=target, int8_speedup_x=speedup,
        int8_max_abs_err=artifact.max_abs_err, int8_sqnr_db=artifact.sqnr_db, **measured,
    )


def layer_rows(prepared: Prepared, threads: int, runs: int, device: str = "cpu",
               warmup: int = 10) -> list:
    """Per-layer rows of one block or model: the nodes onnxruntime runs on the CPU
    (measure.layers, `warmup` runs dropped), or its layers run eagerly on the GPU
    (measure.eager_layers)."""
    from mnv2prof.errors import Mnv2profError

    if device == "cuda":
        from mnv2prof.measure.eager_layers import time_eager_layers

        if not prepared.has_module:
            raise UsageError(f"{prepared.name}: --device cuda runs a torch module's layers; an "
                             "ONNX file's nodes are timed on the CPU")
        return time_eager_layers(prepared.module, prepared.onnx_path, prepared.input_shape,
                                 "cuda", runs)
    from mnv2prof.measure.layers import time_layers

    try:
        return time_layers(prepared.onnx_path, threads, runs, warmup=warmup,
                           input_shapes=prepared.input_shapes)
    except Mnv2profError:
        raise
    except Exception as exc:  # onnxruntime's own exception types
        raise ort_error(prepared.onnx_path, exc) from exc
