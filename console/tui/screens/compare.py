"""Compare screen: devices side by side on one scenario — per-query numbers, latency vs GWP with the
Pareto front, and power over normalized time (100-point mean ± std), from the live fleet and stored runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable, Footer, Static

from console.analysis import pareto_front, profile_band
from console.state import DeviceView
from console.tui import units
from console.tui.compare_data import LIVE, CompareEntry, entries_from_runs, entry_from_view
from console.tui.screens.live import LiveScreen
from console.tui.widgets.powerplot import PowerPlot, Series
from console.tui.widgets.scatter import Point, ScatterPlot
from console.tui.widgets.topbar import TopBar

COLORS = ("#5fd7ff", "#ffaf5f", "#87d75f", "#d787ff", "#ff5f87", "#afafff", "#d7d75f", "#5fafaf")
DIM_COLORS = ("#2f6b80", "#80582f", "#446b2f", "#6b4480", "#802f44", "#585880", "#6b6b2f", "#2f5858")
COLUMNS = ("", "device", "scenario", "runs", "p50", "p99", "energy/query", "GWP/query [low–high]", "front")


def _tag(i: int) -> str:
    return chr(ord("A") + i % 26)


def _gwp_q(e: CompareEntry) -> str:
    if e.gwp_per_query_mg is None:
        return units.DASH
    text = units.mg(e.gwp_per_query_mg)
    if e.gwp_low_mg is not None and e.gwp_high_mg is not None:
        unit = text.split(" ")[-1]
        scale = {"µg": 1000.0, "mg": 1.0, "g": 0.001}.get(unit, 1.0)  # entries are in mg
        text += f" [{e.gwp_low_mg * scale:.3g}–{e.gwp_high_mg * scale:.3g}]"
    return text


class CompareScreen(LiveScreen):
    """`n` switches scenario (live, then each stored scenario); the live group follows the fleet."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("n", "next_scenario", "Scenario"),
        Binding("R", "reload_runs", "Reload runs"),
    ]

    class RunsLoaded(Message):
        """Stored runs were read (in a thread) and grouped."""

        def __init__(self, entries: list[CompareEntry]) -> None:
            super().__init__()
            self.entries = entries

    def __init__(self, keys: list[str]) -> None:
        super().__init__()
        self.keys = keys
        self.scenario = LIVE
        self.stored: list[CompareEntry] = []
        self.entries: list[CompareEntry] = []
        self._drawn: tuple[Any, ...] | None = None

    def compose(self) -> ComposeResult:
        yield TopBar("compare")
        yield Static(id="compare-status")
        yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="compare-plots"):
            yield ScatterPlot(x_label="latency p50 (ms) →", y_label="GWP per query (mg CO2e) ↑",
                              id="compare-scatter")
            yield PowerPlot(id="compare-profiles")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label in COLUMNS:
            table.add_column(label, key=label or "tag")
        self.query_one("#compare-scatter").border_title = "latency vs GWP/query · ◆ Pareto front"
        self.query_one("#compare-profiles").border_title = "power over normalized time · mean ± std"
        self.show_views(self.app.views)  # type: ignore[attr-defined]
        self.ready = True
        self.load_runs()

    @work(thread=True, exclusive=True, group="compare-runs")
    def load_runs(self) -> None:
        """Read stored runs off the UI thread (parquet reads can take a while)."""
        self.post_message(self.RunsLoaded(entries_from_runs(self.app.logs_dir)))  # type: ignore[attr-defined]

    def on_compare_screen_runs_loaded(self, message: RunsLoaded) -> None:
        self.stored = message.entries
        self._render_group()

    def scenarios(self) -> list[str]:
        """The groups one can look at: live first, then each stored scenario."""
        return [LIVE, *sorted({e.scenario for e in self.stored})]

    def show_views(self, views: list[DeviceView]) -> None:
        if self.scenario == LIVE:
            self._render_group(views)

    def _group(self, views: list[DeviceView] | None) -> list[CompareEntry]:
        if self.scenario != LIVE:
            return [e for e in self.stored if e.scenario == self.scenario]
        views = views if views is not None else self.app.views  # type: ignore[attr-defined]
        by_key = {v.key: v for v in views}
        book = self.app.book  # type: ignore[attr-defined]
        names = self.app.job_scenarios  # type: ignore[attr-defined]
        return [entry_from_view(by_key[k], book, names.get(by_key[k].job_id or "", LIVE))
                for k in self.keys if k in by_key]

    def _render_group(self, views: list[DeviceView] | None = None) -> None:
        entries = self._group(views)
        self.entries = entries
        points = [(e.latency_p50_ms, e.gwp_per_query_mg) for e in entries]
        usable = [i for i, (x, y) in enumerate(points) if x is not None and y is not None]
        front = {usable[j] for j in pareto_front([points[i] for i in usable])}  # type: ignore[misc]
        self._fill_table(entries, front)
        self.query_one(ScatterPlot).set_points([
            Point(_tag(i), float(e.latency_p50_ms), float(e.gwp_per_query_mg),  # type: ignore[arg-type]
                  COLORS[i % len(COLORS)], i in front)
            for i, e in enumerate(entries) if i in usable
        ])
        self._draw_profiles(entries)
        n_stored = len(self.scenarios()) - 1
        logs = self.app.logs_dir.name  # type: ignore[attr-defined]
        status = (f"scenario [b]{self.scenario}[/b]  ·  {len(entries)} device(s)  ·  "
                  f"{n_stored} stored scenario(s) in {logs}/  ·  n: next scenario")
        self.query_one("#compare-status", Static).update(status, layout=False)

    def _fill_table(self, entries: list[CompareEntry], front: set[int]) -> None:
        table = self.query_one(DataTable)
        rows = []
        for i, e in enumerate(entries):
            rows.append((
                Text(_tag(i), style=f"bold {COLORS[i % len(COLORS)]}"), e.label, e.scenario,
                str(e.runs), units.millis(e.latency_p50_ms), units.millis(e.latency_p99_ms),
                units.energy(e.energy_per_query_j), _gwp_q(e),
                Text("◆", style="bold #ffd75f") if i in front else Text(""),
            ))
        if [r[1] for r in rows] == [table.get_row_at(i)[1] for i in range(table.row_count)]:
            for i, row in enumerate(rows):  # same devices: update in place
                for j, value in enumerate(row):
                    table.update_cell_at(Coordinate(i, j), value)
        else:
            table.clear()
            for row in rows:
                table.add_row(*row)

    def _draw_profiles(self, entries: list[CompareEntry]) -> None:
        state = tuple((e.label, e.runs, sum(int(t.size) for t, _ in e.traces)) for e in entries)
        if state == self._drawn:
            return
        self._drawn = state
        series = []
        for i, e in enumerate(entries):
            if not e.traces:
                continue
            x, mean, std = profile_band(list(e.traces))
            pct = x * 100
            tag = _tag(i)
            series.append(Series(tag, pct, mean, COLORS[i % len(COLORS)]))
            if np.any(std > 0):
                dim = DIM_COLORS[i % len(DIM_COLORS)]
                series.append(Series(f"{tag}+σ", pct, mean + std, dim, legend=False))
                series.append(Series(f"{tag}-σ", pct, mean - std, dim, legend=False))
        self.query_one(PowerPlot).set_data(series, (0.0, 100.0 + 1e-9), x_format=lambda x: f"{x:.0f}%",
                                           title="100 pts", x_ticks=lambda a, b, w: [0, 25, 50, 75, 100])

    def action_next_scenario(self) -> None:
        options = self.scenarios()
        self.scenario = options[(options.index(self.scenario) + 1) % len(options)]
        self._drawn = None
        self._render_group()

    def action_reload_runs(self) -> None:
        self.load_runs()
