"""ExecuTorch's artefact: a torch module lowered to an XNNPACK `.pte` (fp32 or int8), checked and
cached; and the ExecuTorch library itself (`available`, `runtime`), which building and running
(measure/executorch.py) both load from here.

ExecuTorch is an optional dependency (`pip install 'mnv2prof[mobile]'`): nothing here imports it
until a function needs it, and then a missing install is one `UsageError` line
(`INSTALL_HINT`). `available()` says whether it is installed, without importing it.

**Lowering** (`lower_cached`): `torch.export.export` -> for int8, PT2E quantization
(`XNNPACKQuantizer` with `get_symmetric_quantization_config(is_per_channel=True)`: int8 weights
per output channel, int8 activations per tensor, torchao's `prepare_pt2e`, calibration on
`artifacts.quantize.CALIBRATION_INPUTS` seeded inputs, the very tensors the onnxruntime int8 model is
calibrated on, `convert_pt2e`, exported again) -> `to_edge_transform_and_lower` with the
`XnnpackPartitioner` -> `to_executorch().buffer`. The file is cached in
`files.cache.cache_dir() / "pte"` under a key of the block's identity, the precision, the seed,
the calibration count, the input shape, `PTE_FORMAT` and the library versions (ExecuTorch and
torchao included), and written atomically once its checks pass: fp32 must equal the torch
module within `export.PARITY_ATOL` (else `ExportError`); int8 is compared with the fp32 torch
module on held-out inputs (`artifacts.quantize.heldout_seeds`) and its error returned, never failed
on; a cached file is used only when its record names this key and its bytes
(`files.cache.vouched`), else it is set aside and lowered again. Lowering is
slow (2-core development machine, mbv2 block C=32 56x56 t=6): importing the lowering stack
(`executorch.exir`, torchao) takes 4.4 s; the first lowering of a process pays a one-time
warm-up of torch.export and the observers: fp32 5.4 s, int8 11-15 s; later ones take 1.5-1.9 s
for fp32 and about 6 s for int8 (prepare_pt2e 2.5 s, calibration on 16 inputs 0.5 s, lowering
2.4 s). A cache hit costs loading the program once (and for int8 its accuracy: 30-40 ms).

Noise silenced here: the ExecuTorch library writes cpuinfo probing lines and "Resetting
threadpool" straight to file descriptor 2 (the pool's creation and reset run under
`measure.eager.quiet_stderr`); torchao logs "Failed to load ... .so" for its CUDA kernels and
torch logs a `register_constant()` deprecation for one of torchao's enums at import; the
lowering stack warns (`ExperimentalWarning`, export warnings) and prints through loggers. None
of it reaches the user's terminal.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version
from pathlib import Path
from types import ModuleType, SimpleNamespace

import torch
from torch import nn

from mnv2prof import interrupts
from mnv2prof.artifacts.export import PARITY_ATOL, library_versions, parity_limit
from mnv2prof.artifacts.quantize import (
    CALIBRATION_INPUTS,
    HELDOUT_INPUTS,
    Accuracy,
    ErrorTally,
    calibration_seeds,
    heldout_seeds,
)
from mnv2prof.errors import ExportError, UsageError, first_line
from mnv2prof.files.atomic import atomic_target
from mnv2prof.files.cache import cache_dir, vouch, vouched
from mnv2prof.models.inputs import example_input
from mnv2prof.models.targets import PRECISIONS
from mnv2prof.quiet import quiet_stderr, silenced

# pip install 'mnv2prof[mobile]' fits an installed package and an editable checkout alike:
# pip finds mnv2prof installed and adds only the extra's packages.
INSTALL_HINT = "--runtime executorch needs ExecuTorch: pip install 'mnv2prof[mobile]'"
PTE_FORMAT = 1  # bump when the way .pte files are made changes, to invalidate old caches
METHOD_NAME = "forward"

# loggers that talk while ExecuTorch, torchao and the exporter are imported or run
_NOISY_LOGGERS = (
    "torchao", "torch.utils._pytree", "torch.export", "torch._export", "torch._dynamo",
    "torch.fx", "executorch",
)  # fmt: skip


def available() -> bool:
    """Whether ExecuTorch's runtime is installed (nothing is imported)."""
    try:
        return importlib.util.find_spec("executorch.extension.pybindings._C") is not None
    except (ImportError, ValueError):
        return False


