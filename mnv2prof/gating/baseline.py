"""A stored baseline read and checked before anything is measured (the gate's first half).

`load_baseline` reads a CSV or JSON baseline as text and refuses, in one line, a file that is
missing, cut off, of another kind, with duplicated rows or bad samples, or with a row that does
not agree with itself (`stored_rows.check_consistent`: a committed baseline goes through merge
conflicts and hand edits); `check_baseline` then
holds it against what a gate is about to measure: the same rows (`row_key`), the same cache mode,
the same environment (or a relative comparison, or the mismatch allowed). `gate.decide` takes
the checked frame; nothing here measures, decides or prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mnv2prof.errors import UsageError
from mnv2prof.files.results import check_one_cache_mode, row_key
from mnv2prof.measure.env import COMPARABLE_KEYS, OPTIONAL_KEYS, Environment
from mnv2prof.gating.stored_rows import (
    COUNTED_COLUMNS,
    SAMPLES_COLUMN,
    BaselineError,
    check_consistent,
)

# Counted (exact, deterministic) metrics: any change is an architecture change.
CACHE_MODE_COLUMN = "cache_mode"  # latency.CACHE_MODES: never mixed within one comparison
REQUIRED_COLUMNS = (
    "variant", "spec", "threads", SAMPLES_COLUMN, CACHE_MODE_COLUMN, *COUNTED_COLUMNS,
    *(f"env_{k}" for k in COMPARABLE_KEYS if k not in OPTIONAL_KEYS),
)  # fmt: skip
COMPARE_MARK = "_ratio_x"  # what only a `compare --csv` file has: ratios to its baseline row
# What each column must hold in every row of a baseline (files.readers kinds); the cache mode is
# checked apart: a baseline without it is the older harness's, and says so.
BASELINE_COLUMNS = {
    "variant": "key", "spec": "key", "threads": "count", SAMPLES_COLUMN: "key",
    **{c: "count" for c in COUNTED_COLUMNS},
    **{f"env_{k}": "key" for k in COMPARABLE_KEYS if k not in OPTIONAL_KEYS},
}  # fmt: skip


class EnvironmentMismatch(UsageError):
    """A baseline measured on another machine or library stack, compared in absolute mode."""


# --- reading a baseline ----------------------------------------------------------------------


def load_baseline(
    path: Path, match_by: str = "variant", env: Environment | None = None
) -> pd.DataFrame:
    """Read and validate a baseline (CSV, or JSON records) as strings; a `UsageError` line if
    unfit: missing, a folder, not text, a row cut off mid-write, a column missing or of the wrong
    kind in any row (files.readers), duplicated rows, bad samples or counts.

    Rows must be unique by `row_key` (`match_by`): by variant for compare flags, by spec and
    threads for a profile. Every cell is read as text: a CSV reader guessing types would turn
    env_onnx "1.20" into 1.2 and refuse a matching environment.

    A baseline measured by several hosts (a cluster sweep, merged shards) holds rows from more
    than one environment: given `env`, only the rows measured in it are kept, so a gate compares
    rows of one environment, never a mixture (when none is `env`'s, all are kept, and the
    environment check refuses them as it refuses any foreign baseline).
    """
    from mnv2prof.files.readers import check_results, check_row_keys, read_table

    frame = read_table(path, "baseline", BASELINE_COLUMNS, as_text=True,
                       hint=": not a file written by `mnv2prof baseline`", error=BaselineError)
    if CACHE_MODE_COLUMN not in frame.columns:
        raise BaselineError(
            f"baseline {path} has no {CACHE_MODE_COLUMN} column: it was timed by mnv2prof's older "
            "round-robin harness (up to 1.8x slow on small blocks); take a new baseline"
        )
    if ratios := [c for c in frame.columns if c.endswith(COMPARE_MARK)]:
        raise BaselineError(f"baseline {path} is a `compare --csv` file (it has {ratios[0]}), "
                            "not a baseline: take one with `mnv2prof baseline --out`")
    header, body = list(frame.columns), frame.values.tolist()
    try:  # what every reader of results holds a file to: one row per spec_hash and host...
        check_row_keys(path, "baseline", header, body)
        _check_unique(frame, path, match_by, per_host=True)  # ...and per row key, as gate matches
        check_consistent(frame, f"baseline {path}", match_by)  # it names an edited field
        check_results(path, "baseline", header, body)
    except UsageError as exc:
        raise exc if isinstance(exc, BaselineError) else BaselineError(str(exc)) from None
    if env is not None:
        frame = same_environment_rows(frame, env)
    _check_unique(frame, path, match_by)
    return frame


def _check_unique(frame: pd.DataFrame, path: Path, match_by: str, per_host: bool = False):
    """One row per `row_key`, the gate's match (per host too, with `per_host`: before the rows
    of other hosts are set aside). Beside the results files' own rule (one row per spec_hash and
    host, files.results), which a profile's baseline keeps while its variants repeat."""
    records = frame.to_dict("records")
    keys = pd.Series([row_key(r, match_by) for r in records], dtype=object)
    hosts = pd.Series([str(r.get("host", "")) if per_host else "" for r in records], dtype=object)
    duplicated = sorted(set(keys[pd.DataFrame({"k": keys, "h": hosts}).duplicated()]))
    if duplicated:
        hint = " (a profile's baseline: gate it with --profile)" if match_by == "variant" else ""
        raise BaselineError(
            f"baseline {path} has more than one row for {', '.join(duplicated)}{hint}"
        )


