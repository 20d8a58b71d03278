"""The Python API, for notebooks and scripts: the commands of the command line, taking its words
(`channels`, `expansion`, `budget`... as `--channels`, `--expansion`, `--budget`) and returning
`pandas.DataFrame`s with the CSV's columns (run/records.py names their units). Each builds the
same plan (run.plan) and calls the same command (mnv2prof.commands) as the command line, so a
rule refuses the same values in both. Nothing here prints or exits: errors are the domain
exceptions of `mnv2prof.errors` (`UsageError` and its kinds for bad input, `ExportError` when an
export fails, `Interrupted` on Ctrl-C).

    import mnv2prof
    frame = mnv2prof.compare(["conv", "dwsep", "examples/uib.py:uib_extradw"],
                             channels=32, expansion=6, budget=1.0)
    frame = mnv2prof.profile("examples/mobilenet_v3.py:mobilenet_v3_large")

A variant is a built-in name, `PATH.py:NAME`, `package.module:NAME`, or a callable (a class or
function called with the spec's values, as a file's NAME would be); a model is a reference, an
ONNX file's path, a factory called with no arguments, or an `nn.Module` (measured as it is).
Notes the command line prints under its table are in `frame.attrs["notes"]`. See docs/python.md.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mnv2prof import interrupts
from mnv2prof.errors import UsageError
from mnv2prof.run import plan

if TYPE_CHECKING:
    import pandas as pd


@contextlib.contextmanager
def _command() -> Iterator[None]:
    """Ctrl-C (SIGINT, SIGTERM) stops the command at its next safe point with `Interrupted`,
    never with a half-measured frame; its handlers are restored after."""
    from mnv2prof.errors import Interrupted

    with interrupts.deferred() as window:
        try:
            yield
        except KeyboardInterrupt:
            raise Interrupted("interrupted (a second signal)") from None
    if window.received:
        raise Interrupted(f"interrupted ({window.name})")


def compare(variants: str | Sequence[str | Callable] | None = None, **words: object
            ) -> pd.DataFrame:
    """`mnv2prof compare`: each variant at the spec (None: the default blocks, or none when
    `models` are given), then each of `models` at `shape`, exported, counted and timed on every
    precision and runtime: a row per (subject, precision, runtime) with the CSV's columns,
    `macs_ratio_x` and `latency_ratio_x` against `baseline` (default: conv when it is a row,
    else the first), and the roofline's columns when this CPU is calibrated. The words are
    run.plan.block_plan's (docs/python.md)."""
    from mnv2prof.commands.compare import compare as measure
    from mnv2prof.report.results import compare_notes
    from mnv2prof.run.plan import block_plan

    with _command():
        result = measure(_call(block_plan, variants, **words))
    return _with_notes(result.frame, compare_notes(result))


def profile(model: object, shape: object = None, **words: object) -> pd.DataFrame:
    """`mnv2prof profile`: one model (an ONNX file's path, PATH.py:NAME, a factory, or an
    `nn.Module`) counted and timed at `shape` (default 1x3x224x224 for a torch model, an ONNX
    file's own dims; INPUT=dims names an ONNX input), a row per precision and runtime. The
    words are run.plan.model_plan's (docs/python.md)."""
    from mnv2prof.commands.profile import profile as measure
    from mnv2prof.report.results import profile_notes
    from mnv2prof.run.plan import model_plan

    with _command():
        result = measure(_call(model_plan, model, shape, **words))
    return _with_notes(result.frame, profile_notes(result))


def network(arch: str, **words: object) -> pd.DataFrame:
    """`mnv2prof network`: a paper's network (mobilenetv2, mobilenetv1) or any torch model
    (PATH.py:NAME) per stage, a row per stage and a total row; `budget=0` counts only. The words
    are run.plan.network_plan's (docs/python.md)."""
    from mnv2prof.commands.network import network as measure
    from mnv2prof.report.network_report import network_report
    from mnv2prof.run.plan import network_plan

    with _command():
        frame, _ = network_report(measure(_call(network_plan, arch, **words)))
    return frame


def baseline(
    variants: str | Sequence[str | Callable] | None = None,
    *,
    profile: str | Path | None = None,
    out: str | Path | None = None,
    **words: object,
) -> pd.DataFrame:
    """`mnv2prof baseline`: the rows a later `gate` measures again (the words of `compare`, or a
    profile's grid), returned, and written to `out` when given (atomically)."""
    from mnv2prof.commands.gates import baseline as measure

    with _command():
        result = measure(_gates_plan(variants, profile, words))
    if out is not None:
        from mnv2prof.files.atomic import write_atomic

        write_atomic(out, result.frame.to_csv(index=False))
    return result.frame