def versions() -> dict[str, str]:
    """The libraries an artefact depends on: export's, plus ExecuTorch's and torchao's."""
    found = dict(library_versions())
    for name in ("executorch", "torchao"):
        try:
            found[name] = _distribution_version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found



def _quiet():
    """The lowering stack's loggers and the root logger (torchao logs there) at ERROR."""
    return silenced(_NOISY_LOGGERS, root=True)


_RUNTIME: ModuleType | None = None


def runtime() -> ModuleType:
    """ExecuTorch's runtime bindings (`executorch.extension.pybindings._C`), imported quietly,
    with the threadpool created (its cpuinfo probing writes to fd 2)."""
    global _RUNTIME
    if _RUNTIME is None:
        if not available():
            raise UsageError(INSTALL_HINT)
        try:
            with _quiet(), quiet_stderr():
                from executorch.extension.pybindings import _C

                _C._threadpool_get_thread_count()  # creates the pool, under quiet_stderr
        except ImportError as exc:
            raise UsageError(f"{INSTALL_HINT} ({first_line(exc, with_type=True)})") from exc
        _RUNTIME = _C
    return _RUNTIME


def _lowering() -> SimpleNamespace:
    """The lowering stack (4-5 s to import: executorch.exir, torchao), imported quietly."""
    runtime()
    try:
        with _quiet(), quiet_stderr():
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import (
                XnnpackPartitioner,
            )
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer,
                get_symmetric_quantization_config,
            )
            from executorch.exir import to_edge_transform_and_lower
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError as exc:
        raise UsageError(f"{INSTALL_HINT} ({first_line(exc, with_type=True)})") from exc
    return SimpleNamespace(
        XnnpackPartitioner=XnnpackPartitioner,
        XNNPACKQuantizer=XNNPACKQuantizer,
        get_symmetric_quantization_config=get_symmetric_quantization_config,
        to_edge_transform_and_lower=to_edge_transform_and_lower,
        prepare_pt2e=prepare_pt2e,
        convert_pt2e=convert_pt2e,
    )


def load_method(C: ModuleType, source: Path | bytes):
    """(program, its `forward` method); ExecuTorch's loader writes why it failed to fd 2 as
    well as into the exception, so fd 2 is silenced while it loads."""
    verification = C.Verification.InternalConsistency
    with quiet_stderr():
        if isinstance(source, bytes):
            program = C._load_program_from_buffer(
                source,
                enable_etdump=False,
                debug_buffer_size=0,
                program_verification=verification,
            )
        else:
            program = C._load_program(
                str(source),
                enable_etdump=False,
                debug_buffer_size=0,
                program_verification=verification,
            )
        return program, program.load_method(METHOD_NAME)


