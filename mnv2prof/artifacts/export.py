"""Export a torch module to ONNX, check it, prove it equal to the module, and cache the file.

torch 2.13's `torch.onnx.export` uses the dynamo exporter (via onnxscript), which takes about 1.4 s
per block here, half of it rebuilding its table of ONNX decompositions; built once per process
(`_dynamo_export`), a block takes about 0.5 s. Exports are still cached by a hash of the source (a
block's spec, a network's, a probe's), the seed, the export settings and the library versions: a
second run loads the file and skips the export. Every source goes through `export_cached`. The
file's metadata carries the torch module's parameter count (`PARAMS_KEY`), which the exported graph
cannot give back (BN is folded). A file lands in the cache only after `onnx.checker` and the parity
check pass, and it is written to a temporary name first, then renamed, so a killed run never leaves
half a model behind. The cache is the tool's own: a cached file is used only when its record
names this cache key and these bytes (`files.cache.vouched`); anything else (another block's
file swapped in, a file cut short, a folder) is set aside and exported again, never handed on. The cache folder itself (`$MNV2PROF_CACHE`) is checked once, when first
used: one line naming it when it is a file or cannot be created or written (exit 2).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# the version of onnxscript without importing it (0.7 s): only the cache key needs it
from importlib.metadata import version as _distribution_version
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mnv2prof import interrupts
from mnv2prof.errors import ExportError, first_line
from mnv2prof.files.atomic import atomic_target
from mnv2prof.files.cache import cache_dir, vouch, vouched
from mnv2prof.models.inputs import example_input
from mnv2prof.quiet import silenced

OPSET = 18  # the dynamo exporter's native opset; 17 would need a lossy version conversion
PARITY_ATOL = 1e-4  # max abs difference allowed between onnxruntime and torch outputs, per unit
# of the output's scale (its largest magnitude, at least 1): float32 round-off grows with the
# values, and a user's model may give logits in the hundreds


def parity_limit(expected: np.ndarray) -> float:
    """The largest difference `PARITY_ATOL` allows for an output like `expected`."""
    scale = float(np.max(np.abs(expected), initial=0.0)) if expected.size else 0.0
    return PARITY_ATOL * max(1.0, scale)
INPUT_NAME = "input"
OUTPUT_NAME = "output"
EXPORT_FORMAT = 2  # bump when the way files are written changes, to invalidate old caches
# (2: parameter counts in the metadata, one cache key for every source)
PARAMS_KEY = "mnv2prof.params"  # the torch module's learnable scalars (BN scale and shift too)
PARAMS_BY_PART_KEY = "mnv2prof.params_by_part"  # JSON {module path: learnable scalars}


def library_versions() -> dict[str, str]:
    import onnxruntime

    return {
        "torch": torch.__version__,
        "onnx": _distribution_version("onnx"),  # onnx itself is imported only to write or read
        "onnxscript": _distribution_version("onnxscript"),
        "onnxruntime": onnxruntime.__version__,
    }


@dataclass(frozen=True)
class ExportResult:
    path: Path
    cached: bool  # True: loaded from the cache, no export ran
    max_abs_diff: float | None  # parity of this export; None when loaded from the cache


@dataclass(frozen=True)
class ExportSource:
    """What to export: a file name, what makes the module unique, and how to build it.

    Blocks (`models.blocks.block_source`), whole networks (`models.networks.network_source`) and
    ShuffleNet V2 probes (`models.probes.probe_source`) are all exported through `export_cached`
    from one of these, so they share the cache, the checks and the parameter metadata.
    """

    name: str  # the file's stem: a spec or network name, a probe's label
    identity: str  # everything the module depends on apart from the seed (the cache key hashes it)
    build: Callable[[int], nn.Module]  # seed -> the eval-mode module (models.blocks.seeded)
    input_shape: tuple[int, ...]
    folder: str = "onnx"  # subfolder of the cache
    parts: tuple[str, ...] = ()  # module paths whose parameter counts the file also records

    def key(self, seed: int) -> str:
        payload = json.dumps([self.identity, list(self.input_shape), seed, OPSET, EXPORT_FORMAT,
                              sorted(library_versions().items())])
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def export_cached(
    source: ExportSource,
    seed: int = 0,
    module: nn.Module | None = None,
    directory: Path | None = None,
) -> ExportResult:
    """The checked ONNX file of `source`, exported on a cache miss.

    `module`, if the caller has built it already, must be `source.build(seed)`. A pending
    interrupt (interrupts.py) stops before an export starts, never inside one.
    """
    folder = directory if directory is not None else cache_dir() / source.folder
    key = source.key(seed)
    path = folder / f"{source.name}-{key}.onnx"
    if vouched(path, key):  # this key's file, these bytes: no need to parse it (onnx)
        return ExportResult(path, cached=True, max_abs_diff=None)
    interrupts.check()
    module = module if module is not None else source.build(seed)
    metadata = parameter_metadata(module, source.parts)
    diff = export_module(module, source.input_shape, path, seed, metadata, key)
    return ExportResult(path, cached=False, max_abs_diff=diff)


def parameter_metadata(module: nn.Module, parts: Sequence[str] = ()) -> dict[str, str]:
    """The module's learnable scalars (and those of each of `parts`), for the ONNX file's
    metadata: the exporter folds BN into the conv, so the graph alone cannot give BN's scale and
    shift back (count.cost reads these)."""
    from mnv2prof.models.blocks import count_params

    named = dict(module.named_modules())
    metadata = {PARAMS_KEY: str(count_params(module))}
    if parts:
        by_part = {part: count_params(named[part]) for part in parts}
        metadata[PARAMS_BY_PART_KEY] = json.dumps(by_part)
    return metadata


_EXPORTER_LOGGERS = ("torch.onnx", "torch.export", "onnxscript")


@functools.cache
def _torchlib_registry():
    """The dynamo exporter's table of ONNX decompositions (torchlib) at `OPSET`, or None when this
    torch's exporter has no such internals (then `torch.onnx.export` builds its own)."""
    try:
        from torch.onnx._internal.exporter import _core, _registration

        if "registry" not in inspect.signature(_core.export).parameters:
            return None
        return _registration.ONNXRegistry.from_torchlib(opset_version=OPSET)
    except (ImportError, AttributeError, TypeError, ValueError):
        return None


