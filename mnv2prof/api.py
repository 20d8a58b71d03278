"""The Python API, for notebooks and scripts: what `mnv2prof compare` and `mnv2prof profile`
measure, returned as a `pandas.DataFrame` with the CSV's columns (run/records.py names their
units). Nothing here prints or exits: errors are the domain exceptions of `mnv2prof.errors`
(`UsageError` and its kind for bad input, `ExportError` when an export fails, `Interrupted`).

    import mnv2prof
    frame = mnv2prof.compare(variants=["conv", "dwsep", "examples/uib.py:uib_extradw"],
                             in_chs=32, resolution=56, budget=1.0)
    frame = mnv2prof.profile("examples/mobilenet_v3.py:mobilenet_v3_large")

A variant is a built-in name, `PATH.py:NAME`, `package.module:NAME`, or a callable (a class or
function called with the spec's values, as a file's NAME would be); a model is a reference, an
ONNX file's path, a factory called with no arguments, or an `nn.Module` (measured as it is).
See docs/python.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import pandas as pd

from mnv2prof.errors import UsageError


def _names(value: str | Sequence[str], flag: str) -> tuple[str, ...]:
    return tuple(value.split(",")) if isinstance(value, str) else tuple(value)


def _targets(precision, runtime, calibration: str):
    from mnv2prof.models.targets import parse_targets
    from mnv2prof.run.deploy import check_runtimes

    targets, _ = parse_targets(precision, runtime, calibration)
    check_runtimes(tuple(t.runtime for t in targets))
    return targets


def _timing(budget: float, threads: int, cache: str):
    from mnv2prof.measure.timing import TimingSpec

    return TimingSpec(threads=threads, budget_s=budget, cache=cache)


def _variant(item, spec_values: dict):
    from mnv2prof.models import plugins
    from mnv2prof.models.variants import VariantRef, resolve_variant

    if isinstance(item, str):
        return resolve_variant(item).spec(**spec_values)
    if callable(item):
        origin = plugins.register_callable(item, _code_digest(item))
        return VariantRef(origin.name, origin.reference, origin.digest).spec(**spec_values)
    raise UsageError(f"a variant is a name, PATH.py:NAME or a callable, got {type(item).__name__}")


def _model(item, shape):
    from torch import nn

    from mnv2prof.models import plugins
    from mnv2prof.models.user_models import TORCH_INPUT, ModelSpec, format_shape, model_spec

    shape = tuple(shape) if shape is not None else None
    if isinstance(item, str):
        spec = model_spec(item, format_shape(shape) if shape else None)
        if spec.onnx_file:
            from mnv2prof.run.model_file import resolved

            spec = resolved(spec)[0]
        return spec
    if isinstance(item, nn.Module):
        module = item
        digest = _module_digest(module)
        factory = _returns(module)
        factory.__name__ = type(module).__name__
    elif callable(item):
        factory, digest = item, _code_digest(item)
    else:
        raise UsageError(f"a model is a path, PATH.py:NAME, a factory or an nn.Module, got "
                         f"{type(item).__name__}")
    origin = plugins.register_callable(factory, digest)
    dims = shape or (1, 3, 224, 224)
    return ModelSpec(origin.name, origin.reference, origin.digest, ((TORCH_INPUT, dims),))


def _returns(module) -> Callable[[], object]:
    def factory():
        return module

    return factory


def _code_digest(obj) -> str:
    """A callable's identity for the caches: the hash of its source (its name and module when
    the source cannot be read, e.g. a class made at run time)."""
    import inspect

    try:
        text = inspect.getsource(obj)
    except (OSError, TypeError):
        text = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _module_digest(module) -> str:
    """An `nn.Module` instance's identity: its class's source and every tensor of its state."""
    digest = hashlib.sha256(_code_digest(type(module)).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def compare(
    variants: Sequence[str | Callable] | str | None = ("conv", "dwsep", "mbv2", "mbv2-nonlinear",
                                                       "mbv2-noskip", "resnet", "fused",
                                                       "shufflev2"),
    *,
    models: Sequence[object] = (),
    shape: Sequence[int] | None = None,
    in_chs: int = 32,
    resolution: int = 56,
    exp_ratio: int = 6,
    kernel_size: int = 3,
    stride: int = 1,
    batch: int = 1,
    chunks: Sequence[int] | None = None,
    budget: float = 2.0,
    threads: int = 1,
    cache: str = "warm",
    precision: str | Sequence[str] = "fp32",
    runtime: str | Sequence[str] = "onnxruntime",
    calibration: str = "minmax",
    eager: bool = True,
    baseline: str | None = None,
    seed: int = 0,
    force: bool = False,
) -> pd.DataFrame:
    """`mnv2prof compare`: each variant at the spec (and each of `models` at `shape`), exported,
    counted and timed on every precision and runtime; one row per (subject, precision, runtime),
    with the CSV's columns, `macs_ratio_x` and `latency_ratio_x` against `baseline` (default:
    conv when it is among the rows, else the first) and the roofline columns when this CPU is
    calibrated. `chunks`: mbv2-streamed's chunk counts, a row each (default: t, the paper's t
    pieces, `variants.default_chunks`). `force`: measure even what looks too large for the
    memory available."""
    from mnv2prof.run.machine_file import load_machine
    from mnv2prof.models.variants import with_chunks
    from mnv2prof.run.frame import add_roofline, records_frame
    from mnv2prof.run.deploy import rows_of
    from mnv2prof.run.fits import subjects_fit
    from mnv2prof.run.pipeline import measure_rows

    spec_values = dict(in_chs=in_chs, resolution=resolution, exp_ratio=exp_ratio,
                       kernel_size=kernel_size, stride=stride, batch=batch)
    items = [] if variants is None else (variants.split(",") if isinstance(variants, str)
                                         else list(variants))
    subjects = with_chunks([_variant(v, spec_values) for v in items],
                           tuple(chunks) if chunks is not None else None)
    subjects += [_model(m, shape) for m in models]
    if not subjects:
        raise UsageError("nothing to measure: give variants or models")
    names = [s.label for s in subjects]
    if len(set(names)) != len(names):
        raise UsageError(f"two rows are named alike in {', '.join(names)}: rename one")
    timing = _timing(budget, threads, cache)
    targets = _targets(precision, runtime, calibration)
    subjects_fit(subjects, force)
    base = baseline or ("conv" if "conv" in names else names[0])
    run = measure_rows(rows_of(subjects, targets), timing, seed=seed, calibration=calibration,
                       eager=eager)
    return add_roofline(records_frame(run.records, base), load_machine(threads))


def profile(
    model,
    shape: Sequence[int] | None = None,
    *,
    budget: float = 2.0,
    threads: int = 1,
    cache: str = "warm",
    precision: str | Sequence[str] = "fp32",
    runtime: str | Sequence[str] = "onnxruntime",
    calibration: str = "minmax",
    seed: int = 0,
    force: bool = False,
) -> pd.DataFrame:
    """`mnv2prof profile`: one model (an ONNX file's path, PATH.py:NAME, a factory, or an
    `nn.Module`) counted and timed at `shape` (default 1x3x224x224 for a torch model, an ONNX
    file's own dims), a row per precision and runtime, with the CSV's columns."""
    from mnv2prof.run.frame import records_frame
    from mnv2prof.run.deploy import rows_of
    from mnv2prof.run.fits import subjects_fit
    from mnv2prof.run.model_file import model_timing
    from mnv2prof.run.pipeline import measure_rows

    subject = _model(model, shape)
    timing = model_timing(_timing(budget, threads, cache))
    targets = _targets(precision, runtime, calibration)
    subjects_fit([subject], force)
    run = measure_rows(rows_of([subject], targets), timing, seed=seed, calibration=calibration,
                       eager=False)
    return records_frame(run.records)
