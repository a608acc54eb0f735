"""A one-line sparkline as Rich Text, cheap enough to rebuild for every fleet row each tick.

Textual's Sparkline is a widget and cannot live in a DataTable cell; this gives the same
look (eighth blocks, one bucket per cell) as a Text value for `update_cell`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.text import Text

BLOCKS = " ▁▂▃▄▅▆▇█"


def spark_levels(values: Sequence[float], width: int, top: float | None = None) -> list[int]:
    """Bucket means over `width` cells as levels 1..8 (0 = no data), scaled to [0, top] or min..max."""
    if width <= 0:
        return []
    y = np.asarray(values, dtype=float)
    y = y[np.isfinite(y)]
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


def sparkline(
    values: Sequence[float], width: int = 16, style: str = "cyan", top: float | None = None
) -> Text:
    """The sparkline of `values` (oldest first) as `width` cells of Rich Text."""
    return Text("".join(BLOCKS[level] for level in spark_levels(values, width, top)), style=style)
