"""A command's plan: what it measures (the subjects: blocks, the user's blocks, models, or a
profile's grid), on what (the targets: precision x runtime), and how (one `TimingSpec`), built
alike from the command line's flags, from a profile, or from the Python API's arguments, which
take the command line's words (`WORDS`). `Plan.check()` holds every rule that needs no
measurement, each written once, and every entry point calls it before anything is exported or
timed (output paths are checked by the command line's `Outputs`, input files by files.readers).

    plan = block_plan(["conv", "dwsep"], channels=32, expansion=6, budget=0.5)
    plan.check()
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mnv2prof.errors import UsageError, ValueRefused
from mnv2prof.measure.timing import TimingSpec, check_count, max_threads
from mnv2prof.models.targets import DEFAULT_CALIBRATION, Target, parse_targets
from mnv2prof.run.deploy import Row, check_runtimes, rows_of

# The one vocabulary of a block's spec: the word the command line (--channels) and the Python
# API (channels=) take -> the BlockSpec field, the CSV column and a profile's key.
WORDS = {
    "channels": "in_chs",
    "resolution": "resolution",
    "expansion": "exp_ratio",
    "kernel": "kernel_size",
    "stride": "stride",
    "batch": "batch",
}
SPEC_DEFAULTS = {"channels": 32, "resolution": 56, "expansion": 6, "kernel": 3, "stride": 1,
                 "batch": 1}
MAX_SEED = 2**32 - 1  # torch.Generator's seeds are 64-bit; numpy's legacy ones are 32-bit


@dataclass(frozen=True)
class Plan:
    """What a command measures and how; `profile`: a profile's grid instead of `subjects` x
    `targets` (each grid point with its own threads and target, the profile's timing)."""

    subjects: tuple[object, ...]  # models.variants.BlockSpec or models.user_models.ModelSpec
    targets: tuple[Target, ...] = (Target(),)
    timing: TimingSpec | None = TimingSpec()  # None: count only (network --budget 0)
    calibration: str = DEFAULT_CALIBRATION
    seed: int = 0
    eager: bool = True
    device: str = "cpu"
    baseline: str | None = None  # the row compare's x columns divide by
    force: bool = False  # measure what looks too large for the memory available
    force_flag: str = "--force"
    profile: object | None = None  # profiles.grid.Profile

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.subjects]

    def rows(self) -> list[Row]:
        """Every subject on every target, subject by subject."""
        return rows_of(self.subjects, self.targets)

    def check(self) -> Plan:
        """Every rule that needs no measurement, before anything is exported or timed; returns
        the plan itself. The user's code (PATH.py:NAME, package.module:NAME) is vetted here, in
        the worker (run.user_code.vet), before this process runs a torch op: the worker's
        zygote is then a fork of this process (run.worker)."""
        groups = ([(p.subjects, (p.target,)) for p in self.profile.points()]
                  if self.profile is not None else [(self.subjects, self.targets)])
        for subjects, targets in groups:
            check_unique(subjects)
            check_targets(subjects, targets)
        check_device(self.device)
        from mnv2prof.run.fits import subjects_fit

        threads = self.timing.threads if self.timing is not None else None
        subjects_fit(self.subjects, self.force, self.force_flag, self.seed, threads)
        return self


def check_unique(subjects: Sequence[object]) -> None:
    """Rows are named by variant: two subjects of one name cannot both be rows."""
    names = [getattr(s, "label", s.name) for s in subjects]  # a network has no rows by name
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"two rows are named {', '.join(twice)}: rows are named by variant "
                         "or model, rename one")


def check_targets(subjects: Sequence[object], targets: Sequence[Target]) -> None:
    """ExecuTorch installed when asked for, and run only on what has a torch module: ExecuTorch
    lowers a torch module, so an ONNX file runs on onnxruntime alone."""
    runtimes = tuple(dict.fromkeys(t.runtime for t in targets))
    check_runtimes(runtimes)
    if "executorch" in runtimes:
        files = [s.variant for s in subjects if getattr(s, "onnx_file", False)]
        if files:
            raise UsageError("--runtime executorch lowers a torch module (a block or a model "
                             "from PATH.py:NAME); an ONNX file runs on onnxruntime only: "
                             f"{', '.join(files)}")


