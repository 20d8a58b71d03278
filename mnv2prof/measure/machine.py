"""Facts about this machine that need no measurement: CPU model, cache sizes, usable cores.

Read from /proc and sysfs (Linux), with fallbacks elsewhere. The cold cache mode sizes its
flush buffer from the last-level cache; the roofline sizes its probes from L2 and the LLC;
`--threads` above the usable cores gets a warning.
"""

from __future__ import annotations

import os
import platform
import re
from functools import lru_cache
from pathlib import Path

DEFAULT_LLC_BYTES = 32 * 2**20  # when sysfs lists no cache


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


def available_memory_bytes() -> int | None:
    """Memory a new allocation can get now (MemAvailable in /proc/meminfo); None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
