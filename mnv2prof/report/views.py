"""Tables in views that fit a terminal: a few columns that answer the question by default, every
other column one `--show GROUP` away (and always in the CSV and JSON).

A `Column` names its header (with its unit), how to render its cell from a row, and its group;
`view_table` keeps the default group and the groups asked for. Tables use a light box (no
vertical rules) so a default view of seven columns fits 100 characters without a cut cell.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from rich import box
from rich.table import Table

from mnv2prof.errors import UsageError

DEFAULT = "default"
ALL = "all"
# Each command's column groups beyond its default view (the CSV always holds every column).
COMPARE_GROUPS = ("memory", "traffic", "stats", "roofline", "eager", "accuracy")
NETWORK_GROUPS = ("table", "memory")
LAYERS_GROUPS = ("traffic", "nodes")
GATE_GROUPS = ("stats",)


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


def view_table(
    title: str, columns: Iterable[Column], rows: Iterable[dict], show: frozenset[str] = frozenset()
) -> Table:
    """The table of `rows` with the default columns and those of the groups in `show`."""
    shown = [c for c in columns if c.group == DEFAULT or c.group in show]
    table = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    for column in shown:
        table.add_column(column.header, justify=column.justify, no_wrap=True)
    for row in rows:
        table.add_row(*(column.cell(row) for column in shown))
    return table
