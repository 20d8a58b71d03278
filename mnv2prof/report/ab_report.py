"""An A/B gate's verdicts (gating.ab.AbResult) -> rich table, Markdown (a CI step summary) and
JUnit XML. All three render the same cells (`ab_cells`); every header names its unit. An
inconclusive row is a skipped JUnit case and a line saying the budget that would tell."""

from __future__ import annotations

from xml.etree import ElementTree

from rich import box
from rich.markup import escape
from rich.table import Table

from mnv2prof.gating.ab import AbResult, AbRow
from mnv2prof.measure.paired import PairVerdict
from mnv2prof.report.gate_report import junit_document

HEADERS = ["row", "base min (ms)", "change min (ms)", "ratio ± 95% CI (x)", "detectable (%)",
           "cost", "verdict"]
_STYLE = {"slower": "bold red", "cost changed": "bold red", "faster": "green",
          "inconclusive": "yellow"}


def ab_cells(result: AbResult) -> list[list[str]]:
    """The text cells of each row, in `HEADERS`' order."""
    rows = []
    for r in result.rows:
        p = r.paired
        half = max(p.ratio - p.ci_low, p.ci_high - p.ratio)
        mde = f"{100 * p.mde_rel:.1f}" if p.mde_rel != float("inf") else "-"
        rows.append([f"{r.name}{r.target}", f"{r.base_ms:.3f}", f"{r.change_ms:.3f}",
                     f"{p.ratio:.3f} ± {half:.3f}", mde, _cost(r), r.verdict])
    return rows


def _cost(row: AbRow) -> str:
    if not row.cost_changes:
        return "same"
    return ", ".join(f"{c.column} {c.current / c.baseline:.2f}x" if c.baseline
                     else f"{c.column} 0->{c.current}" for c in row.cost_changes)


def ab_table(result: AbResult) -> Table:
    table = Table(title=f"mnv2prof gate against {escape(result.against)}: ratio = change / base, "
                  f"{result.estimator}", title_justify="left", header_style="bold",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for header in HEADERS:
        table.add_column(header.replace(" (", "\n("), no_wrap=True,
                         justify="left" if header in ("row", "cost", "verdict") else "right")
    for row, cells in zip(result.rows, ab_cells(result), strict=True):
        style = _STYLE.get(cells[-1].split(",")[0])
        cells[-2] = "changed" if row.cost_changes else "same"  # the note lists the changes
        shown = [escape(c) for c in cells]
        table.add_row(*shown[:-1], f"[{style}]{shown[-1]}[/]" if style else shown[-1])
    return table


def ab_notes(result: AbResult) -> list[str]:
    """The rule, what the run could see, and the summary."""
    policy = result.policy
    lines = [
        f"Base and change timed in the same {result.rounds} rounds (order alternating); a row "
        f"fails when the median paired ratio exceeds {1 + policy.max_slowdown:.2f} and the sign "
        f"test gives p < {policy.alpha:g}, or when its counted cost changed"
        + (" (allowed: --allow-cost-change)." if policy.allow_cost_change else "."),
        "detectable = the smallest slowdown this run could call significant at its spread.",
    ]
    for row in result.rows:
        if row.cost_changes:
            allowed = " (allowed)" if row.cost_change_allowed else ""
            lines.append(f"{row.name}{row.target}: counted cost changed{allowed}: {_cost(row)}.")
    if result.inconclusive:
        names = ", ".join(f"{r.name}{r.target}" for r in result.inconclusive)
        lines.append(f"! inconclusive: {names} could hide a slowdown of "
                     f"{100 * policy.max_slowdown:.0f}% (detectable > the tolerance); "
                     f"--budget {result.suggested_budget():g} should tell.")
    lines.append(summary(result))
    return lines


def summary(result: AbResult) -> str:
    state = "FAIL" if result.failures else "PASS"
    text = (f"{state}: {len(result.failures)} of {len(result.rows)} rows failed (against "
            f"{result.against}, max slowdown {result.policy.max_slowdown:.0%}, alpha "
            f"{result.policy.alpha:g})")
    if result.inconclusive:
        text += f"; {len(result.inconclusive)} inconclusive"
    return text


def ab_report(result: AbResult) -> list:
    return [ab_table(result), *ab_notes(result)]


def ab_markdown(result: AbResult) -> str:
    lines = [f"### mnv2prof gate against {result.against}: "
             f"{'FAIL' if result.failures else 'PASS'}", "",
             "| " + " | ".join(HEADERS) + " |",
             "|" + "|".join("---" if h in ("row", "cost", "verdict") else "---:"
                            for h in HEADERS) + "|"]
    for row, cells in zip(result.rows, ab_cells(result), strict=True):
        if row.failed:
            cells = [*cells[:-1], f"**{cells[-1]}**"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", *ab_notes(result)]) + "\n"


def ab_junit(result: AbResult) -> str:
    """One <testcase> per row: <failure> when it failed, <skipped> when inconclusive."""
    suite = ElementTree.Element(
        "testsuite", name=f"mnv2prof gate against {result.against}",
        tests=str(len(result.rows)), failures=str(len(result.failures)), errors="0",
        skipped=str(len(result.inconclusive)))
    for row, cells in zip(result.rows, ab_cells(result), strict=True):
        case = ElementTree.SubElement(suite, "testcase", classname="mnv2prof.gate",
                                      name=f"{row.name}{row.target}")
        details = "; ".join(f"{h}: {c}" for h, c in zip(HEADERS, cells, strict=True))
        if row.failed:
            ElementTree.SubElement(case, "failure", message=f"{row.name}: {row.verdict}",
                                   type=row.verdict).text = details
        elif row.paired.verdict is PairVerdict.INCONCLUSIVE:
            ElementTree.SubElement(case, "skipped", message="inconclusive").text = details
        else:
            ElementTree.SubElement(case, "system-out").text = details
    return junit_document(suite)


def ab_outputs(result: AbResult) -> dict[str, str]:
    """The gate's files by flag: --markdown-summary and --junit."""
    return {"markdown_summary": ab_markdown(result), "junit": ab_junit(result)}