def same_environment_rows(frame: pd.DataFrame, env: Environment) -> pd.DataFrame:
    """The rows of `frame` measured in `env` when it holds rows of several environments and some
    are `env`'s; else `frame` as it is."""
    records = frame.to_dict("records")
    columns = [c for c in frame.columns if c.startswith("env_")]
    if len({tuple(str(r[c]) for c in columns) for r in records}) <= 1:
        return frame
    mine = [not env.differences(r) for r in records]
    return frame[mine].reset_index(drop=True) if any(mine) else frame


# --- checks before measuring -----------------------------------------------------------------


@dataclass(frozen=True)
class GateRows:
    """The rows a gate measures now and how they are matched to the baseline's."""

    match_by: str  # MATCH_BY
    keys: tuple[str, ...]  # `row_key` of every row measured now
    variants: tuple[str, ...]  # the variants among them (a --relative-to must be one)
    where: str  # where the variants come from, for messages
    threads: int | None  # the run's threads; None: each row carries its own (a profile's grid)

    sources: tuple[tuple[str, str, str], ...] = ()  # (key, source, source_hash) of user code
    specs: tuple[tuple[str, str], ...] = ()  # (key, spec) of each row matched by variant

    @classmethod
    def of_rows(cls, rows, where: str, threads: int) -> GateRows:
        """`rows`: deploy.Row (a block's or a model's spec on a target)."""
        keys = tuple(row_key(_key_fields(r.subject, r.target)) for r in rows)
        names = tuple(dict.fromkeys(r.subject.variant for r in rows))
        sources = tuple((k, r.subject.source, r.subject.source_hash)
                        for k, r in zip(keys, rows, strict=True) if r.subject.source)
        specs = tuple((k, r.subject.name) for k, r in zip(keys, rows, strict=True))
        return cls("variant", keys, names, where, threads, sources, specs)

    @classmethod
    def of_profile(cls, profile) -> GateRows:
        pairs = [(point, s) for point in profile.points() for s in point.subjects]
        keys = tuple(
            row_key({**_key_fields(s, point.target), "spec": s.name, "threads": point.threads},
                    "spec")
            for point, s in pairs
        )
        sources = tuple((k, s.source, s.source_hash)
                        for k, (_, s) in zip(keys, pairs, strict=True) if s.source)
        names = profile.variant_names
        return cls("spec", keys, names, f"the profile's variants ({', '.join(names)})", None,
                   sources)


def _key_fields(subject, target) -> dict[str, str]:
    return {"variant": subject.variant, "precision": target.precision, "runtime": target.runtime}


def source_changes(baseline: pd.DataFrame, rows: GateRows) -> tuple[str, ...]:
    """One line per row whose user code (a block's or a model's file) is not the file the
    baseline measured: the gate still compares them (that is what it is for: a change to the
    user's block), but says so."""
    if "source_hash" not in baseline.columns:
        return ()
    stored = {row_key(r, rows.match_by): str(r.get("source_hash") or "")
              for r in baseline.to_dict("records")}
    lines = []
    for key, source, digest in rows.sources:
        before = stored.get(key, "")
        if before and before != digest:
            lines.append(f"{key}: {source.rpartition(':')[0] or source} has changed since the "
                         f"baseline (file hash {before} then, {digest} now)")
        elif not before and key in stored:
            lines.append(f"{key}: the baseline row has no source hash; {source} is measured now")
    return tuple(lines)


