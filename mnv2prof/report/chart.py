"""The contrast at a glance: for every row, its MACs and its latency as multiples of the
baseline's, two bars on one log scale around 1x, drawn with rich in the terminal's width.

A bar grows from the 1x line to the left (fewer MACs, faster than the baseline) or to the right
(more, slower), its length proportional to the log of the ratio (`LogAxis`: as many cells for
2x as for 0.5x, at every width). The axis always spans at least 0.5x to 2x, so differences of a
few percent stay short, and widens to the 1-2-5 values (0.1x, 0.2x, 5x, 10x, ...) just past
the smallest and largest ratios.

Where a row's two bars differ in length, MACs mislead about its cost: dwsep's MACs bar reaching
much further left than its latency bar is the depthwise convolution's memory traffic, made
visible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

MACS_STYLE, LATENCY_STYLE = "cyan", "magenta"
LABEL_WIDTH_MAX = 26
SPAN_MIN = (0.5, 2.0)  # the axis always reaches these: a 0.99x bar stays short beside them
NICE_STEPS = (1, 2, 5)  # the axis ends on 1-2-5 values (0.1x, 0.2x, 0.5x, 1x, 2x, 5x, 10x...)


def ratio_text(value: float) -> str:
    """An axis label: `0.5x`, `1x`, `2x`, `0.05x`, `20x`, `500x`."""
    return f"{value:.0f}x" if value >= 1 else f"{value:.2g}x"


def _nice(value: float, up: bool) -> float:
    """The 1-2-5 value nearest `value` on the side away from 1x (up: the smallest >= value)."""
    decade = math.floor(math.log10(value))
    candidates = [step * 10.0**d for d in (decade - 1, decade, decade + 1) for step in NICE_STEPS]
    fits = [c for c in candidates if (c >= value * (1 - 1e-9) if up else c <= value * (1 + 1e-9))]
    return min(fits) if up else max(fits)


@dataclass(frozen=True)
class LogAxis:
    """A log scale of `width` cells from `low`x (cell 0) to `high`x (cell width - 1): a bar's
    length is proportional to |log(ratio)|, the same number of cells per factor everywhere."""

    low: float
    high: float
    width: int

    @classmethod
    def spanning(cls, values: Sequence[float], width: int) -> LogAxis:
        """The axis for `values`: at least `SPAN_MIN`, wider where a value lies outside it, its
        ends rounded outwards to 1-2-5 values."""
        finite = [v for v in values if v > 0 and math.isfinite(v)]
        low = _nice(min([SPAN_MIN[0], *finite]), up=False)
        high = _nice(max([SPAN_MIN[1], *finite]), up=True)
        return cls(low, high, width)

    @property
    def cells_per_decade(self) -> float:
        return (self.width - 1) / (math.log10(self.high) - math.log10(self.low))

    @property
    def one(self) -> int:
        """The cell of the 1x line."""
        return self.column(1.0)

    def column(self, value: float) -> int:
        at = round((math.log10(value) - math.log10(self.low)) * self.cells_per_decade)
        return min(max(at, 0), self.width - 1)

    def bar(self, value: float) -> tuple[int, int]:
        """(first cell, length) of `value`'s bar: from beside the 1x line outwards, round(
        |log10 value| x cells per decade) cells long (0 for a value within half a cell of 1)."""
        length = round(abs(math.log10(value)) * self.cells_per_decade)
        if value >= 1:
            return self.one + 1, min(length, self.width - 1 - self.one)
        length = min(length, self.one)
        return self.one - length, length

    def labels(self) -> str:
        """The axis line, `width` characters: the ends and 1x always, then 10^k, 0.5x and 2x
        where they lie inside and do not crowd a label already placed."""
        ticks = [1.0, self.low, self.high]
        ticks += [10.0**k for k in range(math.ceil(math.log10(self.low)),
                                         math.floor(math.log10(self.high)) + 1)]
        ticks += [v for v in SPAN_MIN if self.low < v < self.high]
        line = [" "] * self.width
        taken: list[tuple[int, int]] = []
        for value in dict.fromkeys(ticks):  # in order of priority, each once
            text = ratio_text(value)
            if value == self.low:
                start = 0
            elif value == self.high:
                start = self.width - len(text)
            else:
                start = self.column(value) - len(text) // 2
            start = min(max(start, 0), self.width - len(text))
            end = start + len(text)
            if any(start <= b and a <= end for a, b in taken):  # one blank cell between labels
                continue
            taken.append((start, end))
            line[start:end] = text
        return "".join(line)


@dataclass(frozen=True)
class ContrastChart:
    rows: Sequence[tuple[str, float, float]]  # (label, MACs x, latency x), baseline at 1
    baseline: str

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        values = [v for _, m, t in self.rows for v in (m, t) if v > 0 and math.isfinite(v)]
        if not values:
            return
        label_width = min(LABEL_WIDTH_MAX, max(len(label) for label, _, _ in self.rows))
        value_width = 8
        axis = LogAxis.spanning(values, max(10, options.max_width - label_width - 9
                                            - value_width - 2))
        yield Text(f"{'':<{label_width}} {'':<7}  {axis.labels()}", style="dim", no_wrap=True)
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
                line.append_text(bar_text(axis, value, style))
                line.append(f" {value:>6.2f}x" if math.isfinite(value) else "       -")
                yield line


def bar_text(axis: LogAxis, value: float, style: str) -> Text:
    """One bar on `axis`: the 1x line (dim), and `value`'s bar of blocks beside it."""
    bar = Text(no_wrap=True)
    start, length = axis.bar(value) if value > 0 and math.isfinite(value) else (0, 0)
    for i in range(axis.width):
        if i == axis.one:
            bar.append("│", style="dim")
        elif start <= i < start + length:
            bar.append("█", style=style)
        else:
            bar.append(" ")
    return bar


def contrast_chart(rows: Sequence[tuple[str, float, float]], baseline: str) -> ContrastChart:
    return ContrastChart(tuple(rows), baseline)
