"""A one-line sparkline as Rich Text, cheap enough to rebuild for every fleet row each tick.

Textual's Sparkline is a widget and cannot live in a DataTable cell; this gives the same
look (eighth blocks, one bucket per cell) as a Text value for `update_cell`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from rich.text import Text

BLOCKS = " ▁▂▃▄▅▆▇█"


def spark_levels(values: Sequence[float], width: int, top: float | None = None) -> list[int]:
    """Bucket means over `width` cells as levels 1..8 (0 = no data), scaled to [0, top] or min..max."""
    if width <= 0:
        return []
    raw = np.asarray(values, dtype=float)
    if raw.size == width and not np.isfinite(raw).all():
        # Already one value per cell (window_means): empty buckets stay blank, in place.
        levels = spark_levels(raw[np.isfinite(raw)].tolist(), int(np.isfinite(raw).sum()), top)
        it = iter(levels)
        return [next(it) if ok else 0 for ok in np.isfinite(raw)]
    y = raw[np.isfinite(raw)]
    if y.size == 0:
        return [0] * width
    edges = np.linspace(0, y.size, min(width, y.size) + 1).astype(int)
    means = np.add.reduceat(y, edges[:-1]) / np.maximum(1, np.diff(edges))
    if top and top > 0:
        levels = np.clip(np.ceil(means / top * 8), 1, 8).astype(int).tolist()
    else:
        # Auto range over the window: a trend line, but ±5 % ripple on a flat signal stays flat.
        lo, hi = float(means.min()), float(means.max())
        if hi - lo <= 0.05 * max(abs(hi), 1e-9):
            levels = [4] * len(means)
        else:
            levels = (1 + np.rint((means - lo) / (hi - lo) * 7)).astype(int).tolist()
    return [0] * (width - len(levels)) + levels  # right-aligned: newest at the right edge


def window_means(points: Sequence[tuple[float, float]], width: int, span_s: float = 60.0) -> list[float]:
    """Mean power per time bucket of the last `span_s` before the newest point (nan where no samples)."""
    if not points or width <= 0:
        return [math.nan] * max(0, width)
    arr = np.asarray(points, dtype=float)
    t, w = arr[:, 0], arr[:, 1]
    end = t[-1]
    # Bucket i covers (end - span) + i * span / width ... ; the newest point lands in the last bucket.
    idx = np.floor((t - (end - span_s)) / span_s * width).astype(int)
    np.clip(idx, -1, width - 1, out=idx)
    keep = idx >= 0
    sums = np.bincount(idx[keep], weights=w[keep], minlength=width)
    counts = np.bincount(idx[keep], minlength=width)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts).tolist()


def sparkline(
    values: Sequence[float], width: int = 16, style: str = "cyan", top: float | None = None
) -> Text:
    """The sparkline of `values` (oldest first) as `width` cells of Rich Text."""
    return Text("".join(BLOCKS[level] for level in spark_levels(values, width, top)), style=style)
