"""Live power plot cost: our braille Line-API widget vs plotext + Rich ANSI decoding (textual-plotext's path).

Same data (10 000 points of a noisy power trace), same size (160x48 cells), same process; prints the
median time of each and their ratio. Target (DESIGN.md): ours <= 1/10 of plotext's, aim 1/30.

    .venv/bin/python bench/bench_powerplot.py [--points N] [--repeat R]

Recorded 2026-11-24, 2-vCPU VM shared with other jobs (load avg 4-9), plotext 5.3, textual 8.2.8:
plotext + Rich 127-132 ms, ours 1.9-3.1 ms: ratio 1/43 to 1/66.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.tui.widgets.powerplot import Series, render_frame

WIDTH, HEIGHT = 160, 48


def trace(points: int) -> tuple[np.ndarray, np.ndarray]:
    """A job-like trace: idle, a load step, ripple and noise (seeded)."""
    rng = np.random.default_rng(7)
    t = np.linspace(0.0, points / 20.0, points)  # 20 Hz
    w = np.where(t > t[-1] * 0.2, 38.0, 9.0) + 2.0 * np.sin(t * 1.3) + rng.normal(0, 0.8, points)
    return t, w


def ours(t: np.ndarray, w: np.ndarray) -> Callable[[], object]:
    """One frame rebuild, exactly what PowerPlot does when its data changed (then rows are indexed)."""
    series = [Series("total", t, w, "#5fd7ff")]
    x_range = (float(t[0]), float(t[-1]))
    return lambda: render_frame(series, WIDTH, HEIGHT, x_range, x_format=lambda x: f"{x:.0f}s", title="job")


def plotext_rich(t: np.ndarray, w: np.ndarray) -> Callable[[], object]:
    """plotext build + Text.from_ansi, the refresh path of textual-plotext's PlotextPlot.render()."""
    import plotext as plt
    from rich.text import Text

    xs, ys = t.tolist(), w.tolist()

    def build() -> object:
        plt.clf()
        plt.plotsize(WIDTH, HEIGHT)
        plt.theme("pro")
        plt.plot(xs, ys, marker="braille")
        return Text.from_ansi(plt.build())

    return build


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: imports, caches
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    t, w = trace(args.points)
    ref = median_ms(plotext_rich(t, w), args.repeat)
    mine = median_ms(ours(t, w), args.repeat)
    ratio = mine / ref
    print(f"plot {WIDTH}x{HEIGHT}, {args.points} points, median of {args.repeat}")
    print(f"  plotext + Rich ANSI decode : {ref:8.2f} ms")
    print(f"  wattlab PowerPlot frame    : {mine:8.2f} ms")
    print(f"  ratio                      : 1/{1 / ratio:.0f}  ({ratio:.4f}; target <= 1/10, aim 1/30)")
    sys.exit(0 if ratio <= 0.1 else 1)


if __name__ == "__main__":
    main()
