"""The environment every result carries (after pyperf's `_CHECKED_METADATA`).

Latency means nothing without the machine and the libraries that produced it; a result from
another environment must not be compared silently. `COMPARABLE_KEYS` are the fields that must
match for two measurements to be compared directly.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime

# onnxscript's version without importing it (0.7 s): only the exporter uses the package
from importlib.metadata import version as _distribution_version

from mnv2prof.measure.machine import cpu_model

COMPARABLE_KEYS = ("cpu_model", "cpu_cores", "torch", "onnxruntime", "onnx", "gpu_name", "cuda")
# Not in files written before `--device cuda` existed: a missing one reads as "" (a CPU-only
# run). The driver release is recorded but not compared: it does not choose the kernels.
OPTIONAL_KEYS = ("gpu_name", "cuda")


@dataclass(frozen=True)
class Environment:
    cpu_model: str
    cpu_cores: int
    python: str
    platform: str
    torch: str
    onnxruntime: str
    onnx: str
    onnxscript: str
    numpy: str
    timestamp: str  # UTC, ISO 8601, when the environment was read
    # --device cuda only (cuda.gpu_environment); empty on CPU-only runs
    gpu_name: str = ""
    cuda: str = ""  # the CUDA runtime torch was built with
    gpu_driver: str = ""  # NVIDIA driver release

    def columns(self) -> dict[str, object]:
        """CSV columns, prefixed `env_`."""
        return {f"env_{k}": v for k, v in dataclasses.asdict(self).items()}

    def differences(self, other: dict[str, object]) -> dict[str, tuple[object, object]]:
        """COMPARABLE_KEYS whose values differ from `other` (a dict of `columns()` form)."""
        mine = self.columns()
        theirs = {
            k: other.get(f"env_{k}", "" if k in OPTIONAL_KEYS else None) for k in COMPARABLE_KEYS
        }
        return {
            k: (theirs[k], mine[f"env_{k}"])
            for k in COMPARABLE_KEYS
            if str(theirs[k]) != str(mine[f"env_{k}"])
        }


def current_environment(device: str = "cpu") -> Environment:
    """This process's environment; `device="cuda"` adds the GPU's (cuda.gpu_environment)."""
    import numpy
    import onnxruntime
    import torch

    return Environment(
        cpu_model=cpu_model(),
        cpu_cores=os.cpu_count() or 0,
        python=platform.python_version(),
        platform=platform.platform(),
        torch=torch.__version__,
        onnxruntime=onnxruntime.__version__,
        onnx=_distribution_version("onnx"),  # its metadata: importing onnx takes 0.6 s
        onnxscript=_distribution_version("onnxscript"),
        numpy=numpy.__version__,
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        **_gpu_fields(device),
    )


def _gpu_fields(device: str) -> dict[str, str]:
    if device != "cuda":
        return {}
    from mnv2prof.measure.cuda import gpu_environment

    return dataclasses.asdict(gpu_environment())
