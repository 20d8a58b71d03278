"""The block on a GPU: eager latency from CUDA events, the same module replayed as a CUDA graph,
onnxruntime's CUDA execution provider, and the peak memory torch's allocator hands out.

Why a GPU view at all (ShuffleNet V2's point, the paper's note): on a GPU the FLOP count says even
less about latency than on a CPU, because a small block is bound by kernel launches and memory
traffic, not by arithmetic.

Timing (each runner measures itself and returns milliseconds, which `latency.measure` takes as
its time instead of its host clock; each GPU runtime is timed in a phase of its own):
- `CudaEventRunner` (eager): the device is synchronised first (no other runner's work is still
  queued), then a CUDA event is recorded, the module is launched from Python, a second event is
  recorded and waited for. The sample is the GPU time between the events, so it includes the
  gaps in which the GPU waited for the host to launch the next kernel: eager's launch overhead.
- `CudaGraphRunner`: the module is warmed up on a side stream (as torch.cuda.graphs asks, so the
  capture sees no lazy initialisation), captured once into a `torch.cuda.CUDAGraph`, and each
  sample replays the whole graph between the two events: the same kernels with the per-kernel
  launch overhead removed.
- `ort_cuda_runner`: `latency.OrtRunner` on the CUDAExecutionProvider with inputs and outputs
  bound on the device. onnxruntime synchronises its stream at the end of a run, so the host clock
  around the call is the latency (the runner returns None and the harness's clock is used).
cuDNN's autotuner (`torch.backends.cudnn.benchmark`) is left as the caller set it (off by
default), so eager and graph run the same kernels.

Memory (`measure_peak_memory`): after a warm-up forward, the allocator's peak statistics are
reset and the live bytes noted; one forward runs; the peak minus those bytes is what the forward
itself allocated through torch's caching allocator (intermediates, the output, workspaces that
cuDNN or cuBLAS take from the allocator), rounded up to the allocator's 512-byte blocks. The
input's bytes are added back so the figure stands beside the static liveness peak
(`peak_act_bytes`), which counts the input too; the weights are not included, nor is memory
outside the caching allocator (the CUDA context, cuDNN's and cuBLAS's own handles).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import torch
from torch import nn

from mnv2prof.errors import UsageError
from mnv2prof.models.inputs import example_input
from mnv2prof.measure.latency import Measurement
from mnv2prof.measure.timing import TimingSpec

DEVICES = ("cpu", "cuda")
ORT_CUDA_PROVIDER = "CUDAExecutionProvider"


def _torch_version() -> str:
    """torch's major.minor, e.g. 2.13."""
    return ".".join(torch.__version__.split("+")[0].split(".")[:2])


def unavailable_reason() -> str | None:
    """Why `--device cuda` cannot run here, in one line; None when a GPU is usable."""
    if torch.cuda.is_available():
        return None
    why = "built without CUDA" if torch.version.cuda is None else "no GPU visible"
    return f"--device cuda: no CUDA device available (torch {_torch_version()} {why})"


def check_device(device: str) -> None:
    """Refuse an unknown device, or cuda without a usable GPU (UsageError: exit 2)."""
    if device not in DEVICES:
        raise UsageError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cuda" and (reason := unavailable_reason()) is not None:
        raise UsageError(reason)


@dataclass(frozen=True)
class GpuEnvironment:
    gpu_name: str
    cuda: str  # the CUDA runtime torch was built with
    gpu_driver: str  # NVIDIA driver version, from nvidia-smi ("" when it cannot be read)


def gpu_environment(index: int = 0) -> GpuEnvironment:
    return GpuEnvironment(
        gpu_name=torch.cuda.get_device_name(index),
        cuda=torch.version.cuda or "",
        gpu_driver=_driver_version(index),
    )


