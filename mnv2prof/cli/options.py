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
from mnv2prof.models.variants import DEFAULT_VARIANTS, BlockSpec, parse_variant_list

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

    def target_list(self):
        """Every precision on every runtime (models.targets.Target), checked: names, and
        ExecuTorch installed when asked for."""
        from mnv2prof.models.targets import parse_targets
        from mnv2prof.run.deploy import check_runtimes

        targets, _ = parse_targets(self.precision, self.runtime, self.calibration)
        check_runtimes(tuple(t.runtime for t in targets))
        return targets


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

    def specs(self) -> list:
        """One `user_models.ModelSpec` per --model, an ONNX file's shapes read from it."""
        from mnv2prof.models.user_models import model_specs

        specs = model_specs(list(self.model or []), list(self.shape or []))
        if any(s.onnx_file for s in specs):
            from mnv2prof.run.model_file import resolved

            specs = [resolved(s)[0] if s.onnx_file else s for s in specs]
        return specs


@dataclasses.dataclass(frozen=True)
class SpecOptions:
    """The block spec flags (every command that builds blocks)."""

    channels: Channels = 32
    resolution: Resolution = 56
    expansion: Expansion = 6
    kernel: Kernel = 3
    stride: Stride = 1
    batch: Batch = 1

    def specs(self, variants: str) -> list[BlockSpec]:
        """One spec per variant of the comma-separated `variants` (built-in names, or the
        user's blocks), checked (SpecError, PluginError)."""
        return [
            ref.spec(
                in_chs=self.channels,
                resolution=self.resolution,
                exp_ratio=self.expansion,
                kernel_size=self.kernel,
                stride=self.stride,
                batch=self.batch,
            )
            for ref in parse_variant_list(variants)
        ]

    @property
    def title(self) -> str:
        r = self.resolution
        return (
            f"C={self.channels} {r}x{r} t={self.expansion} k={self.kernel} s={self.stride} "
            f"N={self.batch}"
        )


@dataclasses.dataclass(frozen=True)
class TimingOptions:
    """--threads, --budget, --cache: how every latency is taken."""

    threads: Threads = 1
    budget: Budget = 2.0
    cache: Cache = "warm"

    def spec(self):
        """The `latency.TimingSpec`, checked; more threads than cores gets one warning line."""
        from mnv2prof.measure.timing import TimingSpec

        spec = TimingSpec(threads=self.threads, budget_s=self.budget, cache=self.cache)
        check_threads(self.threads)
        return spec


def given(ctx: typer.Context, names) -> list[str]:
    """The parameters among `names` given on the command line or by environment, not defaulted."""
    return [
        name for name in names
        if (source := ctx.get_parameter_source(name)) is not None and source.name != "DEFAULT"
    ]


def subjects(ctx: typer.Context, spec: SpecOptions, variants: str, models: ModelOptions) -> list:
    """What a command measures: the --variants' blocks at the spec flags, then the --model
    models. With --model and no --variants, the models alone. mbv2-streamed is in its default
    chunks (t: variants.default_chunks) in every command, so a baseline and a compare agree."""
    from mnv2prof.models.variants import with_chunks

    model_specs = models.specs()
    blocks = [] if model_specs and not given(ctx, ["variants"]) else spec.specs(variants)
    blocks = with_chunks(blocks)
    names = [s.variant for s in blocks] + [m.variant for m in model_specs]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise UsageError(f"a variant and a model are both named {', '.join(twice)}: rows are "
                         "named by variant, rename one")
    return blocks + model_specs


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
    from mnv2prof.run.profiles import resolve_profile

    return {what: resolve_profile(profile)}


def budget_seconds(value: float) -> None:
    """A --budget in seconds: positive, finite, at most an hour (measure.timing's rule)."""
    from mnv2prof.measure.timing import check_seconds

    check_seconds(value, "budget")


def row_name(text: str) -> str:
    """The row a --baseline or --relative-to names: a variant or row label as it is, NAME of
    PATH.py:NAME or package.module:NAME, the stem of FILE.onnx."""
    text = text.strip()
    if text.lower().endswith(".onnx"):
        return Path(text).stem
    return text.rpartition(":")[2] if ":" in text else text


def positive(value: float, flag: str) -> None:
    if not value > 0:
        raise UsageError(f"{flag} must be positive, got {value}")
    if not math.isfinite(value):
        raise UsageError(f"{flag} must be finite, got {value}")


def check_threads(threads: int) -> None:
    """--threads must be positive; more than the usable cores is allowed, with one warning."""
    from mnv2prof.measure.machine import oversubscription_warning

    from mnv2prof.measure.timing import check_count, max_threads

    check_count(threads, "threads", 1, max_threads())
    if warning := oversubscription_warning(threads):
        tell(f"mnv2prof: {warning}")


def check_device(device: str) -> None:
    """Refuse an unknown --device, or cuda without a GPU, before anything is exported or
    written; the CPU needs no check (and no torch import: measure.cuda imports it)."""
    if device == "cpu":
        return
    from mnv2prof.measure.cuda import check_device as check

    check(device)


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