def _run_once(program_bytes: bytes, inputs: Sequence[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Outputs of the program on each input, its method dropped before returning (so it holds
    no threadpool a later runner may need to resize)."""
    program, method = load_method(runtime(), program_bytes)
    try:
        return [list(method((x,))) for x in inputs]
    finally:
        del method, program


def _torch_outputs(module: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.inference_mode():
        out = module(x)
    return [out] if isinstance(out, torch.Tensor) else list(out)


def pte_accuracy(
    module: nn.Module,
    program: Path | bytes,
    input_shape: tuple[int, ...],
    seed: int = 0,
    heldout: int = HELDOUT_INPUTS,
) -> Accuracy:
    """The program's outputs against the fp32 torch module's on `heldout` seeded inputs that
    calibration never saw (`artifacts.quantize.heldout_seeds`)."""
    data = program if isinstance(program, bytes) else Path(program).read_bytes()
    inputs = [example_input(input_shape, s) for s in heldout_seeds(seed, heldout)]
    tally = ErrorTally()
    for x, actual in zip(inputs, _run_once(data, inputs), strict=True):
        tally.add_all(_numpy(_torch_outputs(module, x)), _numpy(actual))
    return tally.result()


def _numpy(tensors: Sequence[torch.Tensor]) -> list:
    return [t.detach().numpy() for t in tensors]


@dataclass(frozen=True)
class LoweredResult:
    path: Path
    cached: bool  # True: loaded from the cache, no lowering ran
    max_abs_diff: float | None  # fp32: against torch (checked); None for int8 or from the cache
    accuracy: Accuracy | None  # int8: against the fp32 torch module, held-out inputs; else None


def pte_key(
    identity: str,
    precision: str,
    seed: int,
    input_shape: tuple[int, ...],
    calibration_inputs: int,
) -> str:
    payload = json.dumps([
        identity, precision, seed, list(input_shape),
        calibration_inputs if precision == "int8" else 0, PTE_FORMAT, sorted(versions().items()),
    ])  # fmt: skip
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def lower_cached(
    module: nn.Module,
    input_shape: tuple[int, ...],
    name: str,
    identity: str,
    precision: str = "fp32",
    seed: int = 0,
    calibration_inputs: int = CALIBRATION_INPUTS,
    directory: Path | None = None,
) -> LoweredResult:
    """The `.pte` of `module` (built with `seed`; `identity`: what it depends on apart from the
    seed, as `ExportSource.identity`), lowered to XNNPACK on a cache miss.

    int8 results carry their accuracy against `module` also when loaded from the cache (a few
    runs of a small program). Raises `ExportError` when lowering fails or fp32 parity does not
    hold, `UsageError` for a bad precision or a missing ExecuTorch.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "int8" and calibration_inputs < 1:
        raise UsageError(f"calibration needs at least one input, got {calibration_inputs}")
    runtime()  # UsageError when ExecuTorch is missing, before anything else
    input_shape = tuple(input_shape)
    key = pte_key(identity, precision, seed, input_shape, calibration_inputs)
    folder = directory if directory is not None else cache_dir() / "pte"
    path = folder / f"{name}-{precision}-{key}.pte"
    module = module.eval()
    if vouched(path, key):
        accuracy = pte_accuracy(module, path, input_shape, seed) if precision == "int8" else None
        return LoweredResult(path, cached=True, max_abs_diff=None, accuracy=accuracy)
    interrupts.check()
    buffer = _lower(module, input_shape, name, precision, seed, calibration_inputs)
    diff = accuracy = None
    if precision == "fp32":
        example = example_input(input_shape, seed + 1)  # export's parity input
        (actual,) = _run_once(buffer, [example])
        tally = ErrorTally()
        expected = _numpy(_torch_outputs(module, example))
        tally.add_all(expected, _numpy(actual))
        diff = tally.result().max_abs_err
        limit = max(parity_limit(e) for e in expected) if expected else PARITY_ATOL
        if not diff <= limit:
            raise ExportError(
                f"ExecuTorch output differs from torch by {diff:.3g} (> {limit:.3g}) for {name}"
            )
    else:
        accuracy = pte_accuracy(module, buffer, input_shape, seed)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_target(path, suffix=".pte.tmp") as tmp:
        tmp.write_bytes(buffer)
        vouch(tmp, path, key)
    return LoweredResult(path, cached=False, max_abs_diff=diff, accuracy=accuracy)


def _lower(
    module: nn.Module,
    input_shape: tuple[int, ...],
    name: str,
    precision: str,
    seed: int,
    calibration_inputs: int,
) -> bytes:
    lib = _lowering()
    example = (example_input(input_shape, seed + 1),)
    try:
        with _quiet(), torch.inference_mode(False), torch.no_grad():
            program = torch.export.export(module, example)
            if precision == "int8":
                quantizer = lib.XNNPACKQuantizer().set_global(
                    lib.get_symmetric_quantization_config(is_per_channel=True)
                )
                prepared = lib.prepare_pt2e(program.module(), quantizer)
                for s in calibration_seeds(seed, calibration_inputs):
                    prepared(example_input(input_shape, s))
                converted = lib.convert_pt2e(prepared)
                program = torch.export.export(converted, example)
            edge = lib.to_edge_transform_and_lower(program, partitioner=[lib.XnnpackPartitioner()])
            return bytes(edge.to_executorch().buffer)
    except Exception as exc:  # export and lowering raise many types; all mean the same here
        raise ExportError(
            f"ExecuTorch lowering failed for {name} ({precision}): "
            f"{first_line(exc, with_type=True)}"
        ) from exc
