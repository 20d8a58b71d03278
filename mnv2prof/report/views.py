"""Tables that fit the terminal: a few columns that answer the question by default, every other
column one `--show GROUP` away (and always in the CSV and JSON), and any table folded to the
width it is printed at.

A `Column` names its header (with its unit), how to render its cell from a row, and its group;
`view_table` keeps the default group and the groups asked for and returns a `View`. A `View` is
drawn at the console's width (`COLUMNS`, else the terminal's, else 100 when not a terminal):
- its title breaks between phrases (at ", ", "; ", ": "), never inside one;
- a name in its first column longer than a quarter of the width is shortened (`shufflenet_v2_~1`)
  and a legend under the table gives it whole;
- columns that still do not fit go to a second table (and a third...), the first column repeated
  in each, so every number is printed whole: a cut cell ("9,…") is no number.
`as_view` turns any rich `Table` (a GPU table, a guideline's) into a `View`, so every table a
command prints folds the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from mnv2prof.errors import UsageError

DEFAULT = "default"
ALL = "all"
# Each command's column groups beyond its default view (the CSV always holds every column).
COMPARE_GROUPS = ("memory", "traffic", "stats", "roofline", "eager", "accuracy")
NETWORK_GROUPS = ("table", "memory", "stats")
LAYERS_GROUPS = ("traffic", "nodes")
GATE_GROUPS = ("stats",)
GAP = 2  # spaces between two columns (rich: a 1-cell pad, collapsed, and a blank rule)
NAME_SHARE = 4  # a first-column name may take a quarter of the width before it is shortened
NAME_MIN = 12  # ... and never fewer characters than this


@dataclass(frozen=True)
class Column:
    header: str  # names its unit; may hold a line break
    cell: Callable[[dict], str]
    group: str = DEFAULT
    justify: str = "right"


def parse_show(text: str | None, groups: Sequence[str], flag: str = "--show") -> frozenset[str]:
    """The comma-separated groups of `text` (None: none), each one of `groups` or `all`."""
    chosen = frozenset(g.strip() for g in (text or "").split(",") if g.strip())
    unknown = sorted(chosen - {*groups, ALL})
    if unknown:
        raise UsageError(
            f"{flag} {', '.join(unknown)}: choose from {', '.join((*groups, ALL))} "
            "(comma-separated)"
        )
    return frozenset(groups) if ALL in chosen else chosen


@dataclass
class View:
    """A table as text cells (rich markup allowed), drawn to fit the width it is printed at."""

    title: str
    headers: list[str]
    justify: list[str]
    rows: list[list[str]] = field(default_factory=list)
    sections: set[int] = field(default_factory=set)  # a rule under these rows (a total follows)
    keys: int = 1  # leading columns repeated in every folded part

    def add_row(self, *cells: str) -> None:
        self.rows.append([str(c) for c in cells])

    def add_section(self) -> None:
        """A rule under the last row added."""
        if self.rows:
            self.sections.add(len(self.rows) - 1)

    def column(self, header: str) -> list[str]:
        """The cells under `header` (markup removed): what a reader of the table sees."""
        i = self.headers.index(header)
        return [Text.from_markup(row[i]).plain for row in self.rows]

    def _widths(self, rows: Sequence[Sequence[str]]) -> list[int]:
        return [_width(h, [r[i] for r in rows]) for i, h in enumerate(self.headers)]

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        """At least the key columns and the widest other one (a part of one column), at most
        every column on one line."""
        widths = self._widths(self._shortened(options.max_width)[0])
        keys = widths[: self.keys]
        narrowest = sum(keys) + GAP * max(len(keys) - 1, 0)
        widest = max(widths[self.keys:], default=0) + (GAP if keys else 0)
        return Measurement(narrowest + widest, sum(widths) + GAP * max(len(widths) - 1, 0))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        for line in phrase_lines(self.title, width):
            yield Text(line, no_wrap=True)
        rows, legend = self._shortened(width)
        parts = fold(self._widths(rows), self.keys, width)
        for part in parts:
            yield self._table(part, rows)
            yield Text("")
        for line in phrase_lines(legend, width, indent="  "):
            yield Text(line, no_wrap=True)

    def _shortened(self, width: int) -> tuple[list[list[str]], str]:
        """The rows with their first-column names shortened where that helps, and the legend
        that gives them whole: to the length at which the table fits on one line when there is
        one (down to `NAME_MIN`), else to a `NAME_SHARE` of the width, so each folded part
        keeps room for numbers."""
        if not self.rows or self.justify[0] != "left":
            return self.rows, ""
        widths = self._widths(self.rows)
        excess = sum(widths) + GAP * (len(widths) - 1) - width
        if excess <= 0:
            return self.rows, ""
        header = _width(self.headers[0], [])
        fits = max(NAME_MIN, header, widths[0] - excess)
        limit = fits if widths[0] - fits >= excess else max(NAME_MIN, width // NAME_SHARE)
        long = [r[0] for r in self.rows if Text.from_markup(r[0]).cell_len > limit]
        if not long:
            return self.rows, ""
        short: dict[str, str] = {}
        for number, name in enumerate(dict.fromkeys(long), start=1):
            tag = f"~{number}"
            short[name] = Text.from_markup(name).plain[: limit - len(tag)].rstrip() + tag
        rows = [[short.get(r[0], r[0]), *r[1:]] for r in self.rows]
        legend = "names shortened: " + "; ".join(f"{s} = {n}" for n, s in short.items()) + "."
        return rows, legend

    def _table(self, columns: Sequence[int], rows: Sequence[Sequence[str]]) -> Table:
        table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False,
                      collapse_padding=True)
        for i in columns:
            table.add_column(self.headers[i], justify=self.justify[i], no_wrap=True)
        for index, row in enumerate(rows):
            table.add_row(*(row[i] for i in columns), end_section=index in self.sections)
        return table


def _width(header: str, cells: Iterable[str]) -> int:
    """The cells a column needs: its widest header line or cell."""
    lines = [Text.from_markup(line).cell_len for line in header.split("\n")]
    return max([*lines, *(Text.from_markup(c).cell_len for c in cells)])


def fold(widths: Sequence[int], keys: int, width: int) -> list[list[int]]:
    """The columns of each part, in order: the first `keys` columns in every part, the others
    added while the part fits `width` (a column wider than any part gets a part of its own)."""
    key_columns = list(range(min(keys, len(widths))))
    used = sum(widths[i] for i in key_columns) + GAP * max(len(key_columns) - 1, 0)
    parts: list[list[int]] = [list(key_columns)]
    for i in range(len(key_columns), len(widths)):
        part = parts[-1]
        added = widths[i] + (GAP if part else 0)
        if len(part) > len(key_columns) and used + added > width:
            parts.append(list(key_columns))
            used = sum(widths[k] for k in key_columns) + GAP * max(len(key_columns) - 1, 0)
            added = widths[i] + (GAP if key_columns else 0)
        parts[-1].append(i)
        used += added
    return parts


def phrases(title: str) -> list[str]:
    """`title` cut after each ", ", "; " or ": " outside brackets: "(CPU, 1 thread(s))" stays
    one phrase."""
    pieces, start, depth = [], 0, 0
    for i, ch in enumerate(title):
        depth += (ch in "([") - (ch in ")]")
        if depth == 0 and ch in ",;:" and title[i + 1: i + 2] == " ":
            pieces.append(title[start: i + 1])
            start = i + 2
    return [p for p in (*pieces, title[start:]) if p.strip()]


def phrase_lines(title: str, width: int, indent: str = "") -> list[str]:
    """`title` in lines of at most `width`, broken between `phrases`, never inside one, each
    line after the first `indent`ed; a phrase longer than a line alone is broken between
    words, continued two spaces further in."""
    import textwrap

    lines: list[str] = []
    for phrase in phrases(title.strip()):
        lead = indent if lines else ""
        if lines and len(lines[-1]) + 1 + len(phrase) <= width:
            lines[-1] += " " + phrase
        elif len(lead) + len(phrase) <= width:
            lines.append(lead + phrase)
        else:
            lines += textwrap.wrap(lead + phrase, width, subsequent_indent=indent + "  ",
                                   break_long_words=False, break_on_hyphens=False)
    return lines


def view_table(
    title: str, columns: Iterable[Column], rows: Sequence[dict],
    show: frozenset[str] = frozenset(), total: bool = False,
) -> View:
    """The view of `rows` with the default columns and those of the groups in `show`; with
    `total`, a rule above the last row."""
    shown = [c for c in columns if c.group == DEFAULT or c.group in show]
    view = View(title, [c.header for c in shown], [c.justify for c in shown])
    for index, row in enumerate(rows):
        if total and index == len(rows) - 1:
            view.add_section()
        view.add_row(*(column.cell(row) for column in shown))
    return view


def as_view(table: Table) -> View:
    """A rich `Table` as a `View`: its title, headers, cells and sections, to be folded."""
    columns = table.columns
    cells = [list(column.cells) for column in columns]
    view = View(_markup(table.title or ""), [_markup(c.header) for c in columns],
                [c.justify for c in columns])
    for index in range(table.row_count):
        view.add_row(*(_markup(cells[c][index]) for c in range(len(columns))))
        if table.rows[index].end_section:
            view.add_section()
    return view


def _markup(value: object) -> str:
    return value.markup if isinstance(value, Text) else str(value)
