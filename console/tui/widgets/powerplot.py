"""A cheap live line plot: braille dots drawn straight into Strips through the Line API.

Why our own: plotext rebuilds a whole figure and Rich re-parses its ANSI output on every refresh
(≈100 ms for 10 000 points, tui-patterns §7). Here each series is reduced to one min/max bucket
per braille dot column first (so cost follows the plot's width, not the history's length), the
buckets are rasterized with numpy into 2×4-dot cells, and the frame is cached until the data or
the size change; `render_line` only indexes the cache.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.events import MouseScrollDown, MouseScrollUp
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

# Braille dot (column, row) -> bit, rows top to bottom (Unicode 2800 block layout).
_DOT_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint8)
_GLYPHS = [" "] + [chr(0x2800 + i) for i in range(1, 256)]
GUTTER = 8  # "  120 W┤"
_LABEL_STYLE = Style(color="grey50")
_AXIS_STYLE = Style(color="grey35")


@dataclass(frozen=True)
class Series:
    """One line: x (seconds, or any increasing unit) and y, drawn in `color`."""

    name: str
    x: np.ndarray
    y: np.ndarray
    color: str
    legend: bool = True


def nice_ceiling(value: float) -> float:
    """The smallest 1/2/2.5/4/5/8 x 10^k at or above `value` (a readable axis top, quarters stay round)."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 4, 5, 8, 10):
        if step * base >= value * 0.9999:
            return step * base
    return 10 * base


