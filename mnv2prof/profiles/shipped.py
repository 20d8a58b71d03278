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

    [measure]       # optional: timing settings (measure.timing.TimingSpec) and the export seed
    budget_s = 1.0  # seconds of timing per grid point and runtime (all its variants together),
                    # at most 3600
    warmup = 5
    min_samples = 10  # rounds
    max_samples = 2000
    cache = "warm"  # or "cold" (timing.CACHE_MODES)
    eager = true    # also time each torch module eagerly, in a phase of its own
    batch_rows = 48 # rows of consecutive grid points timed in one rotation (sweep.batches)
    seed = 0

Point keys (in `[base]`, `[grid]`, `[[points]]`): `in_chs` (sets out_chs too unless given),
`out_chs`, `resolution`, `exp_ratio`, `kernel_size`, `stride`, `batch` (BlockSpec fields),
`threads` (onnxruntime intra-op threads: a timing setting, but a grid axis like the others; at
most 8 a core, as everywhere), and
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

Values are checked by the project's one set of rules (profiles/reader.py): `[measure]` builds
a `TimingSpec`, which checks itself (budget_s positive, finite, at most an hour), `threads` gets
TimingSpec's cap, `precision` and `runtime` are models.targets' names, a block key BlockSpec's.

Every error (TOML syntax, unknown key, wrong type, bad value) is a `ProfileError` naming the file,
the line and the key: `profiles/x.toml:7: [grid] exp_ratio: expansion must be a positive ...`,
`profiles/x.toml:4: [measure] budget_s: must be at most 3600 seconds (an hour), got 1e+308`.

What a profile asks for, once read (`Profile`, `GridPoint`, the counting), is profiles/grid.py;
reading and validating its TOML, profiles/reader.py; finding and loading it, this module.

Where profiles are found: `$MNV2PROF_PROFILES` if set, else `profiles/` at the top of the source
checkout (beside the `mnv2prof` package: a checkout or an editable install), else
`<prefix>/share/mnv2prof/profiles` (where a wheel install puts them, see pyproject.toml).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from mnv2prof.errors import UsageError
from mnv2prof.profiles.grid import GridPoint, Profile
from mnv2prof.profiles.reader import GridTooLarge, ProfileError, parse_profile

# GridPoint and Profile live in profiles/grid.py, ProfileError in profiles/reader.py: sweeps/sweep.py,
# sweeps/shard.py and the commands import them from here
__all__ = [
    "MAX_POINTS", "GridPoint", "GridTooLarge", "Profile", "ProfileError", "available_profiles",
    "iter_profiles", "load_profile", "profiles_dir", "resolve_profile", "with_cache",
]

MAX_POINTS = 10_000  # grid points a profile may have unless allowed more (sweep --max-points)


def profiles_dir() -> Path:
    """The folder of the shipped profiles (see the module docstring for the search order)."""
    override = os.environ.get("MNV2PROF_PROFILES")
    if override:
        return Path(override)
    checkout = Path(__file__).resolve().parents[2] / "profiles"  # mnv2prof/profiles/shipped.py
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
        from mnv2prof.files.readers import input_file

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
    """`profile` with its timing's cache mode replaced by `cache` (None: as it is); a mode that
    TimingSpec refuses is its `ValueRefused` (the command line: `--cache must be one of ...`)."""
    if cache is None:
        return profile
    return dataclasses.replace(profile, timing=dataclasses.replace(profile.timing, cache=cache))


def load_profile(name_or_path: str | Path, max_points: int | None = MAX_POINTS) -> Profile:
    """Read and validate a profile (a shipped name or a path); every point's specs are checked.

    A profile of more than `max_points` grid points (None: no limit) is refused before any point
    is made (`GridTooLarge`, which carries the profile, counted but not checked point by
    point)."""
    from mnv2prof.files.readers import read_text

    path = resolve_profile(name_or_path)
    try:
        text = read_text(path, "profile file")
    except UsageError as exc:
        raise ProfileError(str(exc)) from None
    return parse_profile(path, text, max_points)


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
