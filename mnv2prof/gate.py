"""Pass or fail a fresh measurement against a stored baseline (comparisons as data, after pyperf).

A row fails when its **counted cost** changed (MACs, params, peak activations, bytes moved,
weight bytes must match exactly unless the policy allows cost changes: an architecture change
must be visible, not buried in a latency number), or when its **latency** regressed.

Latency regresses when both hold (pyperf's `CompareResult`: a ratio, a significance and a
minimum change before anything is called a regression):

1. the ratio of medians, current / baseline, exceeds ``1 + max_slowdown``; and
2. a one-sided Mann-Whitney U test on the raw samples rejects, at level ``alpha``, the null
   hypothesis that the current samples are no larger than the baseline samples scaled by
   ``1 + max_slowdown``.

Why Mann-Whitney U, and why against the *scaled* baseline:

- latency samples are skewed with a long right tail (pre-emptions, neighbours), so a t-test on
  means is the wrong model; a rank test needs no distribution, is robust to the tail, is
  deterministic (a bootstrap CI on the ratio of medians answers much the same question but needs
  a random seed and thousands of resamples per row) and comes with scipy;
- testing against ``baseline x (1 + max_slowdown)`` puts the tolerated slowdown inside the null
  hypothesis: a row fails only on evidence that it is slower *by more than the tolerance*, not
  merely slower. With hundreds of samples a plain test calls a 2% drift "significant"; this one
  does not, which is what keeps a noisy runner from crying wolf. The ratio condition (1.) is
  then nearly implied, and kept so that the reported ratio and the verdict never disagree.

The test treats samples as independent; samples of one run are not quite (the machine drifts
during a run), so p-values are optimistic for slow drift between the baseline's run and this one.
That drift is what the relative mode removes:

**Relative mode** (``relative_to`` a reference variant measured in the same run). `latency` times
variants in bursts that rotate round by round, one sample (the burst's median) per round, so sample
``i`` of every variant comes from round ``i``, a few milliseconds apart (a variant that left the
rotation early has fewer samples: those of rounds 0..k-1, so pairing by index pairs rounds whenever
each variant left). Each row's samples are divided, round by round, by the reference's samples of
the same round: the per-round ratios cancel whatever slowed the whole round (a slower CI machine, a
busy neighbour, frequency scaling), and the same test runs on those ratios instead of on
milliseconds. A uniform slowdown of the machine then cancels exactly; a change that slows one block
and not the reference does not. It cannot see a change that slows every block alike (the reference
included): gate the reference itself in absolute mode on a fixed machine for that.

**Rows are matched** to the baseline by variant for a run of compare flags (one row per
variant), or by ``spec`` and ``threads`` for a profile's grid (``match_by="spec"``: one variant
appears at many grid points). In relative mode a profile row is divided by the reference variant's
row of the *same grid point* (the same spec apart from the variant, the same threads): only the
rows of one grid point were timed in the same rounds.

Faster rows are reported (``faster``, with the same test in the other direction), never failed.
``alpha`` is per row: with R rows and no regression, at most about R x alpha false failures are
expected from sampling alone, fewer in practice since the null already allows the tolerance.

Inputs are frames in `records.Record.row()` form (a baseline read back from CSV, and the current
run); nothing here measures, prints or reads flags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd

from mnv2prof.errors import ExitCode, UsageError
from mnv2prof.measure.env import COMPARABLE_KEYS, OPTIONAL_KEYS, Environment
from mnv2prof.measure.stats import per_round_ratios, shifted_mann_whitney

# Counted (exact, deterministic) metrics: any change is an architecture change.
COUNTED_COLUMNS = ("macs", "params", "peak_act_bytes", "bytes_moved", "weight_bytes")
SAMPLES_COLUMN = "latency_samples_ms"  # space-separated milliseconds, one per round, in order
CACHE_MODE_COLUMN = "cache_mode"  # latency.CACHE_MODES: never mixed within one comparison
MATCH_BY = ("variant", "spec")  # row keys: the variant (compare flags), or spec and threads
REQUIRED_COLUMNS = (
    "variant",
    "spec",
    "threads",
    SAMPLES_COLUMN,
    CACHE_MODE_COLUMN,
    *COUNTED_COLUMNS,
    *(f"env_{k}" for k in COMPARABLE_KEYS if k not in OPTIONAL_KEYS),
)
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


class Latency(str, Enum):
    PASS = "pass"
    FASTER = "faster"
    NOT_SIGNIFICANT = "slower, not significant"
    REGRESSION = "regression"
    REFERENCE = "reference"  # the relative mode's reference row: its ratio is 1 by definition


@dataclass(frozen=True)
class GatePolicy:
    max_slowdown: float = 0.10  # tolerated slowdown, a fraction (0.10 = 10%)
    alpha: float = 0.01  # per-row significance level of the one-sided test
    allow_cost_change: bool = False

    def __post_init__(self) -> None:
        if not (self.max_slowdown >= 0 and math.isfinite(self.max_slowdown)):
            raise UsageError(f"max slowdown must be >= 0, got {self.max_slowdown}")
        if not 0 < self.alpha < 1:
            raise UsageError(f"alpha must be between 0 and 1, got {self.alpha}")


@dataclass(frozen=True)
class CostChange:
    column: str
    baseline: int
    current: int


@dataclass(frozen=True)
class RowVerdict:
    variant: str
    baseline_spec: str
    current_spec: str
    baseline_ms: float  # median of the baseline samples
    current_ms: float  # median of the current samples
    baseline_rel_x: float | None  # relative mode: median per-round ratio to the reference
    current_rel_x: float | None
    ratio_x: float  # current / baseline, of medians (of per-round ratios in relative mode)
    p_value: float  # of the one-sided test in the direction of the change
    latency: Latency
    cost_changes: tuple[CostChange, ...]
    cost_change_allowed: bool
    threads: int | None = None  # onnxruntime intra-op threads of the current row
    target: str = ""  # gate.target_suffix: " int8 executorch", or "" for fp32 onnxruntime

    @property
    def cost_failed(self) -> bool:
        return bool(self.cost_changes) and not self.cost_change_allowed

    @property
    def failed(self) -> bool:
        return self.latency is Latency.REGRESSION or self.cost_failed

    @property
    def verdict(self) -> str:
        """One short label: the latency verdict, led by "cost changed" when that fails the row."""
        if self.cost_failed:
            return "cost changed" + (", regression" if self.latency is Latency.REGRESSION else "")
        return self.latency.value

    def cost_summary(self) -> str:
        if not self.cost_changes:
            return "same"
        return ", ".join(
            f"{c.column} {c.current / c.baseline:.2f}x" if c.baseline else f"{c.column} 0->{c.current}"
            for c in self.cost_changes
        )


@dataclass(frozen=True)
class GateResult:
    rows: tuple[RowVerdict, ...]
    policy: GatePolicy
    relative_to: str | None
    env_differences: tuple[tuple[str, str, str], ...]  # (key, baseline, current)
    match_by: str = "variant"  # how rows were matched: see MATCH_BY

    def key(self, row: RowVerdict) -> str:
        """The row's name in reports: its variant, or its spec and threads."""
        if self.match_by == "spec":
            return f"{row.current_spec} threads={row.threads}{row.target}"
        return row.variant

    @property
    def failures(self) -> tuple[RowVerdict, ...]:
        return tuple(r for r in self.rows if r.failed)

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    @property
    def exit_code(self) -> int:
        return ExitCode.REGRESSION if self.failed else ExitCode.OK

    @property
    def mode(self) -> str:
        return f"relative to {self.relative_to}" if self.relative_to else "absolute"

    def summary(self) -> str:
        faster = sum(r.latency is Latency.FASTER for r in self.rows)
        state = "FAIL" if self.failed else "PASS"
        text = (
            f"{state}: {len(self.failures)} of {len(self.rows)} rows failed ({self.mode}, "
            f"max slowdown {self.policy.max_slowdown:.0%}, alpha {self.policy.alpha:g})"
        )
        if faster:
            text += f"; {faster} faster (consider a new baseline)"
        return text