def bucket_minmax(
    x: np.ndarray, y: np.ndarray, x0: float, x1: float, cols: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of [x0, x1) split in `cols`: (min y, max y, has data); x must be sorted."""
    lo = np.full(cols, np.nan)
    hi = np.full(cols, np.nan)
    if x.size == 0 or x1 <= x0:
        return lo, hi, np.zeros(cols, dtype=bool)
    a, b = np.searchsorted(x, [x0, x1], side="left")
    xs, ys = x[a:b], y[a:b]
    ok = np.isfinite(ys)
    xs, ys = xs[ok], ys[ok]
    if xs.size == 0:
        return lo, hi, np.zeros(cols, dtype=bool)
    col = ((xs - x0) * (cols / (x1 - x0))).astype(np.int64)
    np.clip(col, 0, cols - 1, out=col)
    # Sorted x -> sorted columns: reduceat over the first index of each column is one pass.
    starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
    used = col[starts]
    lo[used] = np.minimum.reduceat(ys, starts)
    hi[used] = np.maximum.reduceat(ys, starts)
    valid = np.zeros(cols, dtype=bool)
    valid[used] = True
    if used.size > 1:
        # Bridge empty columns between two points closer than a few sample intervals (no fake lines
        # across real gaps such as a reconnect).
        dt = np.diff(xs)
        max_gap = 5 * float(np.median(dt)) if dt.size else 0.0
        width = (x1 - x0) / cols
        holes = np.flatnonzero(~valid[used[0]: used[-1] + 1]) + used[0]
        if holes.size and max_gap > 0:
            left = used[np.searchsorted(used, holes) - 1]
            right = used[np.searchsorted(used, holes)]
            fill = (right - left) * width <= max_gap + 2 * width
            h, left_c, right_c = holes[fill], left[fill], right[fill]
            frac = (h - left_c) / (right_c - left_c)
            mid = hi[left_c] + (lo[right_c] - hi[left_c]) * frac
            lo[h] = mid
            hi[h] = mid
            valid[h] = True
    return lo, hi, valid


def rasterize(
    lo: np.ndarray, hi: np.ndarray, valid: np.ndarray, y0: float, y1: float, rows: int
) -> np.ndarray:
    """Braille codes (rows, cols // 2) for the vertical spans [lo, hi] of each dot column."""
    dots_y = rows * 4
    cols = lo.size
    scale = (dots_y - 1) / (y1 - y0) if y1 > y0 else 0.0
    with np.errstate(invalid="ignore"):
        top = np.rint((y1 - np.clip(hi, y0, y1)) * scale)
        bot = np.rint((y1 - np.clip(lo, y0, y1)) * scale)
    # Join each column to its left neighbour so a steep step is a line, not two dots.
    both = valid[1:] & valid[:-1]
    prev_top, prev_bot = top[:-1].copy(), bot[:-1].copy()
    top[1:][both] = np.minimum(top[1:][both], prev_bot[both] + 1)
    bot[1:][both] = np.maximum(bot[1:][both], prev_top[both] - 1)
    top = np.where(valid, top, dots_y)
    bot = np.where(valid, bot, -1)
    r = np.arange(dots_y)[:, None]
    filled = (r >= top[None, :]) & (r <= bot[None, :])
    cells = filled.reshape(rows, 4, cols // 2, 2) * _DOT_BITS[None, :, None, :]
    return cells.sum(axis=(1, 3), dtype=np.uint16).astype(np.uint8)


TIME_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)


def time_ticks(x0: float, x1: float, width: int, min_gap: int = 12) -> list[float]:
    """Tick positions counted back from `x1` in a round step (1 s … 1 d), at least `min_gap` cells apart."""
    span = x1 - x0
    if span <= 0 or width <= 0:
        return []
    most = max(1, width // min_gap)
    step = next((s for s in TIME_STEPS_S if span / s <= most), span)
    n = int(span // step)
    return [x1 - k * step for k in range(n + 1)]


def _label_positions(width: int, min_gap: int = 12) -> list[int]:
    n = max(2, width // min_gap)
    return [round(i * (width - 1) / (n - 1)) for i in range(n)]


def render_frame(
    series: Sequence[Series],
    width: int,
    height: int,
    x_range: tuple[float, float],
    *,
    y_unit: str = "W",
    x_format: Callable[[float], str] = lambda x: f"{x:.0f}",
    title: str = "",
    y_max: float | None = None,
    x_ticks: Sequence[float] | None = None,
) -> list[Strip]:
    """The whole plot as `height` strips of `width` cells: legend, braille area, x labels."""
    blank = Strip([Segment(" " * max(0, width))], max(0, width))
    if width < GUTTER + 4 or height < 4:
        return [blank] * max(0, height)
    pw, ph = width - GUTTER, height - 2
    x0, x1 = x_range
    buckets = [(s, *bucket_minmax(s.x, s.y, x0, x1, pw * 2)) for s in series]
    top = y_max
    if top is None:
        peaks = [np.nanmax(hi) for _, _, hi, valid in buckets if valid.any()]
        top = nice_ceiling(max(peaks) * 1.05) if peaks else 1.0
    codes = np.zeros((ph, pw), dtype=np.uint8)
    owner = np.full((ph, pw), -1, dtype=np.int16)
    # Earlier series have priority for a cell's colour, so draw them last.
    for idx in range(len(buckets) - 1, -1, -1):
        _, lo, hi, valid = buckets[idx]
        if not valid.any():
            continue
        c = rasterize(lo, hi, valid, 0.0, top, ph)
        codes |= c
        owner[c > 0] = idx
    styles = [Style(color=s.color) for s in series]
    strips = [_legend_strip(series, width, title)]
    label_rows = {round(i * (ph - 1) / 4): top * (1 - i / 4) for i in range(5)} if ph >= 5 else {0: top}
    for row in range(ph):
        label = label_rows.get(row)
        gutter = f"{_fmt_tick(label)} {y_unit}┤" if label is not None else "│"
        segs = [Segment(gutter.rjust(GUTTER), _LABEL_STYLE if label is not None else _AXIS_STYLE)]
        segs.extend(_row_segments(codes[row], owner[row], styles))
        strips.append(Strip(segs, width))
    strips.append(_x_axis_strip(x0, x1, pw, width, x_format, x_ticks))
    return strips


def _fmt_tick(v: float) -> str:
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.1f}".rstrip("0").rstrip(".") if v >= 1 else f"{v:.2g}"


def _row_segments(codes: np.ndarray, owner: np.ndarray, styles: list[Style]) -> list[Segment]:
    text = "".join([_GLYPHS[c] for c in codes.tolist()])
    cuts = np.flatnonzero(owner[1:] != owner[:-1]) + 1
    bounds = [0, *cuts.tolist(), len(text)]
    segs = []
    for a, b in itertools.pairwise(bounds):
        o = int(owner[a])
        segs.append(Segment(text[a:b], styles[o] if o >= 0 else None))
    return segs


def _legend_strip(series: Sequence[Series], width: int, title: str) -> Strip:
    segs: list[Segment] = [Segment(" " * GUTTER)]
    used = GUTTER
    for s in series:
        if not s.legend:
            continue
        piece = f"━ {s.name}  "
        if used + len(piece) > width - len(title) - 1:
            break
        segs.append(Segment("━ ", Style(color=s.color, bold=True)))
        segs.append(Segment(f"{s.name}  ", _LABEL_STYLE))
        used += len(piece)
    pad = max(0, width - used - len(title))
    segs.append(Segment(" " * pad))
    segs.append(Segment(title[: max(0, width - used)], _LABEL_STYLE))
    return Strip(segs, width).crop(0, width)


def _x_axis_strip(x0: float, x1: float, pw: int, width: int, x_format: Callable[[float], str],
                  ticks: Sequence[float] | None) -> Strip:
    line = [" "] * pw
    if ticks is None:
        at = [(pos, x0 + (x1 - x0) * pos / max(1, pw - 1)) for pos in _label_positions(pw)]
    else:
        at = [(round((x - x0) / (x1 - x0) * (pw - 1)), x) for x in ticks if x0 <= x <= x1] if x1 > x0 else []
    for pos, value in at:
        text = x_format(value)
        start = min(max(0, pos - len(text) // 2), pw - len(text))
        if any(ch != " " for ch in line[max(0, start - 1): start + len(text) + 1]):
            continue
        line[start: start + len(text)] = list(text)
    return Strip([Segment(" " * GUTTER), Segment("".join(line), _LABEL_STYLE)], width)


class PowerPlot(Widget):
    """Live plot of one or more series; the owner calls `set_data` at its own (low) rate."""

    DEFAULT_CSS = """
    PowerPlot {
        height: 1fr;
        min-height: 6;
    }
    """

    class Scrolled(Message):
        """The mouse wheel asked to move the window: -1 back in time, +1 forward."""

        def __init__(self, plot: PowerPlot, direction: int) -> None:
            super().__init__()
            self.plot = plot
            self.direction = direction

    def __init__(self, *, y_unit: str = "W", name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.y_unit = y_unit
        self._series: tuple[Series, ...] = ()
        self._x_range: tuple[float, float] = (0.0, 1.0)
        self._x_format: Callable[[float], str] = lambda x: f"{x:.0f}"
        self._title = ""
        self._y_max: float | None = None
        self._x_ticks_fn: Callable[[float, float, int], Sequence[float]] | None = None
        self._data_version = 0
        self._frame: list[Strip] = []
        self._frame_key: tuple[int, int, int] | None = None
        self.renders = 0  # frames actually rebuilt (tests and benches read it)

    def set_data(
        self,
        series: Sequence[Series],
        x_range: tuple[float, float],
        *,
        x_format: Callable[[float], str] | None = None,
        title: str = "",
        y_max: float | None = None,
        x_ticks: Callable[[float, float, int], Sequence[float]] | None = None,
    ) -> None:
        """Replace what is drawn; the frame is rebuilt once, on the next paint.

        `x_ticks(x0, x1, plot_width)` places the x labels (default: evenly spaced)."""
        self._series = tuple(series)
        self._x_range = x_range
        if x_format is not None:
            self._x_format = x_format
        self._title = title
        self._y_max = y_max
        self._x_ticks_fn = x_ticks
        self._data_version += 1
        self.refresh()

    @property
    def series(self) -> tuple[Series, ...]:
        """What is drawn now."""
        return self._series

    def _ensure_frame(self) -> None:
        key = (self.size.width, self.size.height, self._data_version)
        if key != self._frame_key:
            ticks = self._x_ticks_fn(*self._x_range, self.size.width - GUTTER) if self._x_ticks_fn else None
            self._frame = render_frame(
                self._series, self.size.width, self.size.height, self._x_range,
                y_unit=self.y_unit, x_format=self._x_format, title=self._title, y_max=self._y_max,
                x_ticks=ticks,
            )
            self._frame_key = key
            self.renders += 1

    def render_line(self, y: int) -> Strip:
        """One row of the cached frame (the frame is rebuilt only when data or size changed)."""
        self._ensure_frame()
        if 0 <= y < len(self._frame):
            return self._frame[y].apply_style(self.rich_style)
        return Strip.blank(self.size.width, self.rich_style)

    def on_mouse_scroll_up(self, event: MouseScrollUp) -> None:
        event.stop()
        self.post_message(self.Scrolled(self, -1))

    def on_mouse_scroll_down(self, event: MouseScrollDown) -> None:
        event.stop()
        self.post_message(self.Scrolled(self, +1))
