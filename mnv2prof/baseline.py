"""A stored baseline read and checked before anything is measured (the gate's first half).

`load_baseline` reads a CSV or JSON baseline as text and refuses, in one line, a file that is
missing, cut off, of another kind, with duplicated rows or bad samples, or with a row that does
not agree with itself (`check_consistent`: a committed baseline goes through merge conflicts and
hand edits); `check_baseline` then
holds it against what a gate is about to measure: the same rows (`row_key`), the same cache mode,
the same environment (or a relative comparison, or the mismatch allowed). `gate.decide` takes
the checked frame; nothing here measures, decides or prints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mnv2prof.errors import UsageError
from mnv2prof.files.results import check_one_cache_mode, parse_integer, parse_number, row_key
from mnv2prof.measure.env import COMPARABLE_KEYS, OPTIONAL_KEYS, Environment

# Counted (exact, deterministic) metrics: any change is an architecture change.
COUNTED_COLUMNS = ("macs", "params", "peak_act_bytes", "bytes_moved", "weight_bytes")
SAMPLES_COLUMN = "latency_samples_ms"  # space-separated milliseconds, one per round, in order
CACHE_MODE_COLUMN = "cache_mode"  # latency.CACHE_MODES: never mixed within one comparison
REQUIRED_COLUMNS = (
    "variant", "spec", "threads", SAMPLES_COLUMN, CACHE_MODE_COLUMN, *COUNTED_COLUMNS,
    *(f"env_{k}" for k in COMPARABLE_KEYS if k not in OPTIONAL_KEYS),
)  # fmt: skip
# Every environment field a baseline row carries; the GPU's are absent from files written before
# --device cuda existed (a CPU run).
ENV_COLUMNS = tuple(f"env_{f.name}" for f in dataclasses.fields(Environment)
                    if f.name not in (*OPTIONAL_KEYS, "gpu_driver"))
MEDIAN_TOLERANCE_MS = 1e-5  # samples are written with 5 decimals and the statistics with 6
COMPARE_MARK = "_ratio_x"  # what only a `compare --csv` file has: ratios to its baseline row
# What each column must hold in every row of a baseline (run.readers kinds); the cache mode is
# checked apart: a baseline without it is the older harness's, and says so.
BASELINE_COLUMNS = {
    "variant": "key", "spec": "key", "threads": "count", SAMPLES_COLUMN: "key",
    **{c: "count" for c in COUNTED_COLUMNS},
    **{f"env_{k}": "key" for k in COMPARABLE_KEYS if k not in OPTIONAL_KEYS},
}  # fmt: skip


class BaselineError(UsageError):
    """A baseline file that is missing, unreadable, or not written by `mnv2prof baseline`."""


class EnvironmentMismatch(UsageError):
    """A baseline measured on another machine or library stack, compared in absolute mode."""


# --- reading a baseline ----------------------------------------------------------------------


def load_baseline(
    path: Path, match_by: str = "variant", env: Environment | None = None
) -> pd.DataFrame:
    """Read and validate a baseline (CSV, or JSON records) as strings; a `UsageError` line if
    unfit: missing, a folder, not text, a row cut off mid-write, a column missing or of the wrong
    kind in any row (run.readers), duplicated rows, bad samples or counts.

    Rows must be unique by `row_key` (`match_by`): by variant for compare flags, by spec and
    threads for a profile. Every cell is read as text: a CSV reader guessing types would turn
    env_onnx "1.20" into 1.2 and refuse a matching environment.

    A baseline measured by several hosts (a cluster sweep, merged shards) holds rows from more
    than one environment: given `env`, only the rows measured in it are kept, so a gate compares
    rows of one environment, never a mixture (when none is `env`'s, all are kept, and the
    environment check refuses them as it refuses any foreign baseline).
    """
    from mnv2prof.run.readers import check_results, check_row_keys, read_table

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


def check_consistent(frame: pd.DataFrame, source: str, match_by: str = "variant") -> None:
    """Each row agrees with itself, and the rows of one host with each other, or a
    `BaselineError` names the row and the field:

    - every environment field (ENV_COLUMNS) is there;
    - `latency_n` is the number of `latency_samples_ms`, and every statistic the row stores is
      theirs (STATISTICS: median, quartiles, IQR, p95, CI; within the rounding of the file,
      MEDIAN_TOLERANCE_MS), and where the file has the rounds' fastest calls, one per sample,
      `latency_min_ms` is the smallest;
    - the counts agree with each other (`flops` = 2 x `macs`...), so an edited count is named;
    - `spec_hash` is the hash of a block's spec columns (`spec`, the block fields, `source_hash`,
      `threads`, `precision`, `runtime`: models.targets.row_hash), and `spec` their compact
      form; a model's row is not checked (its input's name is not in the columns);
    - the rows of one `host` (of the file, without the column) share one environment
      (env.COMPARABLE_KEYS): a row measured with another torch is a row edited, not a second
      machine's.

    The optional columns are checked where the file has them (a gate's synthetic rows, files of
    older versions); a row that lacks a value in one is refused."""
    missing = [c for c in ENV_COLUMNS if c not in frame.columns]
    if missing:
        raise BaselineError(f"{source} lacks the environment column(s) {', '.join(missing)}: "
                            "every row must say where it was measured; take a new baseline")
    first_of_host: dict[str, tuple[int, dict]] = {}
    for number, row in enumerate(frame.to_dict("records"), 1):
        where = f"{source}, row {number} ({row_key(row, match_by)})"
        samples = samples_of(row, source)
        _check_summary(row, samples, where)
        _check_counts(row, samples, where)
        _check_spec_hash(row, where)
        host = str(row.get("host", ""))
        first = first_of_host.setdefault(host, (number, row))
        for key in COMPARABLE_KEYS:
            column = f"env_{key}"
            theirs, mine = str(first[1].get(column, "")), str(row.get(column, ""))
            if mine != theirs:
                on = f" of host {host}" if host else ""
                raise BaselineError(
                    f"{where}: {column} is {mine!r} but {theirs!r} in row {first[0]}{on}: one "
                    "host's rows share one environment; the row was edited, take a new baseline"
                )


# Each stored statistic of the samples (measure.stats.summarize): its column, its words, and how
# far the file's rounding lets it stray (samples 5 decimals, statistics 6; the IQR is a difference
# of two). The CI is nan below 6 samples, and empty in the file then.
STATISTICS = (
    ("latency_median_ms", "median", MEDIAN_TOLERANCE_MS),
    ("latency_q1_ms", "first quartile", MEDIAN_TOLERANCE_MS),
    ("latency_q3_ms", "third quartile", MEDIAN_TOLERANCE_MS),
    ("latency_iqr_ms", "interquartile range", 2 * MEDIAN_TOLERANCE_MS),
    ("latency_p95_ms", "95th percentile", MEDIAN_TOLERANCE_MS),
    ("latency_ci_low_ms", "95% CI's low end", MEDIAN_TOLERANCE_MS),
    ("latency_ci_high_ms", "95% CI's high end", MEDIAN_TOLERANCE_MS),
)  # fmt: skip


def _stored(row: dict, column: str) -> tuple[str, float]:
    text = str(row[column]).strip()
    try:
        return text, parse_number(text) if text else float("nan")
    except ValueError:
        return text, float("inf")  # never within a tolerance: refused, naming the text


def _check_summary(row: dict, samples: np.ndarray, where: str) -> None:
    """Every statistic the row stores is its samples' (STATISTICS), `latency_n` their count, and
    `latency_min_ms` the fastest of the rounds' fastest calls, one per sample."""
    from mnv2prof.measure.stats import summarize

    edited = "the row was edited; take a new baseline"
    if "latency_n" in row and str(row["latency_n"]).strip() != str(samples.size):
        raise BaselineError(f"{where}: latency_n is {str(row['latency_n']).strip() or 'empty'} "
                            f"but latency_samples_ms holds {samples.size} samples: {edited}")
    summary = summarize(samples)
    for column, words, tolerance in STATISTICS:
        if column not in row:
            continue
        expected = getattr(summary, column.removeprefix("latency_").removesuffix("_ms"))
        text, stored = _stored(row, column)
        if np.isnan(expected) and np.isnan(stored) or abs(stored - expected) <= tolerance:
            continue
        raise BaselineError(f"{where}: {column} is {text or 'empty'} but the {words} of "
                            f"latency_samples_ms is {expected:.6f}: {edited}")
    mins_text = str(row.get("latency_mins_ms", "") or "").strip()
    if mins_text and mins_text != "nan" and "latency_min_ms" in row:
        try:
            mins = [parse_number(x) for x in mins_text.split()]
        except ValueError:
            mins = []
        stored = _stored(row, "latency_min_ms")[1]
        if len(mins) != samples.size or not abs(stored - min(mins, default=stored)) <= \
                MEDIAN_TOLERANCE_MS:
            raise BaselineError(
                f"{where}: latency_min_ms and latency_mins_ms disagree (the fastest call of "
                f"{len(mins)} rounds against {samples.size} samples): {edited}"
            )


