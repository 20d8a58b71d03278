"""This machine's calibration on disk: the ceilings `calibrate` measured
(measure.roofline.MachineCeilings), one JSON file per CPU model and thread count under the cache
root (files.cache.cache_dir).

Two readers, one check (`read_machine`):
- `load_machine`, for a run that adds the roofline columns after measuring (compare, the Python
  API): a file that cannot be read or holds a bad value is set aside (files.cache_json) and the
  machine counts as not calibrated, never a failure that would lose the rows just measured;
- `machine_for_frame`, for `plot --roofline`, which needs the calibration: the same faults are
  one line (UsageError, exit 2) naming the file and what is wrong, the file left in place.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from mnv2prof.errors import UsageError
from mnv2prof.measure.roofline import CEILINGS_FORMAT, MachineCeilings
from mnv2prof.files.cache_json import Unreadable, read_cache_json, set_aside

POSITIVE_FIELDS = ("peak_gflops", "dram_gbs", "cache_gbs", "threads")


def calibrate_command(threads: int) -> str:
    """The command that writes the file for `threads`."""
    return f"mnv2prof calibrate --threads {threads}"


def ceilings_path(cpu: str, threads: int) -> Path:
    from mnv2prof.files.cache import cache_dir

    slug = re.sub(r"[^A-Za-z0-9]+", "-", cpu).strip("-").lower() or "unknown-cpu"
    return cache_dir() / "machine" / f"{slug}-t{threads}.json"


def save_machine(ceilings: MachineCeilings) -> Path:
    """Write `ceilings` to its file (one there that is not a regular file is set aside first)."""
    from mnv2prof.files.atomic import write_atomic

    path = ceilings_path(ceilings.cpu_model, ceilings.threads)
    try:
        read_cache_json(path)
    except Unreadable:
        set_aside(path)  # a folder, link or FIFO in its place: write_atomic would go through it
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(asdict(ceilings), indent=2) + "\n")
    return path


class BadValue(Unreadable):
    """A calibration that parses but holds a value no bound can use."""

    def __init__(self, name: str, value: object) -> None:
        super().__init__(f"{name} is {value!r}, not a positive number")
        self.name = name


def read_machine(path: Path) -> MachineCeilings | None:
    """The ceilings in `path`; None when there is no file, or one from an older measurement
    (CEILINGS_FORMAT). Raises `Unreadable` (`BadValue` for a value) for anything else."""
    data = read_cache_json(path)
    if data is None:
        return None
    if not isinstance(data, dict):
        raise Unreadable(f"a JSON {type(data).__name__}, not an object")
    try:
        ceilings = MachineCeilings(**data)
    except TypeError as exc:  # a field missing or unknown
        raise Unreadable(" ".join(str(exc).split())) from None
    for name in POSITIVE_FIELDS:
        value = getattr(ceilings, name)
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or not value > 0):
            raise BadValue(name, value)
    return ceilings if ceilings.format == CEILINGS_FORMAT else None


def load_machine(threads: int, cpu: str | None = None) -> MachineCeilings | None:
    """The stored ceilings of `cpu` (default: this one) at `threads`; None when not calibrated,
    calibrated by an older measurement, or the file is unreadable (it is then set aside). Never
    raises for the file."""
    from mnv2prof.measure.machine import cpu_model

    path = ceilings_path(cpu or cpu_model(), threads)
    try:
        return read_machine(path)
    except Unreadable:
        set_aside(path)
        return None


def machine_for_frame(frame: pd.DataFrame) -> MachineCeilings:
    """The stored ceilings for the CPU and the one thread count of a results CSV; a
    `UsageError` naming what is missing or wrong."""
    needed = ("env_cpu_model", "threads", "flops", "bytes_moved")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise UsageError(f"the results lack {', '.join(missing)}: cannot pick a machine calibration")
    cpus, threads = frame["env_cpu_model"].unique(), frame["threads"].unique()
    if len(cpus) != 1 or len(threads) != 1:
        raise UsageError(
            "a roofline needs rows from one CPU at one thread count; these have "
            f"{len(cpus)} CPU(s) and threads {', '.join(str(t) for t in sorted(threads))}"
        )
    cpu, count = str(cpus[0]), int(threads[0])
    path = ceilings_path(cpu, count)
    again = f"run {calibrate_command(count)} again"
    try:
        machine = read_machine(path)
    except BadValue as exc:
        raise UsageError(f"machine calibration {path}: {exc}; {again}") from None
    except Unreadable as exc:
        raise UsageError(f"machine calibration {path} is unreadable ({exc}); {again}") from None
    if machine is None:
        raise UsageError(f"no machine calibration for {cpus[0]} at {threads[0]} thread(s): "
                         f"run {calibrate_command(count)}")
    return machine
