"""Point labels that never overlap and never leave the axes, for the figures of plot.py.

Each label is tried at offsets around its point, nearest first (8 directions, 5 distances); the
first whose box lies inside the axes and clear of every label and marker placed so far is kept,
with a thin leader line when it sits away from its point. A label that finds no place becomes a
number beside its point, and the numbers are listed beside the axes (`numbered_list`). Boxes are
measured with the figure's renderer, so the check is what the file shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DIRECTIONS = [(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)]
DISTANCES = (6, 12, 20, 30, 42)  # points from the marker's centre
LEADER_FROM = 12  # a label this far away or further gets a leader line
MARKER_PT = 4.0  # half the box kept clear around every marker, in points
FONT_SIZE = 7.0


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    text: str


def _box(artist, renderer):
    """The box of a text's letters alone (an annotation's own box also holds its leader)."""
    from matplotlib.text import Annotation, Text

    if isinstance(artist, Annotation):
        artist.update_positions(renderer)
    return Text.get_window_extent(artist, renderer)


def _clear(box, taken, inside) -> bool:
    return (inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0
            and box.y1 <= inside.y1 and not any(box.overlaps(other) for other in taken))


def _marker_boxes(ax, points: Sequence[Point]):
    from matplotlib.transforms import Bbox

    half = MARKER_PT * ax.figure.dpi / 72
    boxes = []
    for p in points:
        x, y = ax.transData.transform((p.x, p.y))
        boxes.append(Bbox.from_bounds(x - half, y - half, 2 * half, 2 * half))
    return boxes


def place(ax, point: Point, text: str, taken: list, inside, renderer, size: float = FONT_SIZE):
    """Annotate `point` with `text` at the nearest offset clear of `taken` and inside `inside`;
    the annotation (its box added to `taken`), or None when no offset is free."""
    for distance in DISTANCES:
        for dx, dy in DIRECTIONS:
            norm = math.hypot(dx, dy)
            offset = (distance * dx / norm, distance * dy / norm)
            leader = ({"arrowstyle": "-", "lw": 0.5, "color": "0.45", "shrinkA": 0,
                       "shrinkB": MARKER_PT} if distance >= LEADER_FROM else None)
            label = ax.annotate(
                text, (point.x, point.y), xytext=offset, textcoords="offset points",
                fontsize=size, ha={1: "left", 0: "center", -1: "right"}[dx],
                va={1: "bottom", 0: "center", -1: "top"}[dy], arrowprops=leader,
                annotation_clip=False)
            box = _box(label, renderer)
            if _clear(box, taken, inside):
                taken.append(box)
                return label
            label.remove()
    return None


def place_labels(ax, points: Sequence[Point], reserved: Sequence = ()) -> list[tuple[int, str]]:
    """Label every point (`place`), clear of the markers and of the `reserved` boxes (a legend);
    a label with no room becomes a number. Returns the (number, label) pairs numbered (number
    0: no room even for a number, the label then gives the point's coordinates)."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer).shrunk(0.995, 0.995)
    taken = [*_marker_boxes(ax, points), *reserved]
    numbered: list[tuple[int, str]] = []
    for point in points:
        if place(ax, point, point.text, taken, inside, renderer) is not None:
            continue
        number = len(numbered) + 1
        if place(ax, point, str(number), taken, inside, renderer, FONT_SIZE - 0.5) is None:
            numbered.append((0, f"{point.text} (at {point.x:.3g}, {point.y:.3g})"))
        else:
            numbered.append((number, point.text))
    return numbered


def text_boxes(fig) -> list:
    """The window boxes of every visible, non-empty text in `fig` but the axis tick labels and
    titles: what must not overlap (what the figure test checks)."""
    from matplotlib.text import Annotation

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = []
    for ax in fig.axes:
        for text in ax.texts:
            if text.get_visible() and text.get_text():
                boxes.append((text.get_text(), _box(text, renderer), isinstance(text, Annotation)))
    for text in fig.texts:
        if text.get_visible() and text.get_text():
            boxes.append((text.get_text(), _box(text, renderer), False))
    return boxes