# --- reading a baseline ----------------------------------------------------------------------


def target_suffix(row: dict) -> str:
    """" int8 executorch" for a row not in fp32 on onnxruntime, else "" (rows written before
    precisions and runtimes existed are fp32 onnxruntime)."""
    precision = str(row.get("precision") or "fp32")
    runtime = str(row.get("runtime") or "onnxruntime")
    return "" if (precision, runtime) == ("fp32", "onnxruntime") else f" {precision} {runtime}"


def row_key(row: dict, match_by: str = "variant") -> str:
    """What a row is matched to the baseline by: its variant, or its spec and threads (and its
    precision and runtime when they are not fp32 onnxruntime)."""
    if match_by == "spec":
        return f"{row['spec']} threads={row['threads']}{target_suffix(row)}"
    if match_by != "variant":
        raise ValueError(f"match_by must be one of {MATCH_BY}, got {match_by!r}")
    return f"{row['variant']}{target_suffix(row)}"


def grid_point(row: dict) -> str:
    """The grid point of a profile row: its spec apart from the variant, and its threads.

    The compact spec is ``variant_c.._r..``; variant names hold no underscore (variants.py).
    """
    return f"{str(row['spec']).split('_', 1)[-1]} threads={row['threads']}{target_suffix(row)}"


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
    from mnv2prof.run.readers import read_table

    frame = read_table(path, "baseline", BASELINE_COLUMNS, as_text=True,
                       hint=": not a file written by `mnv2prof baseline`", error=BaselineError)
    if CACHE_MODE_COLUMN not in frame.columns:
        raise BaselineError(
            f"baseline {path} has no {CACHE_MODE_COLUMN} column: it was timed by mnv2prof's older "
            "round-robin harness (up to 1.8x slow on small blocks); take a new baseline"
        )
    if env is not None:
        frame = same_environment_rows(frame, env)
    keys = pd.Series([row_key(r, match_by) for r in frame.to_dict("records")], dtype=object)
    duplicated = sorted(set(keys[keys.duplicated()]))
    if duplicated:
        hint = " (a profile's baseline: gate it with --profile)" if match_by == "variant" else ""
        raise BaselineError(
            f"baseline {path} has more than one row for {', '.join(duplicated)}{hint}"
        )
    for row in frame.to_dict("records"):
        _samples(row, f"baseline {path}")
    return frame


