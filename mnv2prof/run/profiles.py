"""Profiles: named, versioned measurement plans (a grid of block specs and timing settings) in TOML.

A profile is `profiles/NAME.toml`. Keys use the project's one vocabulary (variants.py), the same
names as the CSV columns, so a profile, a result file and `report --group-by` speak alike::

    name = "expansion-sweep"                 # required; equals the file name without .toml
    description = "mbv2, fused and resnet as t goes 1..10"   # required, one line
    variants = ["mbv2", "fused", "resnet"]   # optional; default: every built-in variant
                                             # (none when `models` is given); also
                                             # "PATH.py:NAME", "package.module:NAME"
    models = ["nets.py:tiny_net", {model = "m.onnx", shape = "1x3x160x160"}]  # optional

    [base]          # optional: spec values every point starts from (default: BlockSpec's)
    in_chs = 32
    resolution = 56

    [grid]          # optional: a cartesian product; each key a non-empty list
    exp_ratio = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]

    [[points]]      # optional: explicit points (tables of single values), for grids that are
    in_chs = 16     # not a product, e.g. MobileNetV2's stages; every [grid] combination is
    out_chs = 24    # applied to every point
    resolution = 112
    stride = 2

    [measure]       # optional: timing settings (latency.TimingSpec) and the export seed
    budget_s = 1.0  # seconds of timing per grid point and runtime (all its variants together)
    warmup = 5
    min_samples = 10  # rounds
    max_samples = 2000
    cache = "warm"  # or "cold" (latency.CACHE_MODES)
    eager = true    # also time each torch module eagerly, in a phase of its own
    batch_rows = 48 # rows of consecutive grid points timed in one rotation (sweep.batches)
    seed = 0

Point keys (in `[base]`, `[grid]`, `[[points]]`): `in_chs` (sets out_chs too unless given),
`out_chs`, `resolution`, `exp_ratio`, `kernel_size`, `stride`, `batch` (BlockSpec fields),
`threads` (onnxruntime intra-op threads: a timing setting, but a grid axis like the others), and
`precision` ("fp32", "int8") and `runtime` ("onnxruntime", "executorch"): what the point's rows
run in (run.deploy), e.g. `[grid] precision = ["fp32", "int8"]`.
Precedence: `[base]` < `[[points]]` / `[grid]`; a key may not be in both `[[points]]` and `[grid]`.
One *grid point* is one set of values; its variants are timed together, their bursts rotating
round by round (latency.py).
One *row* is one variant at one grid point.

The user's own blocks and models (models/plugins.py): a variant may be `PATH.py:NAME` or
`package.module:NAME`, and `models` lists whole models (`PATH.py:NAME`, `package.module:NAME` or
an `.onnx` file, with a `shape`, default 1x3x224x224); a relative path is relative to the
profile's folder. A model's rows do not depend on the block keys (`in_chs`, ...): its models are
one more grid point per (threads, precision, runtime) of the grid, after the block points.

Size: a grid's points are counted without making them (`Profile.point_count`, the product of the
axes' lengths times the explicit points), and a profile of more than `MAX_POINTS` (10,000) grid
points is refused (`GridTooLarge`, exit code 2) before any point is made, unless the caller
allows more (`sweep --max-points N`): a 100 x 100 x 100 grid would take minutes to plan, and
hours to measure at any budget. Making the points checks for a signal (interrupts.check) at each
one, so a large plan stays interruptible.

Every error (TOML syntax, unknown key, wrong type, bad value) is a `ProfileError` naming the file,
the line and the key: `profiles/x.toml:7: [grid] exp_ratio: expansion must be a positive ...`.

Where profiles are found: `$MNV2PROF_PROFILES` if set, else `profiles/` at the top of the source
checkout (beside the `mnv2prof` package: a checkout or an editable install), else
`<prefix>/share/mnv2prof/profiles` (where a wheel install puts them, see pyproject.toml).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import re
import sys
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mnv2prof import interrupts
from mnv2prof.errors import SpecError, UsageError
from mnv2prof.measure.timing import CACHE_MODES, TimingSpec
from mnv2prof.models.targets import Target, row_hash
from mnv2prof.models.user_models import ModelSpec
from mnv2prof.models.variants import VARIANTS, VariantRef

SPEC_KEYS = ("in_chs", "out_chs", "resolution", "exp_ratio", "kernel_size", "stride", "batch")
POINT_KEYS = (*SPEC_KEYS, "threads", "precision", "runtime")
MEASURE_KEYS = (
    "budget_s", "warmup", "min_samples", "max_samples", "cache", "eager", "batch_rows", "seed"
)
TARGET_KEYS = ("threads", "precision", "runtime")  # the point keys a model point depends on
MAX_POINTS = 10_000  # grid points a profile may have unless allowed more (sweep --max-points)
TOP_KEYS = ("name", "description", "variants", "models", "base", "grid", "points", "measure")
# CLI flag names a user may type by habit; the error says which profile key they mean.
_FLAG_NAMES = {
    "channels": "in_chs",
    "expansion": "exp_ratio",
    "kernel": "kernel_size",
    "budget": "budget_s",
    "variant": "variants",
}


class ProfileError(UsageError):
    """A profile that cannot be read: its message starts with `file:line:` and names the key."""


class GridTooLarge(ProfileError):
    """A profile with more grid points than allowed; `profile` is it, counted but not made."""

    def __init__(self, message: str, profile: Profile) -> None:
        super().__init__(message)
        self.profile = profile


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

    def block_specs(self) -> list[object]:
        """The block specs among `subjects()` (the size check's blocks)."""
        return [s for s in self.subjects() if not isinstance(s, ModelSpec)]

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


def profiles_dir() -> Path:
    """The folder of the shipped profiles (see the module docstring for the search order)."""
    override = os.environ.get("MNV2PROF_PROFILES")
    if override:
        return Path(override)
    checkout = Path(__file__).resolve().parents[2] / "profiles"  # mnv2prof/run/profiles.py
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "mnv2prof" / "profiles"


def available_profiles() -> list[Path]:
    folder = profiles_dir()
    return sorted(folder.glob("*.toml")) if folder.is_dir() else []


def resolve_profile(name_or_path: str | Path) -> Path:
    """A path to an existing file, or the name of a shipped profile."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        from mnv2prof.run.readers import input_file

        try:
            return input_file(path, "profile file")
        except UsageError as exc:
            raise ProfileError(str(exc)) from None
    for candidate in available_profiles():
        if candidate.stem == str(name_or_path):
            return candidate
    names = ", ".join(p.stem for p in available_profiles()) or "none"
    raise ProfileError(
        f"no profile named {str(name_or_path)!r} in {profiles_dir()} (available: {names})"
    )


def with_cache(profile: Profile, cache: str | None) -> Profile:
    """`profile` with its timing's cache mode replaced by `cache` (None: as it is)."""
    if cache is None:
        return profile
    if cache not in CACHE_MODES:
        raise UsageError(f"--cache must be one of {', '.join(CACHE_MODES)}, got {cache!r}")
    return dataclasses.replace(profile, timing=dataclasses.replace(profile.timing, cache=cache))


def load_profile(name_or_path: str | Path, max_points: int | None = MAX_POINTS) -> Profile:
    """Read and validate a profile (a shipped name or a path); every point's specs are checked.

    A profile of more than `max_points` grid points (None: no limit) is refused before any point
    is made (`GridTooLarge`, which carries the profile, counted but not checked point by
    point)."""
    from mnv2prof.run.readers import read_text

    path = resolve_profile(name_or_path)
    try:
        text = read_text(path, "profile file")
    except UsageError as exc:
        raise ProfileError(str(exc)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_from_message(str(exc), text)
        raise ProfileError(f"{path}:{line}: TOML syntax: {_first_clause(str(exc))}") from None
    return _Reader(path, text).profile(data, max_points)


def _line_from_message(message: str, text: str) -> int:
    """tomllib before 3.14 gives the position only in the message: "(at line 3, column 7)"."""
    match = re.search(r"line (\d+)", message)
    if match:
        return int(match.group(1))
    return max(1, len(text.splitlines())) if "end of document" in message else 1


def _first_clause(message: str) -> str:
    return re.sub(r"\s*\(at line \d+, column \d+\)", "", message).strip()


class _Reader:
    """Validates the parsed TOML, pointing each error at the line of its key in the file text."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def fail(self, where: tuple[str | None, int | None], key: str | None, message: str):
        section, index = where
        line = self._line_of(section, index, key)
        label = "" if section is None else (f"[[{section}]] #{index + 1} " if index is not None
                                            else f"[{section}] ")
        named = f"{label}{key}: " if key else label
        raise ProfileError(f"{self.path}:{line}: {named}{message}")

    def _line_of(self, section: str | None, index: int | None, key: str | None) -> int:
        """1-based line of `key` in `section` (the index-th [[section]]); else the section's."""
        current, seen, header_line = None, -1, 1
        key_re = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=") if key else None
        for number, line in enumerate(self.lines, 1):
            header = re.match(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"']+)\s*\]\]?", line)
            if header:
                current = header.group(2).strip("\"'")
                if current == section:
                    seen += 1 if header.group(1) == "[[" else 0
                    if index is None or seen == index:
                        header_line = number
                continue
            in_place = current == section and (index is None or seen == index)
            if in_place and key_re and key_re.match(line):
                return number
        return header_line

    def _int(self, where, key: str, value: object, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, key, f"expected an integer, got {value!r}")
        if value < minimum:
            self.fail(where, key, f"must be >= {minimum}, got {value}")
        return value

    def _point_value(self, where, key: str, value: object) -> int | str:
        if key == "threads":
            return self._int(where, key, value, 1)
        if key in ("precision", "runtime"):
            from mnv2prof.models.targets import PRECISIONS, RUNTIMES

            allowed = PRECISIONS if key == "precision" else RUNTIMES
            if value not in allowed:
                self.fail(where, key, f"expected one of {', '.join(allowed)}, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, key, f"expected an integer, got {value!r}")
        from mnv2prof.models.variants import BlockSpec

        try:  # one set of rules: BlockSpec's own validation, field by field
            BlockSpec("mbv2", **{key: value})
        except SpecError as exc:
            self.fail(where, key, str(exc))
        return value

    def _unknown(self, where, key: str, allowed: Sequence[str]) -> None:
        hint = f" (did you mean {_FLAG_NAMES[key]!r}?)" if key in _FLAG_NAMES else ""
        self.fail(where, key, f"unknown key{hint}; expected one of: {', '.join(allowed)}")

    def _table(self, data: dict, name: str) -> dict:
        value = data.get(name, {})
        if not isinstance(value, dict):
            self.fail((None, None), name, f"expected a table [{name}], got {value!r}")
        return value

    def _point_table(self, where, table: dict) -> tuple[tuple[str, int], ...]:
        items = []
        for key, value in table.items():
            if key not in POINT_KEYS:
                self._unknown(where, key, POINT_KEYS)
            items.append((key, self._point_value(where, key, value)))
        return tuple(items)

    def profile(self, data: dict, max_points: int | None = MAX_POINTS) -> Profile:
        top = (None, None)
        for key in data:
            if key not in TOP_KEYS:
                self._unknown(top, key, TOP_KEYS)
        name, description = (self._text(data, k) for k in ("name", "description"))
        if name != self.path.stem:
            self.fail(top, "name", f"{name!r} must equal the file name {self.path.stem!r}")
        models = self._models(data.get("models", []))
        variants = self._variants(data.get("variants", [] if models else list(VARIANTS)),
                                  allow_empty=bool(models))
        base = self._point_table(("base", None), self._table(data, "base"))
        grid = self._grid(self._table(data, "grid"))
        points = self._points(data.get("points", []), grid)
        timing, seed, eager, batch_rows = self._measure(self._table(data, "measure"))
        profile = Profile(
            name, description, self.path, variants, base, grid, points, timing, seed, eager,
            batch_rows, models,
        )
        count = profile.point_count
        if max_points is not None and count > max_points:
            line = self._line_of("grid", None, None)
            raise GridTooLarge(
                f"{self.path}:{line}: [grid] makes {count:,} grid points ({profile.rows:,} rows), "
                f"more than the limit of {max_points:,}: pass --max-points {count} to sweep "
                "it anyway", profile)
        try:
            for _ in profile.points():
                pass
        except SpecError as exc:  # a combination no single key is wrong in, e.g. odd shufflev2
            self.fail(top, "variants", f"a grid point cannot be built: {exc}")
        return profile

    def _text(self, data: dict, key: str) -> str:
        value = data.get(key)
        if value is None:
            self.fail((None, None), key, "missing (a one-line string is required)")
        if not isinstance(value, str) or not value.strip() or "\n" in value:
            self.fail((None, None), key, f"expected a non-empty one-line string, got {value!r}")
        return value.strip()

    def _variants(self, value: object, allow_empty: bool = False) -> tuple[VariantRef, ...]:
        from mnv2prof.models.variants import parse_variant_list

        where = (None, None)
        if (not isinstance(value, list) or not (value or allow_empty)
                or not all(isinstance(v, str) for v in value)):
            self.fail(where, "variants", f"expected a non-empty list of names, got {value!r}")
        if not value:
            return ()
        if len(set(value)) != len(value):
            self.fail(where, "variants", "a variant is listed twice")
        try:  # a user's block is found relative to the profile's folder
            return parse_variant_list(value, base_dir=self.path.parent)
        except UsageError as exc:
            self.fail(where, "variants", str(exc))

    def _models(self, value: object) -> tuple[ModelSpec, ...]:
        """`models = ["x.py:NAME", {model = "m.onnx", shape = "1x3x160x160"}]`."""
        from mnv2prof.models.user_models import model_spec

        where = (None, None)
        if not isinstance(value, list):
            self.fail(where, "models", f"expected a list of models, got {value!r}")
        specs = []
        for item in value:
            entry = {"model": item} if isinstance(item, str) else item
            if (not isinstance(entry, dict) or set(entry) - {"model", "shape"}
                    or not isinstance(entry.get("model"), str)
                    or not isinstance(entry.get("shape", ""), str)):
                self.fail(where, "models", "each model is a string or a table {model = "
                          f"\"PATH.py:NAME\", shape = \"1x3x224x224\"}}, got {item!r}")
            try:
                spec = model_spec(entry["model"], entry.get("shape"), self.path.parent)
                if spec.onnx_file:
                    from mnv2prof.run.model_file import resolved

                    spec = resolved(spec)[0]
            except UsageError as exc:
                self.fail(where, "models", str(exc))
            specs.append(spec)
        names = [s.variant for s in specs]
        if len(set(names)) != len(names):
            self.fail(where, "models", "two models have the same name")
        return tuple(specs)

    def _grid(self, table: dict) -> tuple[tuple[str, tuple[int, ...]], ...]:
        where = ("grid", None)
        axes = []
        for key, values in table.items():
            if key not in POINT_KEYS:
                self._unknown(where, key, POINT_KEYS)
            if not isinstance(values, list) or not values:
                self.fail(where, key, f"expected a non-empty list, got {values!r}")
            checked = tuple(self._point_value(where, key, v) for v in values)
            if len(set(checked)) != len(checked):
                self.fail(where, key, "a value is listed twice")
            axes.append((key, checked))
        return tuple(axes)

    def _points(self, value: object, grid) -> tuple[tuple[tuple[str, int], ...], ...]:
        if not isinstance(value, list) or not all(isinstance(p, dict) for p in value):
            self.fail((None, None), "points", "expected an array of tables [[points]]")
        grid_keys = {k for k, _ in grid}
        points = []
        for i, table in enumerate(value):
            where = ("points", i)
            point = self._point_table(where, table)
            for key, _ in point:
                if key in grid_keys:
                    self.fail(where, key, "also a [grid] axis; set it in one place only")
            if point in points:
                self.fail(where, None, "repeats an earlier point")
            points.append(point)
        return tuple(points)

    def _measure(self, table: dict) -> tuple[TimingSpec, int, bool, int]:
        where = ("measure", None)
        for key in table:
            if key not in MEASURE_KEYS:
                self._unknown(where, key, MEASURE_KEYS)
        defaults = TimingSpec()
        budget = table.get("budget_s", defaults.budget_s)
        if (isinstance(budget, bool) or not isinstance(budget, int | float) or not budget > 0
                or not math.isfinite(budget)):
            self.fail(where, "budget_s", f"expected a positive number of seconds, got {budget!r}")
        warmup = self._int(where, "warmup", table.get("warmup", defaults.warmup), 0)
        low = self._int(where, "min_samples", table.get("min_samples", defaults.min_samples), 1)
        high = self._int(where, "max_samples", table.get("max_samples", defaults.max_samples), low)
        seed = self._int(where, "seed", table.get("seed", 0), 0)
        cache = table.get("cache", defaults.cache)
        if cache not in CACHE_MODES:
            self.fail(where, "cache", f"expected one of {', '.join(CACHE_MODES)}, got {cache!r}")
        eager = table.get("eager", True)
        if not isinstance(eager, bool):
            self.fail(where, "eager", f"expected true or false, got {eager!r}")
        batch_rows = self._int(where, "batch_rows", table.get("batch_rows", 48), 1)
        timing = TimingSpec(
            budget_s=float(budget), warmup=warmup, min_samples=low, max_samples=high, cache=cache
        )
        return timing, seed, eager, batch_rows


def iter_profiles() -> Iterator[Profile | ProfileError]:
    """Every shipped profile, loaded; a malformed one comes back as its error, one past the
    point limit as itself, counted but its points not made (GridTooLarge.profile)."""
    for path in available_profiles():
        try:
            yield load_profile(path)
        except GridTooLarge as exc:
            yield exc.profile
        except ProfileError as exc:
            yield exc
