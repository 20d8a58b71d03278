"""A `gate.GateResult` -> rich verdict table, Markdown (CI step summaries) and JUnit XML.

All three render the same cells (`verdict_cells`), so a CI log, a step summary and a test report
never disagree. Every header names its unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from xml.etree import ElementTree

import pandas as pd

from mnv2prof.gating.decide import GateResult, Latency, RowVerdict
from mnv2prof.report.cells import ms_text
from mnv2prof.report.views import View


@dataclass(frozen=True)
class Headline:
    """A row's fastest calls, baseline and current, and their ratio with its interval: the
    headline every other view gives, shown beside the gate's own statistic."""

    baseline_ms: float
    current_ms: float
    ratio_x: float
    low_x: float
    high_x: float


def gate_headline(baseline: pd.DataFrame, current: pd.DataFrame,
                  match_by: str = "variant") -> dict[str, Headline]:
    """Each current row's `Headline` by its key (`GateResult.key`), where both sides have a
    fastest call (a baseline from before them has none)."""
    from mnv2prof.files.results import row_key
    from mnv2prof.measure.stats import ratio_interval

    stored = {row_key(r, match_by): r for r in baseline.to_dict("records")}
    lines = {}
    for row in current.to_dict("records"):
        key = row_key(row, match_by)
        base = stored.get(key, {})
        values = [_number(base.get("latency_min_ms")), _number(row.get("latency_min_ms")),
                  _number(base.get("latency_min_spread_rel")),
                  _number(row.get("latency_min_spread_rel"))]
        if any(v is None for v in values) or not values[0] > 0:
            continue
        b, c, b_spread, c_spread = values
        low, high = ratio_interval(c / b, c_spread, b_spread)
        lines[key] = Headline(b, c, c / b, low, high)
    return lines