def gate(
    baseline: str | Path | None = None,
    variants: str | Sequence[str | Callable] | None = None,
    *,
    against: str | None = None,
    allow_dirty: bool = False,
    profile: str | Path | None = None,
    max_slowdown: float = 0.10,
    alpha: float = 0.01,
    relative_to: str | None = None,
    allow_cost_change: bool = False,
    allow_env_mismatch: bool = False,
    **words: object,
) -> pd.DataFrame:
    """`mnv2prof gate`: measure again and judge each row against the `baseline` file, or against
    the base `against` (a git revision of the user's code, or another file) timed beside it; a
    row per verdict (`frame.attrs["exit_code"]` is the command line's: 0 pass, 1 regression).
    Never exits."""
    from mnv2prof.commands import gates
    from mnv2prof.gating.decide import GatePolicy
    from mnv2prof.run.plan import row_name

    if (baseline is None) == (against is None):
        raise UsageError("gate takes baseline (stored numbers) or against (the base timed beside "
                         "the change), one of them")
    with _command():
        plan = _gates_plan(variants, profile, words)
        reference = row_name(relative_to) if relative_to else None
        policy = GatePolicy(max_slowdown, alpha, allow_cost_change)
        if against is not None:
            with gates.ab_checked(plan, against, allow_dirty) as checked:
                result = gates.ab_gate(checked, policy)
            frame = gates.ab_frame(result)
        else:
            checked = gates.check_gate(plan, baseline, reference, allow_env_mismatch)
            result = gates.gate(checked, policy, reference).result
            frame = gates.verdicts_frame(result)
    frame.attrs["exit_code"] = int(result.exit_code)
    return frame


def _gates_plan(variants, profile, words: dict):
    from mnv2prof.run.plan import block_plan, profile_plan

    if profile is None:
        return _call(block_plan, variants, eager=False, **words)
    extra = sorted(set(words) - {"budget", "cache", "force"})
    if variants is not None or extra:
        shown = ", ".join(["variants"] * (variants is not None) + extra)
        raise UsageError(f"profile replaces the spec words: drop {shown}")
    return profile_plan(str(profile), words.get("budget"), words.get("cache"),
                        force=bool(words.get("force", False)))


def sweep(
    profile: str | Path,
    out: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    cache: str | None = None,
    shard: str | None = None,
    ray: str | None = None,
    max_points: int | None = None,
    force_size: bool = False,
) -> pd.DataFrame:
    """`mnv2prof sweep`: every row of a profile's grid journaled into `out` (resumable); returns
    the file's rows. Rows a cluster could not measure raise `SweepIncomplete`."""
    from mnv2prof.commands.sweep import check_complete
    from mnv2prof.commands.sweep import sweep as measure
    from mnv2prof.run.plan import profile_plan

    with _command():
        part = None
        if shard is not None:
            from mnv2prof.sweeps.shard import parse_shard

            part = parse_shard(shard)
        if ray is not None:
            from mnv2prof.sweeps.ray_address import check_ray_address

            ray = check_ray_address(ray)
        plan = profile_plan(str(profile), cache=cache, max_points=max_points, force=force_size,
                            force_flag="force_size")
        result = measure(plan, out, resume=resume, force=force, shard=part, ray=ray)
        check_complete(result, out)
    import pandas as pd

    return pd.read_csv(out)


def predict(
    variant: str | Callable | None = None,
    *,
    model: object | None = None,
    shape: str | Sequence[int] | None = None,
    predictor: str | Path | None = None,
    check: bool = False,
    force: bool = False,
    budget: float = 2.0,
    **words: int,
) -> pd.DataFrame:
    """`mnv2prof predict`: a block (`variant` at the spec words: channels, resolution,
    expansion, kernel, stride, batch) or a `model`, its latency predicted from its kernels by
    the predictor folder `predictor` (default $MNV2PROF_PREDICTOR, else ./predictor): a row per
    kernel, then the network's row (with `check`, measured beside it)."""
    import os

    from mnv2prof.predictor.folder import load_predictor
    from mnv2prof.predictor.subject import predict_subject
    from mnv2prof.run.plan import block_plan, model_plan

    if (variant is None) == (model is None):
        raise UsageError("predict takes one block (variant) or one model")
    with _command():
        plan = (model_plan(model, shape) if model is not None
                else _call(block_plan, [variant], eager=False, **words))
        loaded = load_predictor(predictor or os.environ.get("MNV2PROF_PREDICTOR")
                                or "predictor", force)
        result = predict_subject(plan.check().subjects[0], loaded, check, budget)
    return result.frame()


def _with_notes(frame: pd.DataFrame, notes: Sequence[str]) -> pd.DataFrame:
    frame.attrs["notes"] = list(notes)
    return frame


def _call(builder: Callable, *args: object, **words: object):
    """`builder(*args, **words)`, a word it does not take refused as bad input (a UsageError
    naming the words it takes), never a TypeError."""
    params = inspect.signature(builder).parameters
    unknown = [w for w in words if w not in params or params[w].kind is not params[w].KEYWORD_ONLY]
    if unknown:
        taken = ", ".join(n for n, p in params.items() if p.kind is p.KEYWORD_ONLY)
        raise UsageError(f"unknown word {unknown[0]!r}: the words are {taken} (docs/python.md)")
    return builder(*args, **words)


def _takes_the_words_of(func: Callable, builder: Callable) -> None:
    """`func` shows the words its plan's builder takes as its own signature (help(), a
    notebook's completion): one list of words for the command line, the API and the plan."""
    func.__signature__ = inspect.signature(builder).replace(  # type: ignore[attr-defined]
        return_annotation="pd.DataFrame")


_takes_the_words_of(compare, plan.block_plan)
_takes_the_words_of(profile, plan.model_plan)
_takes_the_words_of(network, plan.network_plan)
