"""The one seeded input that every check, export and runner feeds a module."""

from __future__ import annotations

import torch


def example_input(input_shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Standard normal of `input_shape`, from `seed` alone (torch's global RNG untouched)."""
    return torch.randn(*input_shape, generator=torch.Generator().manual_seed(seed))
