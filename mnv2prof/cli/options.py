"""Options shared by several commands, declared once: Annotated aliases, and option groups
(dataclasses whose fields are options) that `command` expands into typer parameters.

One vocabulary (models/variants.py): the flags name what the CSV columns and profiles call
`in_chs`, `resolution`, `exp_ratio`, `kernel_size`, `stride`, `batch`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer

from mnv2prof.cli.app import app, tell
from mnv2prof.errors import UsageError
from mnv2prof.models.variants import DEFAULT_VARIANTS

Channels = Annotated[
    int,
    typer.Option("--channels", "-c", help="Channels in and out of the block (in_chs = out_chs)."),
]
Resolution = Annotated[int, typer.Option("--resolution", "-r", help="Square input side, pixels.")]
Expansion = Annotated[
    int, typer.Option("--expansion", "-e", help="Expansion ratio t (mbv2*, fused; resnet: C/t).")
]
Kernel = Annotated[int, typer.Option("--kernel", "-k", help="Spatial kernel size k, pixels (odd).")]
Stride = Annotated[int, typer.Option("--stride", "-s", help="Stride of the block: 1 or 2.")]
Batch = Annotated[int, typer.Option("--batch", "-b", help="Batch size N, images.")]
DEFAULT_VARIANT_LIST = ",".join(DEFAULT_VARIANTS)
Variants = Annotated[
    str,
    typer.Option("--variants", help="Comma-separated variants to run: built-in names (see "
                 "`mnv2prof variants`), or your own blocks as PATH.py:NAME or "
                 "package.module:NAME (NAME is called with in_chs, out_chs, mid_chs, exp_ratio, "
                 "kernel_size, stride, those its signature takes, and returns an nn.Module). "
                 "Importing a file runs its code."),
]
Threads = Annotated[
    int, typer.Option("--threads", help="onnxruntime intra-op threads, a count (pinned).")
]
Budget = Annotated[
    float,
    typer.Option(
        "--budget",
        help="Seconds of timing per phase, for all rows together: onnxruntime's (and in compare "
        "eager torch's after it, unless --no-eager); a phase ends early once every row's "
        "fastest call is reproduced and its median's CI is within +-2%; at most 3600.",
    ),
]
Cache = Annotated[
    str,
    typer.Option(
        "--cache",
        help="warm: each variant timed in bursts of back-to-back calls, the first call after a "
        "switch dropped (its own data in cache, as a bare loop); cold: the caches evicted before "
        "every timed call (a buffer of 2x the last-level cache written), weights from memory.",
    ),
]
NoEager = Annotated[
    bool, typer.Option("--no-eager", help="Do not time the torch module eagerly (its own phase).")
]
Device = Annotated[
    str,
    typer.Option(
        "--device",
        help="cpu, or cuda: also time on the GPU (eager with CUDA events, CUDA graph, "
        "onnxruntime's CUDA provider when installed) and measure GPU peak memory.",
    ),
]
Force = Annotated[
    bool,
    typer.Option("--force", help="Run even when the static peak (activations and weights, fp32) "
                 "exceeds the memory available now."),
]
# Output paths are taken as text: typer would turn an empty string into Path("."), the current
# folder, which a check could not tell from a folder the user named (cli.output refuses both).
Csv = Annotated[str | None, typer.Option("--csv", help="Also write the rows to this CSV.")]
Json = Annotated[str | None, typer.Option("--json", help="Also write the rows as JSON records.")]
Precision = Annotated[
    str,
    typer.Option("--precision", help="fp32, int8 or both (fp32,int8): int8 is onnxruntime's static "
                 "quantization (ExecuTorch's PT2E on --runtime executorch), one row per precision."),
]
Runtime = Annotated[
    str,
    typer.Option("--runtime", help="onnxruntime, executorch (XNNPACK; needs pip install "
                 "'mnv2prof\\[mobile]') or both, comma-separated: one row per runtime."),
]
Calibration = Annotated[
    str,
    typer.Option("--calibration", help="int8 calibration method: minmax, entropy or percentile "
                 "(on 16 seeded inputs)."),
]


@dataclasses.dataclass(frozen=True)
class DeployOptions:
    """--precision, --runtime, --calibration: what each block ships as (run.deploy)."""

    precision: Precision = "fp32"
    runtime: Runtime = "onnxruntime"
    calibration: Calibration = "minmax"


def show_option(groups: tuple[str, ...]):
    """A `--show` option adding column groups (each named in the help) to the default view."""
    return Annotated[
        str | None,
        typer.Option("--show", help=f"Column groups to add to the default view, comma-separated: "
                     f"{', '.join(groups)}, or all. A file the command writes always holds "
                     "every column.", show_default=False),
    ]


Results = Annotated[Path, typer.Argument(help="A CSV written by `sweep` or `compare --csv`.")]


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """--model and --shape: the user's own models, measured beside (or instead of) blocks."""

    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="A whole model to measure, repeatable: PATH.py:NAME or "
                     "package.module:NAME (NAME called with no arguments returns an nn.Module), "
                     "or FILE.onnx. Importing a file runs its code.", show_default=False),
    ] = None
    shape: Annotated[
        list[str] | None,
        typer.Option("--shape", help="Input dims of --model, e.g. 1x3x224x224 (the default for "
                     "a torch model; an ONNX file's own fixed dims otherwise), or INPUT=dims for "
                     "an ONNX input; once for every model, or once per --model in order.",
                     show_default=False),
    ] = None


