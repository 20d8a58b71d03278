"""A stored row that agrees with itself (a baseline's: a committed file goes through merge
conflicts and hand edits), checked before anything is measured: its samples reproduce every
statistic it states, its counts agree with each other, its spec hash is its spec's, and the rows
of one host share one environment. `check_consistent` names the row and the field of the first
that does not, in one `BaselineError` line.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from mnv2prof.errors import UsageError
from mnv2prof.files.results import parse_integer, parse_number, row_key
from mnv2prof.measure.env import COMPARABLE_KEYS, OPTIONAL_KEYS, Environment

# Counted (exact, deterministic) metrics: any change is an architecture change.
COUNTED_COLUMNS = ("macs", "params", "peak_act_bytes", "bytes_moved", "weight_bytes")
SAMPLES_COLUMN = "latency_samples_ms"  # space-separated milliseconds, one per round, in order
# Every environment field a baseline row carries; the GPU's are absent from files written before
# --device cuda existed (a CPU run).
ENV_COLUMNS = tuple(f"env_{f.name}" for f in dataclasses.fields(Environment)
                    if f.name not in (*OPTIONAL_KEYS, "gpu_driver"))
MEDIAN_TOLERANCE_MS = 1e-5  # samples are written with 5 decimals and the statistics with 6


class BaselineError(UsageError):
    """A baseline file that is missing, unreadable, or not written by `mnv2prof baseline`."""


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
        faster = np.flatnonzero(np.asarray(mins) > samples + MEDIAN_TOLERANCE_MS)
        if faster.size:  # a round's sample (its burst's median) is never below its fastest call
            i = int(faster[0])
            raise BaselineError(f"{where}: sample {i + 1} of latency_samples_ms ({samples[i]:g}) "
                                f"is below its round's fastest call ({mins[i]:g}): {edited}")


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