def same_environment_rows(frame: pd.DataFrame, env: Environment) -> pd.DataFrame:
    """The rows of `frame` measured in `env` when it holds rows of several environments and some
    are `env`'s; else `frame` as it is."""
    records = frame.to_dict("records")
    columns = [c for c in frame.columns if c.startswith("env_")]
    if len({tuple(str(r[c]) for c in columns) for r in records}) <= 1:
        return frame
    mine = [not env.differences(r) for r in records]
    return frame[mine].reset_index(drop=True) if any(mine) else frame


def _samples(row: dict, source: str) -> np.ndarray:
    try:
        values = np.array([float(s) for s in str(row[SAMPLES_COLUMN]).split()])
    except ValueError:
        values = np.array([])
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise BaselineError(
            f"{source}, row {row['variant']}: {SAMPLES_COLUMN} must be positive milliseconds "
            f"separated by spaces"
        )
    return values


def _counted(row: dict, source: str) -> dict[str, int]:
    try:
        return {c: int(str(row[c])) for c in COUNTED_COLUMNS}
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

    @classmethod
    def of_requests(cls, rows, variants: str, threads: int) -> GateRows:
        """`rows`: pipeline.RowRequest (a spec in a precision on a runtime)."""
        keys = tuple(row_key({"variant": r.spec.variant, "precision": r.precision,
                              "runtime": r.runtime}) for r in rows)
        names = tuple(dict.fromkeys(r.spec.variant for r in rows))
        return cls("variant", keys, names, f"--variants ({variants})", threads)

    @classmethod
    def of_profile(cls, profile) -> GateRows:
        keys = tuple(
            row_key({"spec": s.name, "threads": point.threads, "precision": point.precision,
                     "runtime": point.runtime}, "spec")
            for point in profile.points()
            for s in point.specs
        )
        names = tuple(profile.variants)
        return cls("spec", keys, names, f"the profile's variants ({', '.join(names)})", None)


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
        parts.append(f"no baseline row for {_listed(want - have)}")
    if have - want:
        parts.append(f"baseline rows not measured now: {_listed(have - want)}")
    if match_by == "variant":
        hint = f" (baseline variants: {', '.join(stored)}); gate the same --variants the baseline"
    else:
        hint = "; gate the same profile (grid, variants, threads) the baseline"
    raise UsageError("; ".join(parts) + hint + " was taken with")


def _listed(keys: set[str], most: int = 6) -> str:
    """Sorted, at most `most` of them and a count of the rest: a profile can have hundreds."""
    ordered = sorted(keys)
    shown = ", ".join(ordered[:most])
    return shown + (f" and {len(ordered) - most} more" if len(ordered) > most else "")


def check_cache_mode(baseline: pd.DataFrame, mode: str, source: Path | str = "baseline") -> None:
    """Refuse to compare latencies timed in different cache states, whatever the other flags:
    a cold number is not a slower warm one."""
    stored = sorted(set(baseline[CACHE_MODE_COLUMN].astype(str)))
    if stored != [mode]:
        raise UsageError(
            f"{source} was timed with --cache {', '.join(stored)} and this run with --cache "
            f"{mode}: cache modes are never mixed; gate with --cache {stored[0]}"
        )


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


# --- the decision ----------------------------------------------------------------------------


