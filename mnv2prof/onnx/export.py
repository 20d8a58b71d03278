"""Export a torch module to ONNX, check it, prove it equal to the module, and cache the file.

torch 2.13's `torch.onnx.export` uses the dynamo exporter (via onnxscript), which takes about a
second per block, so exports are cached by a hash of the spec, the export settings and the
library versions: a second run with the same spec loads the file and skips the export. A file
lands in the cache only after `onnx.checker` and the parity check pass, and it is written to a
temporary name first, then renamed, so a killed run never leaves half a model behind.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass

# the version of onnxscript without importing it (0.7 s): only the cache key needs it
from importlib.metadata import version as _distribution_version
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from mnv2prof.onnx.atomic import atomic_target
from mnv2prof.errors import ExportError
from mnv2prof.models.variants import BlockSpec

OPSET = 18  # the dynamo exporter's native opset; 17 would need a lossy version conversion
PARITY_ATOL = 1e-4  # max abs difference allowed between onnxruntime and torch outputs
INPUT_NAME = "input"
OUTPUT_NAME = "output"
EXPORT_FORMAT = 1  # bump when the way files are written changes, to invalidate old caches


def cache_dir() -> Path:
    """`$MNV2PROF_CACHE`, else `$XDG_CACHE_HOME/mnv2prof`, else `~/.cache/mnv2prof`."""
    if env := os.environ.get("MNV2PROF_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnv2prof"


def library_versions() -> dict[str, str]:
    import onnxruntime

    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxscript": _distribution_version("onnxscript"),
        "onnxruntime": onnxruntime.__version__,
    }


@dataclass(frozen=True)
class ExportResult:
    path: Path
    cached: bool  # True: loaded from the cache, no export ran
    max_abs_diff: float | None  # parity of this export; None when loaded from the cache


def export_key(spec: BlockSpec, seed: int = 0) -> str:
    return spec.digest(seed, OPSET, EXPORT_FORMAT, library_versions())


def export_spec(
    spec: BlockSpec,
    seed: int = 0,
    directory: Path | None = None,
    module: nn.Module | None = None,
) -> ExportResult:
    """The checked ONNX file for `spec`, exported on a cache miss.

    `module`, if the caller has built it already, must be `build_block(spec, seed)`.
    """
    from mnv2prof.models.blocks import build_block

    directory = directory or cache_dir() / "onnx"
    path = directory / f"{spec.name}-{export_key(spec, seed)}.onnx"
    if path.exists():
        return ExportResult(path, cached=True, max_abs_diff=None)
    module = module if module is not None else build_block(spec, seed)
    diff = export_module(module, spec.input_shape, path, seed)
    return ExportResult(path, cached=False, max_abs_diff=diff)


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter prints progress lines and warnings meant for its developers, not our users."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_module(
    module: nn.Module, input_shape: tuple[int, ...], path: Path, seed: int = 0
) -> float:
    """Export `module` to `path` atomically; return the parity max abs diff.

    Raises `ExportError` if the exporter fails, the checker rejects the graph, or onnxruntime's
    output differs from torch's by more than `PARITY_ATOL` on a random input.
    """
    module = module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(*input_shape, generator=torch.Generator().manual_seed(seed + 1))
    with atomic_target(path, suffix=".onnx.tmp") as tmp:
        try:
            with _quiet_exporter(), torch.inference_mode(False):
                torch.onnx.export(
                    module,
                    (example,),
                    str(tmp),
                    opset_version=OPSET,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamo=True,
                    external_data=False,
                )
        except Exception as exc:  # the exporter raises many types; all mean the same to a user
            raise ExportError(f"ONNX export failed for {path.name}: {exc}") from exc
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"exported model fails onnx.checker: {exc}") from exc
        with torch.inference_mode():
            expected = module(example).numpy()
        diff = parity_diff(tmp, example.numpy(), expected)
        if not diff <= PARITY_ATOL:
            raise ExportError(
                f"onnxruntime output differs from torch by {diff:.3g} (> {PARITY_ATOL}) "
                f"for {path.name}"
            )
    return diff


def parity_diff(model_path: Path, x: np.ndarray, expected: np.ndarray) -> float:
    """Max abs difference between onnxruntime's output on `x` and `expected`."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {session.get_inputs()[0].name: x})
    if actual.shape != expected.shape:
        return float("inf")
    return float(np.max(np.abs(actual - expected)))