def _check_counts(row: dict, samples: np.ndarray, where: str) -> None:
    """The counted columns agree with what the row derives from them: `flops` is 2 x `macs`,
    `gmacs_per_s` is `macs` over the samples' median, and `arith_intensity_flop_per_byte` is
    `flops` over `bytes_moved` (an edit of one count shows in the others)."""
    counts = counted_of(row, where.partition(", row ")[0])
    median = float(np.median(samples))
    derived = {"flops": (2 * counts["macs"], 0.0, "2 x macs")}
    if median > 0:
        gmacs = counts["macs"] / median / 1e6
        slack = 0.5e-4 + gmacs * MEDIAN_TOLERANCE_MS / median  # 4 decimals, the median's rounding
        derived["gmacs_per_s"] = (gmacs, slack, "macs / the median of latency_samples_ms")
    if "flops" in row and counts["bytes_moved"]:
        flops = _stored(row, "flops")[1]
        derived["arith_intensity_flop_per_byte"] = (flops / counts["bytes_moved"], 0.5e-4 * 1.01,
                                                    "flops / bytes_moved")
    for column, (expected, slack, formula) in derived.items():
        if column in row and str(row[column]).strip():
            text, stored = _stored(row, column)
            if not abs(stored - expected) <= slack:
                raise BaselineError(f"{where}: {column} is {text} but {formula} gives "
                                    f"{expected:.6g}: the row was edited; take a new baseline")