def decide(
    baseline: pd.DataFrame,
    current: pd.DataFrame,
    policy: GatePolicy,
    relative_to: str | None = None,
    env_differences: tuple[tuple[str, str, str], ...] = (),
    match_by: str = "variant",
) -> GateResult:
    """One `RowVerdict` per current row, matched to the baseline row of the same `row_key`."""
    cur_rows = {row_key(r, match_by): r for r in current.to_dict("records")}
    check_rows(baseline, list(cur_rows), match_by)
    base_rows = {row_key(r, match_by): r for r in baseline.to_dict("records")}
    base_samples = {k: _samples(r, "baseline") for k, r in base_rows.items()}
    cur_samples = {k: _samples(r, "current run") for k, r in cur_rows.items()}
    if relative_to is not None:
        references = _references(cur_rows, relative_to, match_by)
        base_rel, cur_rel = {}, {}
        for key, ref in references.items():
            # per_round_ratios pairs rounds within one timed run: the row and its reference only
            base_rel[key] = per_round_ratios({"row": base_samples[key], "ref": base_samples[ref]},
                                             "ref")["row"]
            cur_rel[key] = per_round_ratios({"row": cur_samples[key], "ref": cur_samples[ref]},
                                            "ref")["row"]

    verdicts = []
    for key, cur in cur_rows.items():
        base = base_rows[key]
        b, c = base_samples[key], cur_samples[key]
        changes = _cost_changes(_counted(base, "baseline"), _counted(cur, "current run"))
        if relative_to is None:
            latency, ratio, p = compare_samples(b, c, policy)
            b_rel = c_rel = None
        else:
            b_rel, c_rel = float(np.median(base_rel[key])), float(np.median(cur_rel[key]))
            if references[key] == key:
                latency, ratio, p = Latency.REFERENCE, 1.0, 1.0
            else:
                latency, ratio, p = compare_samples(base_rel[key], cur_rel[key], policy)
        verdicts.append(
            RowVerdict(
                variant=row_key(cur, "variant"),
                baseline_spec=str(base["spec"]),
                current_spec=str(cur["spec"]),
                baseline_ms=float(np.median(b)),
                current_ms=float(np.median(c)),
                baseline_rel_x=b_rel,
                current_rel_x=c_rel,
                ratio_x=ratio,
                p_value=p,
                latency=latency,
                cost_changes=changes,
                cost_change_allowed=policy.allow_cost_change,
                threads=int(cur["threads"]),
                target=target_suffix(cur),
            )
        )
    return GateResult(tuple(verdicts), policy, relative_to, env_differences, match_by)


def _references(rows: dict[str, dict], relative_to: str, match_by: str) -> dict[str, str]:
    """Each row's key -> the key of its reference row: the `relative_to` variant's row timed in
    the same rounds (the only one for compare flags; of the same grid point for a profile)."""
    variants = list(dict.fromkeys(str(r["variant"]) for r in rows.values()))
    if relative_to not in variants:
        raise UsageError(
            f"--relative-to {relative_to!r} is not among the variants ({', '.join(variants)})"
        )

    def group(row: dict) -> str:  # rows timed in the same rounds: one target, one grid point
        return grid_point(row) if match_by == "spec" else target_suffix(row)

    reference = {group(r): k for k, r in rows.items() if str(r["variant"]) == relative_to}
    missing = sorted({group(r) for r in rows.values()} - set(reference))
    if missing:
        raise UsageError(
            f"--relative-to {relative_to!r}: no {relative_to} row at grid point(s) "
            f"{_listed(set(missing))}; its rows can only be compared with rows timed in the same "
            f"rounds (add {relative_to} to the profile's variants)"
        )
    return {k: reference[group(r)] for k, r in rows.items()}


def compare_samples(
    baseline: np.ndarray, current: np.ndarray, policy: GatePolicy
) -> tuple[Latency, float, float]:
    """(verdict, ratio of medians current / baseline, p-value): see the module docstring."""
    baseline, current = np.asarray(baseline, float), np.asarray(current, float)
    ratio = float(np.median(current) / np.median(baseline))
    tolerance = 1.0 + policy.max_slowdown
    if ratio >= 1.0:
        p = shifted_mann_whitney(baseline, current, tolerance, "greater")
        if ratio > tolerance and p < policy.alpha:
            return Latency.REGRESSION, ratio, p
        return (Latency.NOT_SIGNIFICANT if ratio > tolerance else Latency.PASS), ratio, p
    p = shifted_mann_whitney(baseline, current, tolerance, "less")
    if ratio < 1.0 / tolerance and p < policy.alpha:
        return Latency.FASTER, ratio, p
    return Latency.PASS, ratio, p


def _cost_changes(baseline: dict[str, int], current: dict[str, int]) -> tuple[CostChange, ...]:
    return tuple(
        CostChange(c, baseline[c], current[c]) for c in COUNTED_COLUMNS if baseline[c] != current[c]
    )
