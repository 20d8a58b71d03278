"""What a profile asks for (`Profile`) and the points of its grid (`GridPoint`), counted without
making them. How a profile's TOML becomes a `Profile` is profiles/shipped.py's concern.

One *grid point* is one set of values; its variants are timed together, their bursts rotating
round by round (latency.py). One *row* is one variant at one grid point. A profile's models are
one more grid point per (threads, precision, runtime) of the grid, after the block points.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

from mnv2prof import interrupts
from mnv2prof.measure.timing import TimingSpec
from mnv2prof.models.targets import Target, row_hash
from mnv2prof.models.user_models import ModelSpec
from mnv2prof.models.variants import VariantRef

SPEC_KEYS = ("in_chs", "out_chs", "resolution", "exp_ratio", "kernel_size", "stride", "batch")
TARGET_KEYS = ("threads", "precision", "runtime")  # the point keys a model point depends on


@dataclass(frozen=True)
class GridPoint:
    """One point of the grid: the subjects at it (every variant's spec, or the models), timed
    together with `threads` on `target`."""

    values: tuple[tuple[str, int | str], ...]  # the point's (key, value), threads included
    subjects: tuple[object, ...]  # models.variants.BlockSpec or models.user_models.ModelSpec
    threads: int
    target: Target = Target()  # what its rows run in

    def row_hash(self, subject) -> str:
        """The spec_hash of `subject`'s row at this point (threads, precision, runtime)."""
        return row_hash(subject, self.threads, self.target)

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values) or "defaults"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    path: Path
    variants: tuple[VariantRef, ...]
    base: tuple[tuple[str, int], ...]
    grid: tuple[tuple[str, tuple[int, ...]], ...]
    points_table: tuple[tuple[tuple[str, int], ...], ...]
    timing: TimingSpec = field(default_factory=TimingSpec)  # threads: the default, see points()
    seed: int = 0
    eager: bool = True  # time each torch module eagerly too (its own phase)
    batch_rows: int = 48  # rows of consecutive grid points timed in one rotation at most
    models: tuple[ModelSpec, ...] = ()  # whole models, measured per (threads, target)

    def points(self) -> list[GridPoint]:
        """Every grid point, in file order: each explicit point times each grid combination;
        then, with `models`, one point of the models per (threads, target) of those."""
        keys = [k for k, _ in self.grid]
        result, settings = [], {}
        for point in self.points_table or ((),):
            for combo in itertools.product(*(values for _, values in self.grid)):
                interrupts.check()  # a large plan takes seconds: a signal stops it here
                values = {**dict(self.base), **dict(point), **dict(zip(keys, combo))}
                threads = values.pop("threads", self.timing.threads)
                target = Target(values.pop("precision", "fp32"),
                                values.pop("runtime", "onnxruntime"))
                settings.setdefault((threads, target), None)
                if not self.variants:
                    continue
                spec_values = {k: values[k] for k in SPEC_KEYS if k in values}
                specs = tuple(ref.spec(**spec_values) for ref in self.variants)
                shown = {**dict(point), **dict(zip(keys, combo))}
                result.append(GridPoint(tuple(shown.items()), specs, threads, target))
        for threads, target in settings if self.models else ():
            shown = {"models": "all", "threads": threads, "precision": target.precision,
                     "runtime": target.runtime}
            result.append(GridPoint(tuple(shown.items()), self.models, threads, target))
        return result

    def subjects(self) -> list[object]:
        """Every subject of every grid point (threads aside: see `points()`), in order."""
        return [subject for point in self.points() for subject in point.subjects]

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(ref.name for ref in self.variants) + tuple(m.variant for m in self.models)

    @property
    def block_points(self) -> int:
        """The grid points of the blocks, counted without making them."""
        if not self.variants:
            return 0
        return len(self.points_table or ((),)) * math.prod(len(v) for _, v in self.grid)

    def _targets(self) -> set[tuple[object, ...]]:
        """The distinct (threads, precision, runtime) of the grid, from those axes alone."""
        axes = [(k, v) for k, v in self.grid if k in TARGET_KEYS]
        found = set()
        for point in self.points_table or ((),):
            for combo in itertools.product(*(values for _, values in axes)):
                values = {**dict(self.base), **dict(point), **dict(zip([k for k, _ in axes],
                                                                       combo))}
                found.add(tuple(values.get(k) for k in TARGET_KEYS))
        return found

    @property
    def point_count(self) -> int:
        """Every grid point `points()` makes (the models' included), counted without making
        them: the product of the axes' lengths, times the explicit points."""
        return self.block_points + (len(self._targets()) if self.models else 0)

    @property
    def rows(self) -> int:
        """The rows `points()` makes, counted without making them."""
        models = len(self._targets()) * len(self.models) if self.models else 0
        return self.block_points * len(self.variants) + models

    def timing_for(self, point: GridPoint) -> TimingSpec:
        return dataclasses.replace(self.timing, threads=point.threads)