def _check_spec_hash(row: dict, where: str) -> None:
    """A block's row: `spec_hash` and `spec` against its spec columns (records.Record.row)."""
    from mnv2prof.errors import SpecError
    from mnv2prof.models.targets import Target, row_hash
    from mnv2prof.models.variants import BlockSpec
    from mnv2prof.run.records import BLOCK_COLUMNS

    if "spec_hash" not in row or not str(row.get("in_chs", "")).strip():
        return  # a gate's synthetic row, or a model's
    fields = {c: str(row[c]).strip() for c in BLOCK_COLUMNS if c in row}
    try:
        spec = BlockSpec(str(row["variant"]), source=str(row.get("source") or ""),
                         source_hash=str(row.get("source_hash") or ""),
                         **{c: parse_integer(v) for c, v in fields.items()})
        target = Target(str(row.get("precision") or "fp32"),
                        str(row.get("runtime") or "onnxruntime"))
        expected = row_hash(spec, parse_integer(str(row["threads"])), target)
    except (ValueError, SpecError) as exc:
        raise BaselineError(f"{where}: its spec columns do not make a block: {exc}") from None
    if str(row["spec"]) != spec.name:
        raise BaselineError(f"{where}: spec is {row['spec']!r} but its spec columns make "
                            f"{spec.name!r}: the row was edited; take a new baseline")
    if str(row["spec_hash"]).strip() != expected:
        raise BaselineError(
            f"{where}: spec_hash is {str(row['spec_hash']).strip() or 'empty'!r} but its spec "
            f"columns hash to {expected!r}: the row was edited; take a new baseline"
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


def samples_of(row: dict, source: str) -> np.ndarray:
    try:
        values = np.array([parse_number(s) for s in str(row[SAMPLES_COLUMN]).split()])
    except ValueError:  # `1_0`, Unicode digits: not as the tool writes a number
        values = np.array([])
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise BaselineError(
            f"{source}, row {row['variant']}: {SAMPLES_COLUMN} must be positive milliseconds "
            f"separated by spaces"
        )
    return values


def counted_of(row: dict, source: str) -> dict[str, int]:
    try:
        return {c: parse_integer(str(row[c])) for c in COUNTED_COLUMNS}
    except ValueError:
        raise BaselineError(
            f"{source}, row {row['variant']}: {', '.join(COUNTED_COLUMNS)} must be integers"
        ) from None


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

    @classmethod
    def of_rows(cls, rows, where: str, threads: int) -> GateRows:
        """`rows`: deploy.Row (a block's or a model's spec on a target)."""
        keys = tuple(row_key(_key_fields(r.subject, r.target)) for r in rows)
        names = tuple(dict.fromkeys(r.subject.variant for r in rows))
        sources = tuple((k, r.subject.source, r.subject.source_hash)
                        for k, r in zip(keys, rows, strict=True) if r.subject.source)
        return cls("variant", keys, names, where, threads, sources)

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
    check_cache_mode(stored, cache_mode, path)
    differences = environment_differences(stored, env, rows.threads)
    check_environment(differences, relative_to is not None, allow_env_mismatch)
    return stored, differences


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
