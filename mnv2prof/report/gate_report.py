"""A `gate.GateResult` -> rich verdict table, Markdown (CI step summaries) and JUnit XML.

All three render the same cells (`verdict_cells`), so a CI log, a step summary and a test report
never disagree. Every header names its unit.
"""

from __future__ import annotations

from xml.etree import ElementTree

from rich import box
from rich.table import Table

from mnv2prof.gating.decide import GateResult, Latency, RowVerdict


def verdict_cells(result: GateResult) -> tuple[list[str], list[list[str]]]:
    """(headers, rows of text cells) of the verdict table."""
    by_spec = result.match_by == "spec"  # a profile: one variant at many grid points
    headers = ["spec", "threads"] if by_spec else ["variant"]
    headers += ["baseline (ms)", "current (ms)"]
    if result.relative_to:
        ref = result.relative_to
        headers += [f"baseline / {ref} (x)", f"current / {ref} (x)"]
    headers += ["ratio (x)", "p-value", "cost", "verdict"]
    rows = []
    for r in result.rows:
        cells = [f"{r.current_spec}{r.target}", str(r.threads)] if by_spec else [r.variant]
        cells += [f"{r.baseline_ms:.3f}", f"{r.current_ms:.3f}"]
        if result.relative_to:
            cells += [f"{r.baseline_rel_x:.3f}", f"{r.current_rel_x:.3f}"]
        p = "-" if r.latency is Latency.REFERENCE else f"{r.p_value:.2g}"
        cells += [f"{r.ratio_x:.3f}", p, r.cost_summary(), r.verdict]
        rows.append(cells)
    return headers, rows


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
STATS_HEADERS = ("p-value", "threads")


def verdict_table(result: GateResult, show: frozenset[str] = frozenset()) -> Table:
    headers, rows = verdict_cells(result)
    keep = [i for i, h in enumerate(headers)
            if "stats" in show or not (h in STATS_HEADERS or h.startswith("baseline / "))]
    table = Table(
        title=f"mnv2prof gate, {result.mode}: ratio = current / baseline",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for i in keep:
        table.add_column(headers[i].replace(" (", "\n("), no_wrap=True,
                         justify="right" if _numeric(headers[i]) else "left")
    for verdict, cells in zip(result.rows, rows, strict=True):
        style = _STYLE.get(verdict.verdict.split(",")[0])
        shown = [cells[i] for i in keep]
        table.add_row(*shown[:-1], f"[{style}]{shown[-1]}[/]" if style else shown[-1])
    return table


def markdown_summary(result: GateResult) -> str:
    headers, rows = verdict_cells(result)
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


def junit_xml(result: GateResult) -> str:
    """One <testcase> per row; a <failure> for each failed row (JUnit XML as CI systems read it)."""
    headers, rows = verdict_cells(result)
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


def gate_report(result: GateResult, show: frozenset[str] = frozenset()) -> list[Table | str]:
    """What `gate` prints: the verdict table, the rule, and the notes under it."""
    rule = (f"A row fails when ratio > {1 + result.policy.max_slowdown:.2f} and the one-sided "
            f"test gives p < {result.policy.alpha:g}, or when its counted cost changed.")
    return [verdict_table(result, show), rule, *notes(result)]


def gate_outputs(result: GateResult) -> dict[str, str]:
    """The gate's files by flag: --markdown-summary and --junit."""
    return {"markdown_summary": markdown_summary(result), "junit": junit_xml(result)}
