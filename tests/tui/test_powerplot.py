"""The braille power plot: min/max buckets per dot column, y axis, legend, cheap repaints."""

from __future__ import annotations

import numpy as np
from textual.app import App, ComposeResult

from console.tui.widgets.powerplot import (
    PowerPlot,
    Series,
    bucket_minmax,
    nice_ceiling,
    rasterize,
    render_frame,
    time_ticks,
)
from console.tui.widgets.sparkline import spark_levels, window_means


def _text(strip) -> str:  # type: ignore[no-untyped-def]
    return "".join(seg.text for seg in strip)


def test_buckets_keep_the_min_and_max_of_each_column_so_spikes_survive() -> None:
    x = np.arange(1000, dtype=float)
    y = np.zeros(1000)
    y[500] = 99.0  # one spike among 1000 points, 10 columns
    lo, hi, valid = bucket_minmax(x, y, 0.0, 1000.0, 10)
    assert valid.all()
    assert hi[5] == 99.0 and lo[5] == 0.0
    assert np.count_nonzero(hi == 99.0) == 1


def test_a_real_gap_in_the_data_is_not_bridged() -> None:
    x = np.r_[np.arange(0, 10, 0.1), np.arange(50, 60, 0.1)]
    _lo, _hi, valid = bucket_minmax(x, np.ones_like(x), 0.0, 60.0, 60)
    assert not valid[30]  # 10 s .. 50 s: no samples, no line
    assert valid[5] and valid[55]


def test_rasterize_fills_braille_dots_from_low_to_high() -> None:
    codes = rasterize(np.array([0.0, 0.0]), np.array([1.0, 1.0]), np.array([True, True]), 0.0, 1.0, 1)
    assert codes.tolist() == [[0xFF]]  # both dot columns full height: all 8 dots


def test_frame_has_a_legend_y_labels_and_x_labels() -> None:
    x = np.linspace(0, 30, 300)
    series = [Series("total", x, 20 + 5 * np.sin(x), "cyan"), Series("gpu", x, 10 + x * 0, "red")]
    frame = render_frame(series, 80, 12, (0.0, 30.0), x_format=lambda v: f"{v:.0f}s", title="window 30 s")
    lines = [_text(s) for s in frame]
    assert len(lines) == 12 and all(len(line) == 80 for line in lines)
    assert "━ total" in lines[0] and "━ gpu" in lines[0] and lines[0].endswith("window 30 s")
    assert "40 W┤" in lines[1]  # nice ceiling of 25 W * 1.05
    assert lines[-1].strip().startswith("0s") and lines[-1].rstrip().endswith("30s")
    assert any(ch > "\u2800" for ch in "".join(lines[1:-1]))


def test_nice_ceiling_rounds_up_to_a_readable_axis_top() -> None:
    assert nice_ceiling(42.0) == 50.0
    assert nice_ceiling(101.0) == 200.0
    assert nice_ceiling(2.4) == 2.5


def test_time_ticks_count_back_from_now_in_round_steps() -> None:
    assert time_ticks(0.0, 30.0, 80) == [30.0, 25.0, 20.0, 15.0, 10.0, 5.0, 0.0]


def test_sparkline_of_a_flat_signal_is_flat_and_of_a_step_rises() -> None:
    assert set(spark_levels([10.0, 10.2, 9.9, 10.1], 4)) == {4}
    assert spark_levels([1.0, 1.0, 9.0, 9.0], 4) == [1, 1, 8, 8]


def test_sparkline_buckets_the_last_minute_by_time_leaving_missing_seconds_blank() -> None:
    points = [(float(t), 10.0 if t < 50 else 30.0) for t in range(31, 61)]  # only the last 30 s
    means = window_means(points, 6)  # 10 s per cell ending at the newest point (t=60)
    assert np.isnan(means[0]) and np.isnan(means[2])
    assert means[3:] == [10.0, 10.0, 30.0]
    assert spark_levels(means, 6) == [0, 0, 0, 1, 1, 8]


class _PlotApp(App[None]):
    def compose(self) -> ComposeResult:
        yield PowerPlot()


async def test_the_plot_rebuilds_its_frame_only_when_data_changes() -> None:
    app = _PlotApp()
    async with app.run_test(size=(60, 12)) as pilot:
        plot = app.query_one(PowerPlot)
        x = np.linspace(0, 10, 100)
        plot.set_data([Series("total", x, x, "cyan")], (0.0, 10.0))
        await pilot.pause()
        first = plot.renders
        plot.refresh()  # a repaint without new data reuses the cached frame
        await pilot.pause()
        assert plot.renders == first
        plot.set_data([Series("total", x, x * 2, "cyan")], (0.0, 10.0))
        await pilot.pause()
        assert plot.renders == first + 1


async def test_the_mouse_wheel_over_the_plot_asks_to_scroll() -> None:
    seen: list[int] = []

    class _App(_PlotApp):
        def on_power_plot_scrolled(self, event: PowerPlot.Scrolled) -> None:
            seen.append(event.direction)

    app = _App()
    async with app.run_test(size=(60, 12)) as pilot:
        await pilot.pause()
        from textual.events import MouseScrollUp

        plot = app.query_one(PowerPlot)
        plot.post_message(MouseScrollUp(plot, 5, 5, 0, 0, 0, False, False, False))
        await pilot.pause()
    assert seen == [-1]
