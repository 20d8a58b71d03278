"""Checks that need no measurement, done before anything is exported or timed: what a run would
need in memory against what the machine has (a block's, a model's or a network's static peak,
models.sizes, against measure.machine's available memory). Every command and the Python API call
these before any work (output paths: cli.output; input files: files.readers)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mnv2prof.errors import UsageError


def _size(n: int) -> str:
    if n >= 1e15:
        return f"{n:.2e} bytes"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n / 1e3:,.1f} kB"


def fits_in_memory(estimates: Iterable, force: bool, flag: str = "--force") -> None:
    """Refuse the first `models.sizes.SizeEstimate` larger than the memory available now, naming
    both figures, unless `force`."""
    from mnv2prof.measure.machine import available_memory_bytes

    if force:
        return
    available = available_memory_bytes()
    if available is None:
        return
    from mnv2prof import interrupts

    for size in estimates:
        interrupts.check()  # a large grid's sizes take seconds
        if size.total_bytes > available:
            raise UsageError(
                f"{size.name} needs about {_size(size.total_bytes)} (activations "
                f"{_size(size.activation_bytes)} + weights {_size(size.weight_bytes)}, fp32) and "
                f"{_size(available)} is available: shrink it, or pass {flag} to try anyway"
            )


def subjects_fit(subjects, force: bool, flag: str = "--force", seed: int = 0,
                 threads: int | None = None) -> None:
    """The user's code vetted in the worker (run.user_code.vet: imported, built, run on its
    input, and with `threads` its memory measured; not built when its static peak passes the
    memory available), then every block's, model's and network's static peak against the
    memory available now: a block's from its spec, a paper network's from its table, a torch
    model's on the meta device, an ONNX file's from its graph."""
    from mnv2prof.measure.machine import available_memory_bytes
    from mnv2prof.run import user_code

    vetted = user_code.vet(subjects, seed, None if force else available_memory_bytes(), threads)
    if force:
        return
    fits_in_memory((vetted[s].size if s in vetted else _size_of(s)
                    for s in dict.fromkeys(subjects)), force, flag)


def _size_of(subject):
    from mnv2prof.models import sizes
    from mnv2prof.models.networks import NetworkSpec
    from mnv2prof.models.plugins import guarded
    from mnv2prof.models.variants import BlockSpec

    if isinstance(subject, BlockSpec):
        if subject.builtin:
            return sizes.block_size(subject)
        with guarded(subject.source):  # a Python API callable: it runs here
            return sizes.block_size(subject)
    if isinstance(subject, NetworkSpec):
        return sizes.network_size(subject)
    if not subject.onnx_file:
        with guarded(subject.source):
            return sizes.model_size(subject)
    from mnv2prof.run.model_file import count_file

    cost = count_file(subject).cost
    return sizes.SizeEstimate(Path(subject.source).name, cost.peak_act_bytes, cost.weight_bytes)
