"""The contrast at a glance: for every row, its MACs and its latency as multiples of the
baseline's, two bars on one log scale around 1x, drawn with rich in the terminal's width.

A bar grows from the 1x line to the left (fewer MACs, faster than the baseline) or to the right
(more, slower). Where a row's two bars differ in length, MACs mislead about its cost: dwsep's
MACs bar reaching much further left than its latency bar is the depthwise convolution's memory
traffic, made visible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

MACS_STYLE, LATENCY_STYLE = "cyan", "magenta"
LABEL_WIDTH_MAX = 26


@dataclass(frozen=True)
class ContrastChart:
    rows: Sequence[tuple[str, float, float]]  # (label, MACs x, latency x), baseline at 1
    baseline: str

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        values = [v for _, m, t in self.rows for v in (m, t) if v > 0 and math.isfinite(v)]
        if not values:
            return
        lo, hi = math.log10(min(*values, 1.0)), math.log10(max(*values, 1.0))
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        label_width = min(LABEL_WIDTH_MAX, max(len(label) for label, _, _ in self.rows))
        value_width = 8
        width = max(10, options.max_width - label_width - 9 - value_width - 2)

        def column(value: float) -> int:
            return round((math.log10(value) - lo) / (hi - lo) * (width - 1))

        one = column(1.0)
        axis = [" "] * width
        for text, at in ((f"{10**lo:.2g}x", 0), ("1x", one), (f"{10**hi:.2g}x", width - len(
                f"{10**hi:.2g}x"))):
            start = min(max(0, at - (len(text) // 2 if at not in (0,) else 0)), width - len(text))
            axis[start:start + len(text)] = text
        yield Text(
            f"{'':<{label_width}} {'':<7}  {''.join(axis)}", style="dim", no_wrap=True
        )
        legend = Text(f"{'':<{label_width}} ")
        legend.append("MACs", style=MACS_STYLE).append(" and ")
        legend.append("latency", style=LATENCY_STYLE)
        legend.append(f" as multiples of {self.baseline}'s, log scale", style="dim")
        yield legend
        for label, macs_x, latency_x in self.rows:
            for name, value, style in (("MACs", macs_x, MACS_STYLE),
                                       ("latency", latency_x, LATENCY_STYLE)):
                line = Text(f"{label[:label_width] if name == 'MACs' else '':<{label_width}} "
                            f"{name:<7}  ", no_wrap=True)
                line.append_text(self._bar(value, column, one, width, style))
                line.append(f" {value:>6.2f}x" if math.isfinite(value) else "       -")
                yield line

    @staticmethod
    def _bar(value: float, column, one: int, width: int, style: str) -> Text:
        cells = [" "] * width
        cells[one] = "│"
        bar = Text(no_wrap=True)
        if not (value > 0 and math.isfinite(value)):
            return Text("".join(cells))
        at = column(value)
        start, end = (at, one) if at < one else (one, at)
        for i in range(start, end + 1):
            cells[i] = "█"
        for i, char in enumerate(cells):
            bar.append(char, style=style if char == "█" else "dim")
        return bar


def contrast_chart(rows: Sequence[tuple[str, float, float]], baseline: str) -> ContrastChart:
    return ContrastChart(tuple(rows), baseline)
