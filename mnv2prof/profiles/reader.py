"""A profile's TOML, parsed by tomllib and validated (`parse_profile`), every error a
`ProfileError` at its key's line: `profiles/x.toml:4: [measure] budget_s: must be at most 3600
seconds (an hour), got 1e+308`. The keys and what they mean: profiles/shipped.py's docstring.

Values are checked by the project's one set of rules, never by copies here: `[measure]` builds a
`TimingSpec`, which checks itself; `threads` is checked by TimingSpec too (its cap, 8 a core);
`precision` and `runtime` are models.targets' names; a block key is checked by `BlockSpec`. What
a rule refuses (`errors.ValueRefused`) is worded by the rule, and placed at the key's line here.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from mnv2prof.errors import SpecError, UsageError, ValueRefused
from mnv2prof.files.nesting import TooDeep, load_toml
from mnv2prof.measure.timing import TimingSpec, check_count
from mnv2prof.models.targets import PRECISIONS, RUNTIMES, check_name
from mnv2prof.models.user_models import ModelSpec
from mnv2prof.models.variants import VARIANTS, VariantRef
from mnv2prof.profiles.grid import SPEC_KEYS, Profile

POINT_KEYS = (*SPEC_KEYS, "threads", "precision", "runtime")
TIMING_KEYS = ("budget_s", "warmup", "min_samples", "max_samples", "cache")  # TimingSpec's
MEASURE_KEYS = (*TIMING_KEYS, "eager", "batch_rows", "seed")
TOP_KEYS = ("name", "description", "variants", "models", "base", "grid", "points", "measure")
_NAMES = {"precision": PRECISIONS, "runtime": RUNTIMES}  # models.targets' one table
_KEY_OF_WORD = {"budget": "budget_s"}  # a rule's word for a [measure] key, where they differ
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


def parse_profile(path: Path, text: str, max_points: int | None) -> Profile:
    """The profile `text` (read from `path`) describes, validated; every point's specs are
    checked. More than `max_points` grid points (None: no limit) is `GridTooLarge`, raised
    before any point is made."""
    try:
        data = load_toml(text)
    except TooDeep as exc:
        raise ProfileError(f"{path}:1: TOML syntax: {exc}") from None
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


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"']+)\s*\]\]?")


def key_line(lines: Sequence[str], section: str | None, index: int | None,
             key: str | None) -> int:
    """The 1-based line of `key` in `section` (the index-th [[section]]), else the section's.

    tomllib gives a parsed value no position, and no TOML reader in the standard library does,
    so the line an error points at is found here by scanning headers and `key =` lines: enough
    for a profile's flat tables (a key inside an inline table points at its table's line)."""
    current, seen, header_line = None, -1, 1
    key_re = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=") if key else None
    for number, line in enumerate(lines, 1):
        header = _HEADER.match(line)
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


Where = tuple[str | None, int | None]  # (section, index of a [[section]]); (None, None): the top


class _Reader:
    """Validates the parsed TOML, pointing each error at the line of its key in the file text."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def fail(self, where: Where, key: str | None, message: str) -> NoReturn:
        section, index = where
        line = key_line(self.lines, section, index, key)
        label = "" if section is None else (f"[[{section}]] #{index + 1} " if index is not None
                                            else f"[{section}] ")
        named = f"{label}{key}: " if key else label
        raise ProfileError(f"{self.path}:{line}: {named}{message}")

    def refused(self, where: Where, exc: ValueRefused, key: str | None = None) -> NoReturn:
        """What one of the project's rules refused, at its key's line, in the rule's words."""
        self.fail(where, key or _KEY_OF_WORD.get(exc.word, exc.word), exc.problem)

    def profile(self, data: dict, max_points: int | None) -> Profile:
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
        self._check_size(profile, max_points)
        try:
            for _ in profile.points():
                pass
        except SpecError as exc:  # a combination no single key is wrong in, e.g. odd shufflev2
            self.fail(top, "variants", f"a grid point cannot be built: {exc}")
        return profile

    def _check_size(self, profile: Profile, max_points: int | None) -> None:
        count = profile.point_count
        if max_points is not None and count > max_points:
            line = key_line(self.lines, "grid", None, None)
            raise GridTooLarge(
                f"{self.path}:{line}: [grid] makes {count:,} grid points ({profile.rows:,} rows), "
                f"more than the limit of {max_points:,}: pass --max-points {count} to sweep "
                "it anyway", profile)

    def _point_value(self, where: Where, key: str, value: object) -> int | str:
        try:
            if key == "threads":  # TimingSpec's rule: 1 to measure.timing.max_threads()
                return TimingSpec(threads=value).threads
            if key in _NAMES:
                return check_name(value, _NAMES[key], key)
        except ValueRefused as exc:
            self.refused(where, exc, key)
        # TOML has floats and booleans; BlockSpec takes stride = true or 2.0 for 1 or 2
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, key, f"must be an integer, got {value!r}")
        from mnv2prof.models.variants import BlockSpec

        try:  # one set of rules: BlockSpec's own validation, field by field
            BlockSpec("mbv2", **{key: value})
        except SpecError as exc:
            self.fail(where, key, str(exc))
        return value

    def _unknown(self, where: Where, key: str, allowed: Sequence[str]) -> NoReturn:
        hint = f" (did you mean {_FLAG_NAMES[key]!r}?)" if key in _FLAG_NAMES else ""
        self.fail(where, key, f"unknown key{hint}; expected one of: {', '.join(allowed)}")

    def _table(self, data: dict, name: str) -> dict:
        value = data.get(name, {})
        if not isinstance(value, dict):
            self.fail((None, None), name, f"expected a table [{name}], got {value!r}")
        return value

    def _point_table(self, where: Where, table: dict) -> tuple[tuple[str, int | str], ...]:
        items = []
        for key, value in table.items():
            if key not in POINT_KEYS:
                self._unknown(where, key, POINT_KEYS)
            items.append((key, self._point_value(where, key, value)))
        return tuple(items)

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
        where = (None, None)
        if not isinstance(value, list):
            self.fail(where, "models", f"expected a list of models, got {value!r}")
        specs = [self._model(item) for item in value]
        names = [s.variant for s in specs]
        if len(set(names)) != len(names):
            self.fail(where, "models", "two models have the same name")
        return tuple(specs)

    def _model(self, item: object) -> ModelSpec:
        from mnv2prof.models.user_models import model_spec

        entry = {"model": item} if isinstance(item, str) else item
        if (not isinstance(entry, dict) or set(entry) - {"model", "shape"}
                or not isinstance(entry.get("model"), str)
                or not isinstance(entry.get("shape", ""), str)):
            self.fail((None, None), "models", "each model is a string or a table {model = "
                      f"\"PATH.py:NAME\", shape = \"1x3x224x224\"}}, got {item!r}")
        try:
            spec = model_spec(entry["model"], entry.get("shape"), self.path.parent)
            if spec.onnx_file:
                from mnv2prof.onnx.inputs import resolved

                spec = resolved(spec)[0]
        except UsageError as exc:
            self.fail((None, None), "models", str(exc))
        return spec

    def _grid(self, table: dict) -> tuple[tuple[str, tuple[int | str, ...]], ...]:
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

    def _points(self, value: object, grid) -> tuple[tuple[tuple[str, int | str], ...], ...]:
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
        """[measure]: a TimingSpec (which checks itself), the seed, eager and batch_rows."""
        where = ("measure", None)
        for key in table:
            if key not in MEASURE_KEYS:
                self._unknown(where, key, MEASURE_KEYS)
        try:
            timing = TimingSpec(**{key: table[key] for key in TIMING_KEYS if key in table})
            seed = check_count(table.get("seed", 0), "seed", 0)
            batch_rows = check_count(table.get("batch_rows", 48), "batch_rows", 1)
        except ValueRefused as exc:
            self.refused(where, exc)
        eager = table.get("eager", True)
        if not isinstance(eager, bool):
            self.fail(where, "eager", f"expected true or false, got {eager!r}")
        return timing, seed, eager, batch_rows