@dataclasses.dataclass(frozen=True)
class SpecOptions:
    """The block spec flags (every command that builds blocks)."""

    channels: Channels = 32
    resolution: Resolution = 56
    expansion: Expansion = 6
    kernel: Kernel = 3
    stride: Stride = 1
    batch: Batch = 1


@dataclasses.dataclass(frozen=True)
class TimingOptions:
    """--threads, --budget, --cache: how every latency is taken."""

    threads: Threads = 1
    budget: Budget = 2.0
    cache: Cache = "warm"


def given(ctx: typer.Context, names) -> list[str]:
    """The parameters among `names` given on the command line or by environment, not defaulted."""
    return [
        name for name in names
        if (source := ctx.get_parameter_source(name)) is not None and source.name != "DEFAULT"
    ]


def block_plan(ctx: typer.Context, spec: SpecOptions, timing: TimingOptions,
               deploy: DeployOptions, models: ModelOptions, variants: str, **words: Any):
    """The plan (run.plan.block_plan) of the spec flags, --variants (None when not given: with
    --model, the models alone), --model and --shape, the timing and deploy flags, and `words`
    (the command's own: chunks, baseline, eager, device, force); one warning line when more
    threads are asked for than there are cores."""
    from mnv2prof.run.plan import block_plan as plan_of

    plan = plan_of(variants if given(ctx, ["variants"]) else None, models=models.model or (),
                   shape=models.shape, **dataclasses.asdict(spec), **dataclasses.asdict(timing),
                   **dataclasses.asdict(deploy), **words)
    warn_threads(plan.timing.threads)
    return plan


def source_files(measured) -> dict[str, Path]:
    """The files the subjects are read from (a user's PATH.py, an ONNX file), by what they are
    the source of: inputs no output may replace (cli.output.Outputs)."""
    files = {}
    for subject in measured:
        source = getattr(subject, "source", "")
        path = source if source.lower().endswith(".onnx") else source.rpartition(":")[0]
        if path and Path(path).is_file():
            files[f"source of {subject.variant}"] = Path(path)
    return files


def profile_file(profile: str | None, what: str = "--profile") -> dict[str, Path]:
    """{what: the profile's file} for a profile name or path (none for None), as an input."""
    if profile is None:
        return {}
    from mnv2prof.profiles.shipped import resolve_profile

    return {what: resolve_profile(profile)}


def positive(value: float, flag: str) -> None:
    if not value > 0:
        raise UsageError(f"{flag} must be positive, got {value}")
    if not math.isfinite(value):
        raise UsageError(f"{flag} must be finite, got {value}")


def warn_threads(threads: int) -> None:
    """One warning line when more threads are asked for than the usable cores."""
    from mnv2prof.measure.machine import oversubscription_warning

    if warning := oversubscription_warning(threads):
        tell(f"mnv2prof: {warning}")


def command(name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`app.command(name)` for a function that may take option groups (dataclasses of options)
    as parameters: typer sees each group's fields as options; the function gets the group."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        return app.command(name, help=reflow(func.__doc__ or ""))(expand_groups(func))

    return register


def reflow(docstring: str) -> str:
    """A docstring as paragraphs: the lines of each paragraph joined, so the help reflows to the
    terminal's width instead of breaking where the source happened to wrap."""
    paragraphs = inspect.cleandoc(docstring).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def expand_groups(func: Callable[..., Any]) -> Callable[..., Any]:
    hints = get_type_hints(func, include_extras=True)
    params: list[inspect.Parameter] = []
    groups: dict[str, tuple[type, list[str]]] = {}
    for param in inspect.signature(func).parameters.values():
        annotation = hints.get(param.name, param.annotation)
        if dataclasses.is_dataclass(annotation):
            fields = dataclasses.fields(annotation)
            field_hints = get_type_hints(annotation, include_extras=True)
            groups[param.name] = (annotation, [f.name for f in fields])
            params += [
                inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                  annotation=field_hints[f.name])
                for f in fields
            ]
        else:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=annotation))

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        for name, (group, names) in groups.items():
            kwargs[name] = group(**{n: kwargs.pop(n) for n in names})
        return func(**kwargs)

    del wrapper.__wrapped__  # typer must read the expanded signature, not func's
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper
