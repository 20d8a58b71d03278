"""What the tool does with the user's code (a block or model from `PATH.py:NAME`,
`package.module:NAME` or an entry point), each a job of the worker (run.worker): this process
never imports it. A callable or an `nn.Module` given to the Python API (`python:` sources) lives
in the caller's process and stays there (`needs_worker`).

Called here, each runs one job, or none when what it needs is known:

- `vet(subjects, seed, limit_bytes, threads, stages, root)`: import, NAME, the factory, the
  forward on the input, the static peak on the meta device (models.sizes; kept in the cache
  under the spec's digest, its file's hash included), and with `threads`
  the measured memory, with `stages` a model's stages (models.networks.model_stages); known
  facts are kept for the process. `Plan.check()` calls it (run.fits).
- `export(subject, seed, parts, root)`: the checked ONNX file; a cache hit is read here.
- `eager(entries, timing, seed, converge, on_progress, memory)`: the eager phase, timed in the
  worker with the harness and rules of this process (measure.latency, threads pinned), its
  samples and measured memory sent back.
- `lower(jobs)`: ExecuTorch's `.pte` of each (ref, input_shape, name, identity, precision, seed),
  one job per folder of user code, so ExecuTorch's lowering stack (4-10 s to import) is imported
  once for all of a command's modules, not once a module.

**Another revision's checkout** (`gate --against`): inside `rooted(folder)` every job of a
subject whose file lies in `folder` runs with `folder` first on its import path and as its
folder (`root_of`), so a base revision's file imports the base's neighbours and the change's
file the working tree's, in one gate; `vet` and `export` also take it as `root`. A file reference is resolved against the
checkout by the plan's builder (`variants.resolve_variant(text, base_dir=folder)`), which makes
its path absolute.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field

from mnv2prof.errors import Mnv2profError
from mnv2prof.run import worker, zygote


@dataclass(frozen=True)
class ModuleRef:
    """How the worker builds a module: a block's or a model's spec at a seed, or one of its
    modules (`stage`: its path, a network's stage)."""

    subject: object  # models.variants.BlockSpec or models.user_models.ModelSpec
    seed: int = 0
    stage: str = ""

    @property
    def label(self) -> str:
        return label(self.subject)


@dataclass(frozen=True)
class Vetted:
    """What vetting learnt of one subject."""

    size: object  # models.sizes.SizeEstimate
    checked: bool = True  # built and run on its input (False: too large to try)
    memory: dict = field(default_factory=dict, hash=False)  # threads -> MeasuredMemory
    stages: tuple | None = None  # models.networks.Stage, when asked for


def needs_worker(subject) -> bool:
    """Whether `subject` is the user's code from a file or a module (not a built-in, an ONNX
    file or a callable of this process)."""
    from mnv2prof.models.plugins import CALLABLE_PREFIX

    source = getattr(subject, "source", "")
    return bool(source) and not getattr(subject, "onnx_file", False) \
        and not source.startswith(CALLABLE_PREFIX)


def label(subject) -> str:
    """`PATH.py:NAME` as a user reads it: the path relative to this folder when inside it."""
    path, _, name = getattr(subject, "source", "").rpartition(":")
    if os.path.isabs(path):
        relative = os.path.relpath(path)
        path = path if relative.startswith("..") else relative
    return f"{path}:{name}"


_ROOTS: list[str] = []  # `rooted`'s folders, innermost last


@contextlib.contextmanager
def rooted(folder: str | os.PathLike) -> Iterator[str]:
    """Jobs of subjects whose file lies under `folder` (another revision's checkout) run with
    `folder` first on their import path and as their folder, for the duration (`root_of`)."""
    root = os.path.abspath(folder)
    _ROOTS.append(root)  # never on this process's path: the zygote forked from it would keep it
    try:
        yield root
    finally:
        _ROOTS.pop()


def root_of(subject) -> str | None:
    """The innermost `rooted` folder that holds `subject`'s file, or None (the working tree)."""
    path = os.path.abspath(getattr(subject, "source", "").rpartition(":")[0] or os.sep)
    return next((root for root in reversed(_ROOTS)
                 if os.path.commonpath([root, path]) == root), None)


def _root(root: str | None, subject=None) -> str | None:
    return root if root is not None else root_of(subject)


_VETTED: dict[tuple, Vetted] = {}  # (subject, seed, root) -> what vetting learnt


def vet(subjects: Sequence[object], seed: int = 0, limit_bytes: int | None = None,
        threads: int | None = None, stages: bool = False, root: str | None = None
        ) -> dict[object, Vetted]:
    """Each of `subjects` that `needs_worker`, vetted (see the module docstring): a subject
    whose static peak passes `limit_bytes` is not built (the size check refuses it)."""
    wanted = [s for s in dict.fromkeys(subjects) if needs_worker(s)]
    roots = {s: _root(root, s) for s in wanted}
    missing = [s for s in wanted if not _known(_VETTED.get((s, seed, roots[s])), limit_bytes,
                                               threads, stages)]
    for folder in dict.fromkeys(roots[s] for s in missing):  # a job per folder
        group = [s for s in missing if roots[s] == folder]
        found = worker.run(_vet, (tuple(group), seed, limit_bytes, threads, stages),
                           label(group[0]), folder)
        for subject, vetted in zip(group, found, strict=True):
            known = _VETTED.get((subject, seed, folder))
            memory = {**(known.memory if known else {}), **vetted.memory}
            _VETTED[(subject, seed, folder)] = dataclasses.replace(vetted, memory=memory)
    return {s: _VETTED[(s, seed, roots[s])] for s in wanted}


def _known(vetted: Vetted | None, limit: int | None, threads: int | None, stages: bool) -> bool:
    if vetted is None:
        return False
    if not vetted.checked:
        return limit is not None and vetted.size.total_bytes > limit
    return (threads is None or threads in vetted.memory) and not (stages and
                                                                  vetted.stages is None)


def memories(subjects: Sequence[object], seed: int, threads: int) -> dict[object, object]:
    """Each user subject's measured memory at `threads` (measure.eager.MeasuredMemory)."""
    return {s: v.memory[threads] for s, v in vet(subjects, seed, None, threads).items()}


def known_memories(subjects: Sequence[object], seed: int, threads: int) -> dict[object, object]:
    """The measured memory at `threads` that vetting already found, by subject."""
    known = (_VETTED.get((s, seed, root_of(s))) for s in subjects)
    return {s: v.memory[threads] for s, v in zip(subjects, known, strict=True)
            if v is not None and threads in v.memory}


def stages(spec, seed: int = 0) -> tuple:
    """A user's model's stages (models.networks.model_stages), from its forward."""
    return vet([spec], seed, None, None, stages=True)[spec].stages


class _Missing(BaseException):
    """Not in the cache: the export is the worker's (a BaseException: no `except Exception`
    on the way may take it for a failure)."""


def _missing(seed: int):
    raise _Missing


def export(subject, seed: int = 0, parts: tuple[str, ...] = (), root: str | None = None):
    """The checked ONNX file of a user's block or model (`parts`: module paths whose
    parameters the file records, a network's stages): read from the cache here (no job), or
    exported in the worker (artifacts.export.ExportResult)."""
    from mnv2prof.artifacts.export import export_cached

    try:
        return export_cached(dataclasses.replace(_source(subject, parts), build=_missing), seed)
    except _Missing:
        pass
    return worker.run(_export, (subject, seed, tuple(parts)), label(subject),
                      _root(root, subject))


def _source(subject, parts: tuple[str, ...]):
    from mnv2prof.artifacts.sources import model_source, source_of

    return model_source(subject, tuple(parts)) if parts else source_of(subject)


def eager(entries: Sequence[tuple[Hashable, ModuleRef, tuple[int, ...]]], timing, seed: int,
          converge: Sequence[Hashable], on_progress: Callable[[float], None] | None = None,
          memory: Sequence[object] = ()) -> tuple[dict, dict]:
    """Time each (key, module, input shape) eagerly as one phase (pipeline.eager_phase's
    runners, `latency.measure_phases`, torch's threads pinned to `timing.threads`), and measure
    the memory of the subjects in `memory`: ({key: Measurement}, {subject: MeasuredMemory})."""
    users = [ref for _, ref, _ in entries if needs_worker(ref.subject)]
    folders = {root_of(ref.subject) for ref in users}
    if len(folders) > 1:  # one phase, one process: two revisions' modules would share names
        raise Mnv2profError("the eager phase times one revision's code at a time")
    return worker.run(_eager, (tuple(entries), timing, seed, tuple(converge), tuple(memory)),
                      ", ".join(ref.label for ref in users), folders.pop() if folders else None,
                      on_progress)


LowerJob = tuple  # (ModuleRef, input shape, name, identity, precision, seed)


def lower(jobs: Sequence[LowerJob]) -> list:
    """ExecuTorch's `.pte` of each user's module (artifacts.lowering.lower_cached, whose int8
    accuracy needs the module even on a cache hit), in order: one worker job for the modules of
    each folder (`root_of`: one revision's code a process), which imports the lowering stack once."""
    folders: dict[str | None, list[int]] = {}
    for i, job in enumerate(jobs):
        folders.setdefault(root_of(job[0].subject), []).append(i)
    results: list = [None] * len(jobs)
    for folder, indices in folders.items():
        wanted = tuple((job[0], tuple(job[1]), *job[2:]) for job in (jobs[i] for i in indices))
        labels = ", ".join(dict.fromkeys(job[0].label for job in wanted))
        for i, lowered in zip(indices, worker.run(_lower_all, (wanted,), labels, folder)):
            results[i] = lowered
    return results


# --- in the worker's grandchild -----------------------------------------------------------------

def mark(phase: str, text: str = "") -> None:
    """Tell the parent the job entered `phase` (run.zygote.PHASES) on the user's code `text`."""
    if (channel := zygote.channel()) is not None:
        channel.mark(phase, text)


def _what(subject) -> str:
    from mnv2prof.models.user_models import ModelSpec

    return "model" if isinstance(subject, ModelSpec) else "variant"


def _imported(subject):
    """The user's module imported (phase `import`): the `Origin` of its NAME."""
    from mnv2prof.models import plugins

    mark("import", label(subject))
    origin = plugins.checked_origin(subject, _what(subject))
    plugins.load(origin, _what(subject))
    return origin


def _build(ref: ModuleRef, check: bool = True):
    """The module of `ref`, as the tool builds it in its own process (models.blocks.build_block,
    models.user_models.build_model), through the phases import, build, and with `check` its
    forward on its input (plugins.check_forward)."""
    from mnv2prof.models import plugins
    from mnv2prof.models.blocks import block_factory, build_block, seeded

    subject = ref.subject
    if getattr(subject, "builtin", False):
        module = build_block(subject, ref.seed)
    else:
        origin = _imported(subject)
        mark("build")
        if _what(subject) == "model":
            module = seeded(lambda: plugins.call_factory(origin, {}, "model"), ref.seed,
                            randomize_bn=False)
            shown = origin.source
        else:
            module = seeded(block_factory(subject), ref.seed)
            shown = subject.source
        if check:
            mark("forward")
            plugins.check_forward(module, subject.input_shape, subject.variant, shown)
    return dict(module.named_modules())[ref.stage] if ref.stage else module


def _vet(subjects: tuple, seed: int, limit: int | None, threads: int | None,
         stages: bool) -> list[Vetted]:
    from mnv2prof.models.networks import model_stages

    found = []
    for subject in subjects:
        _imported(subject)
        mark("build")
        size = _static_peak(subject)
        if limit is not None and size.total_bytes > limit:
            found.append(Vetted(size, checked=False))
            continue
        module = _build(ModuleRef(subject, seed))
        memory = {threads: _memory([(module, subject.input_shape)], seed, threads)[0]
                  } if threads else {}
        ran = tuple(model_stages(module, subject.input_shape, seed)) if stages else None
        found.append(Vetted(size, True, memory, ran))
    return found


SIZES_FORMAT = 1  # bump when models.sizes estimates otherwise, to set the kept sizes aside


def _static_peak(subject):
    """The size check's static peak of a user's block or model (models.sizes: built and run on
    torch's meta device, where torch's lazy imports take 0.7-3.7 s), kept in the cache under the
    spec's digest (its file's hash included) and torch's version: a warm run reads it."""
    import torch

    from mnv2prof.files.atomic import write_atomic
    from mnv2prof.files.cache import cache_dir
    from mnv2prof.models import sizes
    from mnv2prof.files.cache_json import Unreadable, read_cache_json, set_aside

    path = cache_dir() / "sizes" / f"{subject.digest(torch.__version__, SIZES_FORMAT)}.json"
    try:
        known = read_cache_json(path)
        if isinstance(known, list) and len(known) == 2 and all(type(n) is int for n in known):
            return sizes.SizeEstimate(subject.name, *known)
    except Unreadable:
        set_aside(path)
    with _forward_marked():  # it builds the module and runs it on the meta device
        size = (sizes.model_size(subject) if _what(subject) == "model"
                else sizes.block_size(subject))
    with contextlib.suppress(OSError, Mnv2profError):  # not kept: computed again next time
        path.parent.mkdir(exist_ok=True)
        write_atomic(path, json.dumps([size.activation_bytes, size.weight_bytes]))
    return size


@contextlib.contextmanager
def _forward_marked() -> Iterator[None]:
    """Phase `forward` from the first module's forward on (a step that builds and runs)."""
    from torch.nn.modules.module import register_module_forward_pre_hook

    def hook(module, args) -> None:
        if (channel := zygote.channel()) is not None and channel.phase != "forward":
            mark("forward")

    handle = register_module_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _memory(modules: list, seed: int, threads: int) -> list:
    from mnv2prof.measure.eager import inference_graph, measure_memories, torch_threads

    with torch_threads(threads):
        return measure_memories([(inference_graph(m), shape) for m, shape in modules], seed)


def _export(subject, seed: int, parts: tuple[str, ...]):
    from mnv2prof.artifacts.export import export_cached

    module = _build(ModuleRef(subject, seed))
    mark("export", label(subject))
    return export_cached(_source(subject, parts), seed, module=module)


def _eager(entries: tuple, timing, seed: int, converge: tuple, memory: tuple) -> tuple:
    from mnv2prof.measure.eager import EagerRunner, torch_threads
    from mnv2prof.measure.latency import measure_phases

    # vetting ran each on its input; the timing's warm-up calls run it again (phase `time`)
    built = [(key, ref, _build(ref, check=False), shape) for key, ref, shape in entries]
    mark("time", ", ".join(ref.label for _, ref, _, _ in built if needs_worker(ref.subject)))
    with torch_threads(timing.threads):
        runners = {key: EagerRunner(module, shape, seed) for key, _, module, shape in built}
        channel = zygote.channel()
        measured = measure_phases([runners], timing, channel.progress if channel else None,
                                  converge=converge)
    chosen = [(ref.subject, (module, shape)) for _, ref, module, shape in built
              if ref.subject in memory]
    found = _memory([m for _, m in chosen], seed, timing.threads) if chosen else []
    return measured, {subject: m for (subject, _), m in zip(chosen, found, strict=True)}


def _lower_all(jobs: tuple) -> list:
    from mnv2prof.artifacts.lowering import lower_cached

    lowered = []
    for ref, input_shape, name, identity, precision, seed in jobs:
        module = _build(ref)
        mark("lower", ref.label)
        lowered.append(lower_cached(module, input_shape, name, identity, precision, seed))
    return lowered