def check_baseline(
    path: Path,
    rows: GateRows,
    cache_mode: str,
    relative_to: str | None,
    allow_env_mismatch: bool,
) -> tuple[pd.DataFrame, tuple[tuple[str, str, str], ...]]:
    """Everything checked before measuring: the baseline read and validated, its rows equal to
    the rows measured now, its cache mode this run's, its environment this one (or the
    comparison relative, or the mismatch allowed). Returns it and its environment differences."""
    from mnv2prof.measure.env import current_environment

    if relative_to is not None and relative_to not in rows.variants:
        raise UsageError(f"--relative-to {relative_to!r} is not among {rows.where}")
    env = current_environment()
    stored = load_baseline(path, rows.match_by, env)
    check_rows(stored, rows.keys, rows.match_by)
    check_specs(stored, rows, path)
    check_cache_mode(stored, cache_mode, path)
    differences = environment_differences(stored, env, rows.threads)
    check_environment(differences, relative_to is not None, allow_env_mismatch)
    return stored, differences


def check_specs(baseline: pd.DataFrame, rows: GateRows, path: Path) -> None:
    """Each row's spec must be the baseline's (refused before anything is measured: a gate at
    --expansion 4 against a baseline taken at t=6 compares two different blocks)."""
    stored = {row_key(r, rows.match_by): str(r.get("spec", "")) for r in
              baseline.to_dict("records")}
    for key, spec in rows.specs:
        if stored.get(key) and stored[key] != spec:
            raise UsageError(f"--baseline {path}: {key} was measured as {stored[key]}, and these "
                             f"flags ask for {spec}: give the baseline's spec flags, or take a "
                             "new baseline")


def check_rows(baseline: pd.DataFrame, keys: list[str] | tuple[str, ...], match_by: str) -> None:
    """The baseline's rows must be exactly the rows measured now (`keys`, by `row_key`)."""
    stored = [row_key(r, match_by) for r in baseline.to_dict("records")]
    have, want = set(stored), set(keys)
    if have == want:
        return
    parts = []
    if want - have:
        parts.append(f"no baseline row for {listed(want - have)}")
    if have - want:
        parts.append(f"baseline rows not measured now: {listed(have - want)}")
    if match_by == "variant":
        hint = f" (baseline variants: {', '.join(stored)}); gate the same --variants the baseline"
    else:
        hint = "; gate the same profile (grid, variants, threads) the baseline"
    raise UsageError("; ".join(parts) + hint + " was taken with")


def listed(keys: set[str], most: int = 6) -> str:
    """Sorted, at most `most` of them and a count of the rest: a profile can have hundreds."""
    ordered = sorted(keys)
    shown = ", ".join(ordered[:most])
    return shown + (f" and {len(ordered) - most} more" if len(ordered) > most else "")


def check_cache_mode(baseline: pd.DataFrame, mode: str, source: Path | str = "baseline") -> None:
    """Refuse to compare latencies timed in different cache states, whatever the other flags:
    a cold number is not a slower warm one (files.results.check_one_cache_mode)."""
    stored = str(baseline[CACHE_MODE_COLUMN].iloc[0]) if len(baseline) else mode
    check_one_cache_mode(((str(source), str(m)) for m in baseline[CACHE_MODE_COLUMN]),
                         ("this run", mode), f"; gate with --cache {stored}")


def environment_differences(
    baseline: pd.DataFrame, env: Environment, threads: int | None
) -> tuple[tuple[str, str, str], ...]:
    """(key, baseline value, current value) of every COMPARABLE_KEYS field and `threads` that differ.

    `threads` None: a profile's rows carry their own threads, matched as part of the row key.
    """
    found: dict[str, tuple[str, str]] = {}
    for row in baseline.to_dict("records"):
        for key, (theirs, mine) in env.differences(row).items():
            found.setdefault(key, (str(theirs), str(mine)))
        if threads is not None and str(row["threads"]) != str(threads):
            found.setdefault("threads", (str(row["threads"]), str(threads)))
    return tuple((k, b, c) for k, (b, c) in found.items())


def check_environment(
    differences: tuple[tuple[str, str, str], ...], relative: bool, allow_mismatch: bool
) -> None:
    """Refuse an absolute comparison across environments (pyperf refuses it too)."""
    if differences and not relative and not allow_mismatch:
        listed = "; ".join(f"{k} {b!r} now {c!r}" for k, b, c in differences)
        raise EnvironmentMismatch(
            f"baseline comes from another environment ({listed}): absolute latencies are not "
            f"comparable; gate with --relative-to VARIANT, or --allow-env-mismatch to compare anyway"
        )
