"""Checks that need no measurement, done before anything is exported or timed: what a run would
need in memory against what the machine has. (Output paths: cli.output; input files:
run.readers; option values: cli.options.)"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import typer

from mnv2prof.errors import UsageError

Force = Annotated[
    bool,
    typer.Option("--force", help="Run even when the static peak (activations and weights, fp32) "
                 "exceeds the memory available now."),
]


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
    for size in estimates:
        if size.total_bytes > available:
            raise UsageError(
                f"{size.name} needs about {_size(size.total_bytes)} (activations "
                f"{_size(size.activation_bytes)} + weights {_size(size.weight_bytes)}, fp32) and "
                f"{_size(available)} is available: shrink it, or pass {flag} to try anyway"
            )


def blocks_fit(specs, force: bool, flag: str = "--force") -> None:
    from mnv2prof.models.sizes import block_size

    if not force:
        fits_in_memory((block_size(spec) for spec in specs), force, flag)


def network_fits(spec, force: bool) -> None:
    from mnv2prof.models.sizes import network_size

    if not force:
        fits_in_memory([network_size(spec)], force)


def model_fits(count, force: bool) -> None:
    """A counted foreign model (run.model_profile.ModelCount): its static peak and its weights,
    constants such as a ConstantOfShape's output included."""
    from mnv2prof.models.sizes import SizeEstimate

    cost = count.cost
    fits_in_memory([SizeEstimate(count.path.name, cost.peak_act_bytes, cost.weight_bytes)], force)