def check_device(device: str) -> None:
    """cpu, or cuda with a GPU; the CPU needs no check (and no torch import)."""
    if device == "cpu":
        return
    from mnv2prof.measure.cuda import check_device as check

    check(device)


def default_baseline(labels: Sequence[str], baseline: str | None = None) -> str:
    """The row compare's ratios divide by: `baseline` (a row's label, a variant, NAME of
    PATH.py:NAME, the stem of FILE.onnx), else conv when it is a row, else the first row."""
    if baseline is None:
        return "conv" if "conv" in labels else labels[0]
    return row_name(baseline)


def row_name(text: str) -> str:
    """The row a --baseline or --relative-to names: a variant or row label as it is, NAME of
    PATH.py:NAME or package.module:NAME, the stem of FILE.onnx."""
    from pathlib import Path

    text = text.strip()
    if text.lower().endswith(".onnx"):
        return Path(text).stem
    return text.rpartition(":")[2] if ":" in text else text


def check_baseline_row(subjects: Sequence[object], baseline: str) -> None:
    labels = [s.label for s in subjects]
    if baseline not in labels and baseline not in {s.variant for s in subjects}:
        raise ValueRefused("baseline", f"{baseline!r} is not among the rows ({', '.join(labels)})")


# --- building a plan from the words -------------------------------------------------------------


def timing_spec(budget: float = 2.0, threads: int = 1, cache: str = "warm") -> TimingSpec:
    """The `TimingSpec` of the words budget, threads and cache (it checks itself)."""
    return TimingSpec(threads=threads, budget_s=budget, cache=cache)


def block_plan(
    variants: str | Sequence[str | Callable] | None = None,
    *,
    models: Sequence[object] = (),
    shape: str | Sequence[int] | Sequence[str] | None = None,
    channels: int = SPEC_DEFAULTS["channels"],
    resolution: int = SPEC_DEFAULTS["resolution"],
    expansion: int = SPEC_DEFAULTS["expansion"],
    kernel: int = SPEC_DEFAULTS["kernel"],
    stride: int = SPEC_DEFAULTS["stride"],
    batch: int = SPEC_DEFAULTS["batch"],
    chunks: str | Sequence[int] | None = None,
    budget: float = 2.0,
    threads: int = 1,
    cache: str = "warm",
    precision: str | Sequence[str] = "fp32",
    runtime: str | Sequence[str] = "onnxruntime",
    calibration: str = DEFAULT_CALIBRATION,
    eager: bool = True,
    device: str = "cpu",
    baseline: str | None = None,
    seed: int = 0,
    force: bool = False,
) -> Plan:
    """The plan of compare, baseline, gate and export: `variants` (built-in names, PATH.py:NAME,
    package.module:NAME or, from Python, callables; None: the default blocks, or none when
    `models` are given) at the spec words (`WORDS`), then `models`, on every precision and
    runtime, timed with `budget`, `threads`, `cache`. Checks every value; `Plan.check()` the
    rest."""
    values = spec_values(channels=channels, resolution=resolution, expansion=expansion,
                         kernel=kernel, stride=stride, batch=batch)
    timing = timing_spec(budget, threads, cache)
    targets, calibration = parse_targets(precision, runtime, calibration)
    check_count(seed, "seed", 0, MAX_SEED)
    from mnv2prof.models.variants import DEFAULT_VARIANTS, parse_chunk_list, with_chunks

    if variants is None:
        variants = () if models else DEFAULT_VARIANTS
    counts = parse_chunk_list(chunks) if isinstance(chunks, str) else chunks
    blocks = with_chunks(block_subjects(variants, values), tuple(counts) if counts else None)
    subjects = (*blocks, *model_subjects(models, shape))
    if not subjects:
        raise UsageError("nothing to measure: give variants or models")
    check_unique(subjects)
    base = default_baseline([s.label for s in subjects], baseline)
    check_baseline_row(subjects, base)
    return Plan(subjects, targets, timing, calibration, seed, eager, device, base, force)


def spec_values(**words: int) -> dict[str, int]:
    """The spec words (`WORDS`, defaults `SPEC_DEFAULTS`) as BlockSpec fields."""
    return {WORDS[w]: words.get(w, SPEC_DEFAULTS[w]) for w in WORDS}