def _dynamo_export(module: nn.Module, example: torch.Tensor, target: Path) -> None:
    """`torch.onnx.export(dynamo=True)` to `target`, with the registry built once per process.

    `torch.onnx.export` rebuilds the torchlib registry on every call (0.6-0.7 s here, half of a
    block's export); the exporter's core takes a registry, so this process builds it once and
    hands it in. The arguments are the ones `torch.onnx.export` passes to that core for ours, and
    the file is byte-identical to its (tests/onnx/test_export.py). A torch without that core
    takes the public path.
    """
    registry = _torchlib_registry()
    if registry is None:
        torch.onnx.export(module, (example,), str(target), opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamo=True,
                          external_data=False)
        return
    from torch.onnx._internal.exporter import _core

    program = _core.export(module, (example,), registry=registry, input_names=[INPUT_NAME],
                           output_names=[OUTPUT_NAME], opset_version=OPSET)
    program.save(str(target), external_data=False)


def export_module(
    module: nn.Module,
    input_shape: tuple[int, ...],
    path: Path,
    seed: int = 0,
    metadata: dict[str, str] | None = None,
    cache_key: str | None = None,
) -> float:
    """Export `module` to `path` atomically, with `metadata` in the model's metadata_props;
    return the parity max abs diff. `cache_key`: `path` is a cache entry, whose record
    (files.cache.vouch) is written once the checks pass, before the file is renamed into place.

    Raises `ExportError` if the exporter fails, the checker rejects the graph, or onnxruntime's
    output differs from torch's by more than `PARITY_ATOL` on a random input.
    """
    import onnx

    module = module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    example = example_input(input_shape, seed + 1)
    with atomic_target(path, suffix=".onnx.tmp") as tmp:
        try:
            with silenced(_EXPORTER_LOGGERS), torch.inference_mode(False):
                _dynamo_export(module, example, tmp)
        except Exception as exc:  # the exporter raises many types; all mean the same to a user
            raise ExportError(f"ONNX export failed for {path.name}: {export_failure(exc)}") from exc
        if metadata:
            model = onnx.load(str(tmp))
            for key, value in metadata.items():
                entry = model.metadata_props.add()
                entry.key, entry.value = key, value
            onnx.save(model, str(tmp))
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"exported model fails onnx.checker: {exc}") from exc
        with torch.inference_mode():
            expected = module(example).numpy()
        diff = parity_diff(tmp, example.numpy(), expected)
        if not diff <= parity_limit(expected):
            raise ExportError(
                f"onnxruntime output differs from torch by {diff:.3g} (> "
                f"{parity_limit(expected):.3g}, {PARITY_ATOL} of the output's scale) for "
                f"{path.name}"
            )
        if cache_key is not None:
            vouch(tmp, path, cache_key)
    return diff


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def export_failure(exc: BaseException) -> str:
    """The exporter's failure in one line, naming the op it could not convert: its report runs
    to dozens of lines (steps, advice, a chain of exceptions), the op is in one of them."""
    text = _ANSI.sub("", str(exc))
    ops = list(dict.fromkeys(re.findall(r"target=torch\.ops\.([\w.]+)", text)))
    ops += [f"{m.group(1)}.{m.group(2)}" for m in
            re.finditer(r"OpOverload\(op='([\w.]+)', overload='(\w+)'\)", text)
            if f"{m.group(1)}.{m.group(2)}" not in ops]
    causes = re.findall(r"^<class '[\w.]*?(\w+)'>: (.+)$", text, flags=re.MULTILINE)
    cause = f"{causes[0][0]}: {causes[0][1].strip()}" if causes else first_line(exc, True)
    if len(cause) > 200:
        cause = cause[:197] + "..."
    if ops:
        return f"the exporter cannot convert {', '.join(ops[:3])} ({cause})"
    return cause


def parity_diff(model_path: Path, x: np.ndarray, expected: np.ndarray) -> float:
    """Max abs difference between onnxruntime's output on `x` and `expected`."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {session.get_inputs()[0].name: x})
    if actual.shape != expected.shape:
        return float("inf")
    return float(np.max(np.abs(actual - expected)))
