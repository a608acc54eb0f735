"""Pure comparison math shared by the TUI compare screen and the reports (no UI imports).

- `pareto_front`: which (latency, GWP per query) points are not beaten on both axes.
- `normalized_profile` / `profile_band`: the study's view of power over normalized time — each
  run is interpolated onto 100 points of [0, 1] and the runs are averaged (mean ± std).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PROFILE_POINTS = 100


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both coordinates (both minimized), by x ascending."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front: list[int] = []
    best_y = float("inf")
    for i in order:
        x, y = points[i]
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        # Sorted by x, so a point is on the front iff its y is strictly below every y seen so far.
        if y < best_y:
            front.append(i)
            best_y = y
    return front


def normalized_profile(t_s: Sequence[float], watts: Sequence[float], n: int = PROFILE_POINTS) -> np.ndarray:
    """Power interpolated at `n` evenly spaced points of the run's normalized time [0, 1]."""
    t = np.asarray(t_s, dtype=float)
    w = np.asarray(watts, dtype=float)
    keep = np.isfinite(t) & np.isfinite(w)
    t, w = t[keep], w[keep]
    if t.size == 0:
        return np.full(n, np.nan)
    if t.size == 1 or t[-1] == t[0]:
        return np.full(n, float(w.mean()))
    order = np.argsort(t, kind="stable")
    t, w = t[order], w[order]
    x = (t - t[0]) / (t[-1] - t[0])
    return np.interp(np.linspace(0.0, 1.0, n), x, w)


def profile_band(
    runs: Sequence[tuple[Sequence[float], Sequence[float]]], n: int = PROFILE_POINTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x in [0, 1], mean W, std W) over runs given as (t_s, watts); std is 0 for a single run."""
    x = np.linspace(0.0, 1.0, n)
    if not runs:
        empty = np.full(n, np.nan)
        return x, empty, empty.copy()
    stack = np.vstack([normalized_profile(t, w, n) for t, w in runs])
    with np.errstate(all="ignore"):
        mean = np.nanmean(stack, axis=0) if np.isfinite(stack).any() else np.full(n, np.nan)
        std = np.nanstd(stack, axis=0) if stack.shape[0] > 1 else np.zeros(n)
    return x, mean, std