def block_subjects(variants: str | Sequence[str | Callable], values: dict[str, int]) -> list:
    """One BlockSpec per variant at the spec `values` (BlockSpec fields), checked."""
    from mnv2prof.models.variants import parse_variant_list

    items = variants.split(",") if isinstance(variants, str) else list(variants)
    named = [v for v in items if isinstance(v, str)]
    refs = iter(parse_variant_list(named)) if named else iter(())
    specs = []
    for item in items:
        if isinstance(item, str):
            specs.append(next(refs).spec(**values))
        elif callable(item):
            specs.append(_callable_variant(item).spec(**values))
        else:
            raise UsageError(f"a variant is a name, PATH.py:NAME or a callable, got "
                             f"{type(item).__name__}")
    return specs


def _callable_variant(item: Callable):
    from mnv2prof.models import plugins
    from mnv2prof.models.variants import VariantRef

    origin = plugins.register_callable(item, code_digest(item))
    return VariantRef(origin.name, origin.reference, origin.digest)


def model_subjects(models: Sequence[object], shape=None) -> list:
    """One ModelSpec per model: a reference or an ONNX file's path (strings, as --model takes
    them), and from Python a factory or an `nn.Module`. `shape`: `1x3x224x224` (or INPUT=dims),
    a list of those (one per model), or a sequence of ints."""
    from mnv2prof.models.user_models import model_specs

    shapes = shape_texts(shape)
    texts = [m for m in models if isinstance(m, str)]
    specs = iter(model_specs(texts, shapes if texts else []))
    subjects = []
    for item in models:
        subjects.append(resolved(next(specs)) if isinstance(item, str)
                        else python_model(item, shapes[0] if shapes else None))
    return subjects


def shape_texts(shape) -> list[str]:
    """`shape` as --shape texts: None, a text, a list of texts, or one shape as ints."""
    if shape is None:
        return []
    if isinstance(shape, str):
        return [shape]
    items = list(shape)
    if items and all(isinstance(d, int) and not isinstance(d, bool) for d in items):
        return ["x".join(map(str, items))]
    if all(isinstance(t, str) for t in items):
        return items
    raise ValueRefused("shape", f"{shape!r}: give dims such as 1x3x224x224 or (1, 3, 224, 224)")


def resolved(spec):
    """An ONNX file's spec with its input shapes read from the file."""
    if not spec.onnx_file:
        return spec
    from mnv2prof.onnx.inputs import resolved as file_resolved

    return file_resolved(spec)[0]


def python_model(item, shape: str | None):
    """A model given from Python: a factory called with no arguments, or an `nn.Module`
    measured as it is (its identity: its class's source and every tensor of its state)."""
    from torch import nn

    from mnv2prof.models import plugins
    from mnv2prof.models.user_models import DEFAULT_SHAPE, TORCH_INPUT, ModelSpec, parse_dims

    if isinstance(item, nn.Module):
        module = item
        factory, digest = (lambda: module), module_digest(module)
        factory.__name__ = type(module).__name__
    elif callable(item):
        factory, digest = item, code_digest(item)
    else:
        raise UsageError(f"a model is a path, PATH.py:NAME, a factory or an nn.Module, got "
                         f"{type(item).__name__}")
    origin = plugins.register_callable(factory, digest)
    dims = parse_dims(shape) if shape else DEFAULT_SHAPE
    return ModelSpec(origin.name, origin.reference, origin.digest, ((TORCH_INPUT, dims),))


