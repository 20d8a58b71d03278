"""The environment every result carries (after pyperf's `_CHECKED_METADATA`).

Latency means nothing without the machine and the libraries that produced it; a result from
another environment must not be compared silently. `COMPARABLE_KEYS` are the fields that must
match for two measurements to be compared directly.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

# onnxscript's version without importing it (0.7 s): only the exporter uses the package
from importlib.metadata import version as _distribution_version
from pathlib import Path

COMPARABLE_KEYS = ("cpu_model", "cpu_cores", "torch", "onnxruntime", "onnx", "gpu_name", "cuda")
# Not in files written before `--device cuda` existed: a missing one reads as "" (a CPU-only
# run). The driver release is recorded but not compared: it does not choose the kernels.
OPTIONAL_KEYS = ("gpu_name", "cuda")
DEFAULT_LLC_BYTES = 32 * 2**20  # when sysfs lists no cache


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


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cache_bytes(level: int) -> int:
    """Bytes of cpu0's data or unified cache at `level`, from sysfs; 0 when it does not say."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(base.glob("index*")):
        try:
            if int((index / "level").read_text()) != level:
                continue
            if (index / "type").read_text().strip() == "Instruction":
                continue
            size = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        match = re.fullmatch(r"(\d+)([KMG]?)", size)
        if match:
            return int(match[1]) * {"K": 2**10, "M": 2**20, "G": 2**30}.get(match[2], 1)
    return 0


def last_level_cache_bytes() -> int:
    """The largest cache level sysfs lists (L3, else L2); `DEFAULT_LLC_BYTES` when it lists none."""
    return cache_bytes(3) or cache_bytes(2) or DEFAULT_LLC_BYTES


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask; a container or taskset may narrow it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def oversubscription_warning(threads: int) -> str | None:
    """A line to print when `threads` exceeds the usable cores, else None: the extra threads
    then wait for a core on every parallel step (mbv2 at 16 threads on 2 cores took 14 ms
    instead of 0.5 ms)."""
    cores = usable_cores()
    if threads <= cores:
        return None
    return (
        f"warning: --threads {threads} exceeds the {cores} core(s) this process may use: the "
        "threads will wait for each other and the latency will measure the oversubscription"
    )


def current_environment(device: str = "cpu") -> Environment:
    """This process's environment; `device="cuda"` adds the GPU's (cuda.gpu_environment)."""
    import numpy
    import onnx
    import onnxruntime
    import torch

    return Environment(
        cpu_model=cpu_model(),
        cpu_cores=os.cpu_count() or 0,
        python=platform.python_version(),
        platform=platform.platform(),
        torch=torch.__version__,
        onnxruntime=onnxruntime.__version__,
        onnx=onnx.__version__,
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
