"""A small scatter plot (latency vs GWP per query) with its Pareto front, drawn via the Line API."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from console.tui.widgets.powerplot import GUTTER, nice_ceiling

_DIM = Style(color="grey50")
_FRONT = Style(color="#ffd75f", bold=True)


@dataclass(frozen=True)
class Point:
    """A labelled point; `front` marks it as on the Pareto front."""

    tag: str  # one character drawn as the marker (A, B, ...)
    x: float
    y: float
    color: str
    front: bool = False


def scatter_lines(points: list[Point], width: int, height: int, x_label: str, y_label: str) -> list[Strip]:
    """The plot as `height` strips: y title, grid with markers and front line, x labels and title."""
    blank = Strip([Segment(" " * max(0, width))], max(0, width))
    if width < GUTTER + 6 or height < 5:
        return [blank] * max(0, height)
    pw, ph = width - GUTTER, height - 3
    x_top = nice_ceiling(max((p.x for p in points), default=1.0) * 1.1)
    y_top = nice_ceiling(max((p.y for p in points), default=1.0) * 1.1)
    grid: list[list[tuple[str, Style | None]]] = [[(" ", None)] * pw for _ in range(ph)]

    def cell(p: Point) -> tuple[int, int]:
        col = min(pw - 1, max(0, round(p.x / x_top * (pw - 1))))
        row = min(ph - 1, max(0, round((1 - p.y / y_top) * (ph - 1))))
        return col, row

    front = sorted((p for p in points if p.front), key=lambda p: p.x)
    for a, b in itertools.pairwise(front):  # dotted staircase through the front
        (c0, r0), (c1, r1) = cell(a), cell(b)
        for c in range(c0 + 1, c1):
            grid[r0][c] = ("·", _FRONT)
        for r in range(min(r0, r1), max(r0, r1) + 1):
            grid[r][c1] = ("·", _FRONT)
    for p in points:
        col, row = cell(p)
        grid[row][col] = (p.tag[:1], Style(color=p.color, bold=True, reverse=p.front))
    strips = [Strip([Segment(f"{y_label}".ljust(width)[:width], _DIM)], width)]
    for r in range(ph):
        label = ""
        if r in (0, ph // 2, ph - 1):
            label = f"{y_top * (1 - r / max(1, ph - 1)):.3g}┤"
        segs = [Segment(label.rjust(GUTTER) if label else "│".rjust(GUTTER), _DIM)]
        segs += [Segment(ch, st) for ch, st in grid[r]]
        strips.append(Strip(segs, width))
    ticks = [f"{x_top * k / 4:.3g}" for k in range(5)]
    line = [" "] * pw
    for k, text in enumerate(ticks):
        pos = min(pw - len(text), max(0, round(k / 4 * (pw - 1)) - len(text) // 2))
        line[pos: pos + len(text)] = list(text)
    strips.append(Strip([Segment(" " * GUTTER), Segment("".join(line), _DIM)], width))
    strips.append(Strip([Segment(x_label.rjust(width)[:width], _DIM)], width))
    return strips


class ScatterPlot(Widget):
    """Points with letter markers (A, B, …); Pareto-front points reversed and joined."""

    DEFAULT_CSS = """
    ScatterPlot { height: 1fr; min-height: 6; }
    """

    def __init__(self, *, x_label: str = "", y_label: str = "", id: str | None = None) -> None:
        super().__init__(id=id)
        self.x_label, self.y_label = x_label, y_label
        self._points: list[Point] = []
        self._cache: tuple[tuple[int, int, int], list[Strip]] | None = None
        self._version = 0

    def set_points(self, points: list[Point]) -> None:
        """Replace the points (redrawn once on the next paint)."""
        self._points = list(points)
        self._version += 1
        self.refresh()

    def render_line(self, y: int) -> Strip:
        """One row of the cached frame."""
        key = (self.size.width, self.size.height, self._version)
        if self._cache is None or self._cache[0] != key:
            frame = scatter_lines(self._points, self.size.width, self.size.height, self.x_label, self.y_label)
            self._cache = (key, frame)
        frame = self._cache[1]
        return frame[y] if 0 <= y < len(frame) else Strip.blank(self.size.width)