def _driver_version(index: int) -> str:
    """torch reports the CUDA driver API level, not the driver release: ask nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return ""
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--id={index}", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.strip().splitlines()[0] if out.strip() else ""


class CudaEventRunner:
    """Calling it runs `module` once on the GPU and returns the GPU time of the launch, in ms."""

    def __init__(self, module: nn.Module, input_shape: tuple[int, ...], seed: int = 0) -> None:
        self.module = module.eval().to("cuda")
        self.input = example_input(input_shape, seed).to("cuda")
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def launch(self) -> None:
        with torch.inference_mode():
            self.module(self.input)

    def __call__(self) -> float:
        torch.cuda.synchronize()  # nothing queued before (another runner's work) is timed
        self.start.record()
        self.launch()
        self.end.record()
        self.end.synchronize()
        return self.start.elapsed_time(self.end)


class CudaGraphRunner(CudaEventRunner):
    """`CudaEventRunner` whose launch replays the module captured once as a CUDA graph."""

    def __init__(
        self, module: nn.Module, input_shape: tuple[int, ...], seed: int = 0, warmup: int = 3
    ) -> None:
        super().__init__(module, input_shape, seed)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(warmup):
                self.module(self.input)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self.output = self.module(self.input)  # the graph's static output buffer

    def launch(self) -> None:
        self.graph.replay()


class OrtCudaReason(Enum):
    """Why onnxruntime cannot time on the GPU here."""

    NOT_LISTED = "not listed"  # this onnxruntime has no CUDAExecutionProvider (not -gpu)
    NOT_LOADED = "not loaded"  # listed, but it would not load (its CUDA or cuDNN libraries)


@dataclass(frozen=True)
class OrtCudaGap:
    """The onnxruntime GPU column is left out: why, and which onnxruntime said so
    (report.cuda_report.ort_gap_note words it)."""

    reason: OrtCudaReason
    onnxruntime: str  # its version


def ort_cuda_gap() -> OrtCudaGap | None:
    """Why onnxruntime cannot time on the GPU here; None if it can."""
    import onnxruntime

    from mnv2prof.artifacts.identity import identity_model
    from mnv2prof.measure.latency import OrtRunner, ProviderError

    if ORT_CUDA_PROVIDER not in onnxruntime.get_available_providers():
        return OrtCudaGap(OrtCudaReason.NOT_LISTED, onnxruntime.__version__)
    try:  # listed is not loadable: the provider needs CUDA and cuDNN libraries of its own
        OrtRunner(identity_model(), device="cuda")
    except ProviderError:
        return OrtCudaGap(OrtCudaReason.NOT_LOADED, onnxruntime.__version__)
    return None


def block_runners(
    build: Callable[[], nn.Module],
    input_shape: tuple[int, ...],
    model_path: Path | None,
    seed: int = 0,
) -> dict[str, Callable[[], float | None]]:
    """One block's GPU runners by column prefix: eager, CUDA graph and (given `model_path`, after
    `ort_cuda_gap()` said None) onnxruntime's CUDA provider. `build` makes a fresh module
    per runner, so a graph's captured weights are never another runner's."""
    from mnv2prof.measure.latency import OrtRunner

    runners: dict[str, Callable[[], float | None]] = {
        "cuda_eager": CudaEventRunner(build(), input_shape, seed),
        "cuda_graph": CudaGraphRunner(build(), input_shape, seed),
    }
    if model_path is not None:
        runners["cuda_ort"] = OrtRunner(model_path, seed=seed, device="cuda")
    return runners


def measure_peak_memory(module: nn.Module, input_shape: tuple[int, ...], seed: int = 0) -> int:
    """Bytes one forward pass allocates on the GPU above what was held before it, plus the input
    (see the module docstring for what is and is not included)."""
    module = module.eval().to("cuda")
    x = example_input(input_shape, seed).to("cuda")
    with torch.inference_mode():
        module(x)  # warm-up: cuDNN/cuBLAS handles and workspaces are not the block's memory
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        module(x)
        torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before + x.nbytes


@dataclass(frozen=True)
class ModuleOnGpu:
    eager: Measurement
    graph: Measurement
    peak_bytes: int  # measure_peak_memory, on eager.inference_graph of the module
    env: GpuEnvironment


def measure_module(
    build: Callable[[], nn.Module], input_shape: tuple[int, ...], timing: TimingSpec, seed: int = 0
) -> ModuleOnGpu:
    """One whole module (a network) on the GPU: eager and CUDA graph, each in its own phase, and
    its peak."""
    from mnv2prof.measure.eager import inference_graph
    from mnv2prof.measure.latency import measure_phases

    runners = block_runners(build, input_shape, None, seed)
    measured = measure_phases([{kind: run} for kind, run in runners.items()], timing)
    peak = measure_peak_memory(inference_graph(build()), input_shape, seed)
    return ModuleOnGpu(measured["cuda_eager"], measured["cuda_graph"], peak, gpu_environment())