def _number(value) -> float | None:
    """A cell as a finite number (a stored baseline's cells are text), or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def verdict_cells(result: GateResult, headline: dict[str, Headline] | None = None
                  ) -> tuple[list[str], list[list[str]]]:
    """(headers, rows of text cells) of the verdict table: with `headline`, each row's fastest
    calls and their ratio first, then the statistic the verdict reads (medians)."""
    headline = headline or {}
    by_spec = result.match_by == "spec"  # a profile: one variant at many grid points
    headers = ["spec", "threads"] if by_spec else ["variant"]
    if headline:
        headers += ["baseline min (ms)", "current min (ms)", "min ratio (x)"]
    headers += ["baseline (ms)", "current (ms)"]  # medians: the statistic the verdict reads
    if result.relative_to:
        ref = result.relative_to
        headers += [f"baseline / {ref} (x)", f"current / {ref} (x)"]
    headers += ["ratio (x)", "p-value", "cost", "verdict"]
    rows = []
    for r in result.rows:
        cells = [f"{r.current_spec}{r.target}", str(r.threads)] if by_spec else [r.variant]
        if headline:
            h = headline.get(result.key(r))
            cells += ([ms_text(h.baseline_ms), ms_text(h.current_ms), _ratio(h)] if h
                      else ["-", "-", "-"])
        cells += [ms_text(r.baseline_ms), ms_text(r.current_ms)]
        if result.relative_to:
            cells += [f"{r.baseline_rel_x:.3f}", f"{r.current_rel_x:.3f}"]
        p = "-" if r.latency is Latency.REFERENCE else f"{r.p_value:.2g}"
        cells += [f"{r.ratio_x:.3f}", p, r.cost_summary(), r.verdict]
        rows.append(cells)
    return headers, rows


def _decided_on(result: GateResult) -> str:
    """What the verdict's ratio is of (gating.decide.decide): medians, or per-round ratios' medians."""
    return "median" if not result.relative_to else "paired"


def _ratio(h: Headline) -> str:
    if not (math.isfinite(h.low_x) and math.isfinite(h.high_x)):
        return f"{h.ratio_x:.3f} ± -"
    return f"{h.ratio_x:.3f} ± {max(h.ratio_x - h.low_x, h.high_x - h.ratio_x):.3f}"


def notes(result: GateResult) -> list[str]:
    """Lines for under the table: environment differences, spec changes, the summary."""
    lines = []
    if result.env_differences:
        listed = "; ".join(f"{k} {b!r} now {c!r}" for k, b, c in result.env_differences)
        lines.append(f"Environment differs from the baseline's: {listed}.")
    for r in result.rows:
        if r.baseline_spec != r.current_spec:
            lines.append(
                f"{result.key(r)}: spec {r.baseline_spec} in the baseline, {r.current_spec} now."
            )
    lines.append(result.summary())
    return lines


_STYLE = {"regression": "bold red", "cost changed": "bold red", "faster": "green"}


# Columns of the verdict table kept out of the default view (`--show stats` adds them); the
# Markdown summary and the JUnit report always carry every column.
STATS_HEADERS = ("p-value", "threads", "baseline (ms)", "current (ms)")


def verdict_table(result: GateResult, show: frozenset[str] = frozenset(),
                  headline: dict[str, Headline] | None = None) -> View:
    """The verdicts: with `headline` the fastest calls lead (as in every other view) and the
    medians the verdict reads are one `--show stats` away, their ratio always shown."""
    headers, rows = verdict_cells(result, headline)
    stats = set(STATS_HEADERS) if headline else {"p-value", "threads"}
    keep = [i for i, h in enumerate(headers)
            if "stats" in show or not (h in stats or h.startswith("baseline / "))]
    title = (f"mnv2prof gate, {result.mode}: ratio = current / baseline; "
             + ("min = the fastest call; " if headline else "")
             + f"the verdict reads the {_statistic(result)} and a Mann-Whitney test")
    view = View(title, [_header(headers[i], result) for i in keep],
                ["right" if _numeric(headers[i]) else "left" for i in keep])
    for verdict, cells in zip(result.rows, rows, strict=True):
        style = _STYLE.get(verdict.verdict.split(",")[0])
        shown = [cells[i] for i in keep]
        view.add_row(*shown[:-1], f"[{style}]{shown[-1]}[/]" if style else shown[-1])
    return view


def _statistic(result: GateResult) -> str:
    if result.relative_to:
        return f"median of the per-round ratios to {result.relative_to}"
    return "ratio of medians"


def _header(header: str, result: GateResult) -> str:
    """A header on two lines, split after its first word (`baseline` / `min (ms)`), a ratio to
    the reference before its unit (`current / conv` / `(x)`); the medians' columns say they
    are."""
    header = {"baseline (ms)": "baseline median (ms)", "current (ms)": "current median (ms)",
              "ratio (x)": f"{_decided_on(result)} ratio (x)"}.get(header, header)
    if " / " in header:
        name, _, unit = header.rpartition(" (")
        return f"{name}\n({unit}"
    return header.replace(" ", "\n", 1)


def markdown_summary(result: GateResult, headline: dict[str, Headline] | None = None) -> str:
    headers, rows = verdict_cells(result, headline)
    lines = [
        f"### mnv2prof gate: {'FAIL' if result.failed else 'PASS'}",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if _numeric(h) else "---" for h in headers) + "|",
    ]
    for verdict, cells in zip(result.rows, rows, strict=True):
        if verdict.failed:
            cells = [*cells[:-1], f"**{cells[-1]}**"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += notes(result)
    return "\n".join(lines) + "\n"


def _numeric(header: str) -> bool:
    return header.endswith(")") or header in ("p-value", "threads")


def junit_xml(result: GateResult, headline: dict[str, Headline] | None = None) -> str:
    """One <testcase> per row; a <failure> for each failed row (JUnit XML as CI systems read it)."""
    headers, rows = verdict_cells(result, headline)
    suite = ElementTree.Element(
        "testsuite",
        name=f"mnv2prof gate ({result.mode})",
        tests=str(len(result.rows)),
        failures=str(len(result.failures)),
        errors="0",
        skipped="0",
    )
    for verdict, cells in zip(result.rows, rows, strict=True):
        case = ElementTree.SubElement(
            suite, "testcase", classname="mnv2prof.gate", name=_case_name(result, verdict)
        )
        details = "; ".join(f"{h}: {c}" for h, c in zip(headers, cells, strict=True))
        if verdict.failed:
            failure = ElementTree.SubElement(
                case, "failure", message=_failure_message(result, verdict), type=verdict.verdict
            )
            failure.text = details
        else:
            ElementTree.SubElement(case, "system-out").text = details
    return junit_document(suite)


def junit_document(suite: ElementTree.Element) -> str:
    """One test suite as a JUnit XML document (<testsuites> around it), as CI systems read it."""
    root = ElementTree.Element("testsuites")
    root.append(suite)
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(root, "unicode") + "\n"


def _case_name(result: GateResult, r: RowVerdict) -> str:
    """The spec; with a profile also the threads, which tell grid points apart as well."""
    return result.key(r) if result.match_by == "spec" else f"{r.current_spec}{r.target}"


def _failure_message(result: GateResult, r: RowVerdict) -> str:
    parts = []
    if r.latency is Latency.REGRESSION:
        parts.append(f"{r.ratio_x:.2f}x slower than the baseline (p = {r.p_value:.2g})")
    if r.cost_failed:
        parts.append(f"counted cost changed: {r.cost_summary()}")
    return f"{result.key(r)}: " + "; ".join(parts)


def gate_report(result: GateResult, show: frozenset[str] = frozenset(),
                headline: dict[str, Headline] | None = None) -> list[View | str]:
    """What `gate` prints: the verdict table (with `headline`, `gate_headline`'s fastest calls
    first), the rule, and the notes under it."""
    rule = (f"A row fails when its {_decided_on(result)} ratio > "
            f"{1 + result.policy.max_slowdown:.2f} and the one-sided test gives p < "
            f"{result.policy.alpha:g}, or when its counted cost changed.")
    return [verdict_table(result, show, headline), rule, *notes(result)]


def gate_outputs(result: GateResult, headline: dict[str, Headline] | None = None
                 ) -> dict[str, str]:
    """The gate's files by flag: --markdown-summary and --junit."""
    return {"markdown_summary": markdown_summary(result, headline),
            "junit": junit_xml(result, headline)}
