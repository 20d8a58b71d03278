"""How much of latency do FLOPs explain? Least-squares cost models fitted to a results CSV.

Three linear models of the median latency, each with an intercept (the fixed cost of a call):
- MACs alone: the model FLOP counters imply;
- MACs + bytes moved: ShuffleNet V2's memory access cost as a second term;
- MACs + bytes moved + node count: a per-kernel overhead (launch, scheduling, reorders), which
  ShuffleNet V2's G3 (fragmentation) says matters.

Each is reported with R^2 (share of the latency variance it explains) and the mean absolute
percentage error of its predictions, and its coefficients in units a reader can weigh: ns per
MAC, ns per byte, us per node, intercept in us. Columns are scaled to unit size before the fit
(MACs are ~10^8, nodes ~10), which leaves the solution unchanged but keeps it well conditioned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from mnv2prof.errors import UsageError
from mnv2prof.report.views import Column, View, view_table

# term -> (CSV column, coefficient unit, factor from ms per unit of the column to that unit)
TERMS = {
    "macs": ("macs", "ns/MAC", 1e6),
    "bytes": ("bytes_moved", "ns/byte", 1e6),
    "nodes": ("nodes", "us/node", 1e3),
}
MODELS = (("MACs", ("macs",)), ("MACs + bytes", ("macs", "bytes")),
          ("MACs + bytes + nodes", ("macs", "bytes", "nodes")))
LATENCY = "latency_median_ms"
INTERCEPT_UNIT = "us"


@dataclass(frozen=True)
class Fit:
    name: str
    terms: tuple[str, ...]
    coefficients: dict[str, float]  # term -> coefficient in TERMS' unit
    intercept_us: float
    r2: float
    mape: float  # fraction (0.05 = 5%)
    n: int
    identifiable: bool  # False: a column is a linear combination of the others (and the intercept)
    missing: str = ""  # why the fit could not run (a column the CSV lacks); "" when it ran

    def coefficient_text(self) -> str:
        if self.missing:
            return self.missing
        parts = [f"{self.coefficients[t]:.4g} {TERMS[t][1]}" for t in self.terms]
        return ", ".join([*parts, f"intercept {self.intercept_us:.4g} {INTERCEPT_UNIT}"])


def fit(frame: pd.DataFrame, name: str, terms: tuple[str, ...]) -> Fit:
    """Least squares of latency on `terms` plus an intercept."""
    absent = [TERMS[t][0] for t in terms if TERMS[t][0] not in frame.columns]
    if absent:
        return Fit(name, terms, {}, float("nan"), float("nan"), float("nan"), len(frame), False,
                   f"not fitted: the CSV has no {', '.join(absent)} column (measure it again)")
    y = frame[LATENCY].to_numpy(dtype=float)
    x = np.column_stack([np.ones(len(frame))] +
                        [frame[TERMS[t][0]].to_numpy(dtype=float) for t in terms])
    scale = np.abs(x).max(axis=0)
    scale[scale == 0] = 1.0
    solution, *_ = np.linalg.lstsq(x / scale, y, rcond=None)
    beta = solution / scale  # ms per unit of each column
    predicted = x @ beta
    total = float(np.sum((y - y.mean()) ** 2))
    residual = float(np.sum((y - predicted) ** 2))
    return Fit(
        name=name,
        terms=terms,
        coefficients={t: float(b) * TERMS[t][2] for t, b in zip(terms, beta[1:])},
        intercept_us=float(beta[0]) * 1e3,
        r2=1.0 - residual / total if total > 0 else float("nan"),
        mape=float(np.mean(np.abs(predicted - y) / y)),
        n=len(frame),
        identifiable=int(np.linalg.matrix_rank(x / scale)) == x.shape[1],
    )


def explain(frame: pd.DataFrame, source: Path | str = "results") -> list[Fit]:
    """The three fits of `MODELS`; a CSV that cannot support them is a `UsageError`."""
    for column in ("macs", LATENCY):
        if column not in frame.columns:
            raise UsageError(f"{source} lacks the column {column}: not an mnv2prof CSV")
    for column in ("macs", "bytes_moved", "nodes", LATENCY):
        if column in frame.columns and not pd.api.types.is_numeric_dtype(frame[column]):
            raise UsageError(f"{source}: column {column} is not numeric")
    if frame[LATENCY].isna().any() or not (frame[LATENCY] > 0).all():
        raise UsageError(f"{source}: {LATENCY} must be positive in every row")
    for column in ("macs", "bytes_moved", "nodes"):  # a cost term must be a count in every row
        if column in frame.columns and (frame[column].isna().any() or (frame[column] < 0).any()):
            raise UsageError(f"{source}: {column} must be a count (>= 0) in every row")
    most_terms = max(len(terms) for _, terms in MODELS)
    if len(frame) < most_terms + 2:
        raise UsageError(
            f"{source} has {len(frame)} rows; the fits need at least {most_terms + 2} "
            "(one more than the coefficients of the largest model)"
        )
    return [fit(frame, name, terms) for name, terms in MODELS]


def explain_notes(fits: list[Fit]) -> list[str]:
    notes = [f"{f.name}: {f.missing}." for f in fits if f.missing]
    for f in fits:
        if not f.missing and not f.identifiable:
            notes.append(
                f"{f.name}: a column is a linear combination of the others over these rows "
                "(e.g. every variant has the same node count), so its coefficients are one of "
                "many equally good solutions; R^2 and error still hold."
            )
    ran = [f for f in fits if not f.missing]
    if len(ran) >= 2:
        first, best = ran[0], max(ran, key=lambda f: f.r2)
        notes.append(
            f"MACs alone explain R^2 = {first.r2:.3f} of the latency variance (mean error "
            f"{first.mape:.1%}); {best.name} explains {best.r2:.3f} (mean error {best.mape:.1%})."
        )
    return notes


def _coefficient(f: Fit, term: str) -> str:
    return f"{f.coefficients[term]:.4g}" if term in f.coefficients else "-"


EXPLAIN_COLUMNS = [
    Column("model", lambda f: f.name, justify="left"),
    Column("R^2", lambda f: "-" if f.missing else f"{f.r2:.3f}"),
    Column("error\n(%)", lambda f: "-" if f.missing else f"{100 * f.mape:.1f}"),
    *(Column(f"{name}\n({TERMS[term][1]})", lambda f, t=term: _coefficient(f, t))
      for term, name in (("macs", "MACs"), ("bytes", "bytes"), ("nodes", "nodes"))),
    Column(f"intercept\n({INTERCEPT_UNIT})",
           lambda f: "-" if f.missing else f"{f.intercept_us:.4g}"),
]


def explain_report(fits: list[Fit], source: Path | str) -> list[View | str]:
    """What `explain` prints: a table of the fits (a column per coefficient, "-" where a model
    has no such term), then the sentences under it."""
    title = (f"{source}: latency median (ms) fitted by least squares, {fits[0].n} rows, "
             "coefficients per unit of each term")
    legend = ("error = the mean absolute error of the fit's predictions, in % of the latency; "
              "the MACs, bytes and nodes columns are the fit's coefficients.")
    return [view_table(title, EXPLAIN_COLUMNS, fits), legend, *explain_notes(fits)]