def code_digest(obj) -> str:
    """A callable's identity for the caches: the hash of its source (its name and module when
    the source cannot be read, e.g. a class made at run time)."""
    import inspect

    try:
        text = inspect.getsource(obj)
    except (OSError, TypeError):
        text = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def module_digest(module) -> str:
    """An `nn.Module` instance's identity: its class's source and every tensor of its state."""
    digest = hashlib.sha256(code_digest(type(module)).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def profile_plan(profile: str, budget: float | None = None, cache: str | None = None,
                 max_points: int | None = None, force: bool = False,
                 force_flag: str = "--force") -> Plan:
    """The plan of a profile (a shipped name or a .toml path): its grid, its timing with
    `budget` and `cache` replacing the profile's own when given."""
    from mnv2prof.profiles.shipped import MAX_POINTS, load_profile
    from mnv2prof.measure.timing import check_cache, check_seconds

    loaded = load_profile(profile, max_points or MAX_POINTS)
    changes = {}
    if budget is not None:
        changes["budget_s"] = check_seconds(budget, "budget")
    if cache is not None:
        changes["cache"] = check_cache(cache)
    if changes:
        loaded = dataclasses.replace(loaded, timing=dataclasses.replace(loaded.timing, **changes))
    subjects = tuple(loaded.subjects())
    return Plan(subjects, timing=loaded.timing, seed=loaded.seed, eager=loaded.eager,
                force=force, force_flag=force_flag, profile=loaded)



def model_plan(
    model: object,
    shape=None,
    *,
    budget: float = 2.0,
    threads: int = 1,
    cache: str = "warm",
    precision: str | Sequence[str] = "fp32",
    runtime: str | Sequence[str] = "onnxruntime",
    calibration: str = DEFAULT_CALIBRATION,
    seed: int = 0,
    force: bool = False,
) -> Plan:
    """The plan of `profile`: one model (an ONNX file, PATH.py:NAME, package.module:NAME, or
    from Python a factory or an `nn.Module`) at `shape`, with a model's timing (fewer warm-up
    calls, run.model_file.model_timing), not timed eagerly."""
    from mnv2prof.run.model_file import model_timing

    timing = model_timing(timing_spec(budget, threads, cache))
    targets, calibration = parse_targets(precision, runtime, calibration)
    check_count(seed, "seed", 0, MAX_SEED)
    return Plan((model_subject(model, shape),), targets, timing, calibration, seed, eager=False,
                force=force)


def model_subject(model: object, shape=None):
    """`profile`'s model: a torch model's spec, or an ONNX file's, counted with its shapes (a
    path that is not a reference is read as an ONNX file, whatever its name)."""
    from pathlib import Path

    from mnv2prof.models.plugins import is_reference
    from mnv2prof.models.user_models import model_spec
    from mnv2prof.run import model_file as mf

    shapes = shape_texts(shape)
    if not isinstance(model, str):
        return python_model(model, shapes[0] if shapes else None)
    if is_reference(model) and not Path(model).exists():
        if len(shapes) > 1:
            raise UsageError("--shape: a torch model has one input; give its dims once")
        return model_spec(model, shapes[0] if shapes else None)
    from mnv2prof.onnx.inputs import parse_shapes

    return mf.counted_spec(mf.count_model_file(model, parse_shapes(shapes)))


PAPER_WORDS = ("width", "resolution", "classes", "streamed")  # the papers' networks' words


def network_plan(
    arch: str,
    *,
    width: float | None = None,
    resolution: int | None = None,
    classes: int | None = None,
    streamed: bool | None = None,
    shape: str | Sequence[int] | None = None,
    budget: float = 5.0,
    threads: int = 1,
    cache: str = "warm",
    precision: str | Sequence[str] = "fp32",
    runtime: str | Sequence[str] = "onnxruntime",
    calibration: str = DEFAULT_CALIBRATION,
    device: str = "cpu",
    force: bool = False,
) -> Plan:
    """The plan of `network`: a paper's network (mobilenetv2, mobilenetv1, at `width`,
    `resolution`, `classes`, `streamed`; None: the paper's) or any torch model (PATH.py:NAME,
    at `shape`), timed with `budget` (0: counted only)."""
    from mnv2prof.models.networks import NetworkSpec
    from mnv2prof.models.plugins import is_reference

    paper = dict(width=width, resolution=resolution, classes=classes, streamed=streamed)
    if is_reference(arch):
        if given := [w for w in PAPER_WORDS if paper[w] is not None]:
            raise UsageError(f"{', '.join('--' + w for w in given)} apply to the papers' "
                             "networks; a model is measured as its factory builds it (give "
                             "--shape for its input)")
        subject = model_subjects([arch], shape)[0]
    else:
        if shape is not None:
            raise UsageError("--shape applies to a PATH.py:NAME model; the papers' networks "
                             "take --resolution")
        subject = NetworkSpec(arch, 1.0 if width is None else width,
                              224 if resolution is None else resolution,
                              1000 if classes is None else classes, bool(streamed))
    if isinstance(budget, int | float) and not isinstance(budget, bool) and budget == 0:
        if device == "cuda":
            raise UsageError("--device cuda times the network: give --budget > 0")
        timing = None
        check_count(threads, "threads", 1, max_threads())
    else:
        timing = timing_spec(budget, threads, cache)
    targets, calibration = parse_targets(precision, runtime, calibration)
    return Plan((subject,), targets, timing, calibration, device=device, force=force)
