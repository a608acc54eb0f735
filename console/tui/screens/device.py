"""Device screen: a large live power plot, the job's running numbers, job controls, hardware."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Static

from console.errors import WattlabError
from console.state import DeviceView
from console.tui import units
from console.tui.hardware import hardware_lines
from console.tui.scenarios import load_scenarios, sampling_spec
from console.tui.screens.confirm import ConfirmScreen
from console.tui.screens.fleet import STATE_STYLES
from console.tui.screens.live import LiveScreen
from console.tui.screens.prompt import PromptScreen
from console.tui.screens.start_job import StartJobScreen
from console.tui.widgets.powerplot import PowerPlot, Series, time_ticks
from console.tui.widgets.topbar import TopBar

WINDOWS: tuple[tuple[str, float | None], ...] = (("30 s", 30.0), ("5 min", 300.0), ("job", None))
TOTAL_COLOR = "#5fd7ff"
_UNSET = object()
RAIL_COLORS = ("#d787ff", "#87d75f", "#ffaf5f", "#ff5f87", "#afafff", "#d7d75f")


def _ago(seconds: float) -> str:
    return "now" if seconds < 0.5 else "-" + units.duration(seconds).replace(" ", "")


def _kv(rows: list[tuple[str, Any]]) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="grey62", no_wrap=True)
    table.add_column(no_wrap=True)
    for label, value in rows:
        table.add_row(label, value)
    return table


class DeviceScreen(LiveScreen):
    """One device: plot (total and rails), windows, pause/scroll back, start/stop/mark."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("s", "start_sampling", "Sample"),
        Binding("j", "start_job", "Start job"),
        Binding("x", "stop_job", "Stop"),
        Binding("m", "mark", "Mark"),
        Binding("r", "toggle_rails", "Rails"),
        Binding("w", "next_window", "Window"),
        Binding("1", "window(0)", "30 s", show=False),
        Binding("2", "window(1)", "5 min", show=False),
        Binding("3", "window(2)", "job", show=False),
        Binding("space", "pause", "Pause"),
        Binding("left", "scroll(-1)", "Back in time", show=False),
        Binding("right", "scroll(1)", "Forward", show=False),
        Binding("end", "live", "Live", show=False),
    ]

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.window = 0
        self.show_rails = True
        self.paused_at: float | None = None  # right edge of the window while paused
        self._plotted: tuple[Any, ...] | None = None
        self._job_rows = -1
        self._hw_shown: object = _UNSET

    def compose(self) -> ComposeResult:
        yield TopBar(self.key)
        yield Static(id="device-title")
        with Horizontal(id="device-body"):
            yield PowerPlot(id="device-plot")
            with VerticalScroll(id="device-side"):
                yield Static(id="job-panel", classes="panel")
                yield Static(id="hw-panel", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#job-panel").border_title = "job"
        self.query_one("#hw-panel").border_title = "hardware"
        self.show_views(self.app.views)  # type: ignore[attr-defined]
        self.ready = True

    # -- drawing ----------------------------------------------------------------------------------
    def current(self) -> DeviceView | None:
        """The latest view of this screen's device."""
        return self.app.view(self.key)  # type: ignore[attr-defined,no-any-return]

    def show_views(self, views: list[DeviceView]) -> None:
        view = next((v for v in views if v.key == self.key), None)
        if view is None:
            self.query_one("#device-title", Static).update(f"{self.key}: not in the fleet any more")
            return
        # Layout passes are the costly part of a tick: one-line and same-size updates skip them.
        self.query_one("#device-title", Static).update(self._title(view), layout=False)
        panel = self._job_panel(view)
        self.query_one("#job-panel", Static).update(panel, layout=panel.row_count != self._job_rows)
        self._job_rows = panel.row_count
        if view.hardware_id != self._hw_shown or self._hw_shown is _UNSET:
            self._hw_shown = view.hardware_id
            self.query_one("#hw-panel", Static).update(_kv(list(hardware_lines(view.hardware_id))))
        self._draw_plot(view)

    def _title(self, view: DeviceView) -> Text:
        return Text.assemble(
            (view.name, "bold"), ("  on ", "dim"), (view.host, "bold"), ("  ", ""), (view.device_id, "dim"),
            ("  ·  ", "dim"), (units.state_label(view), STATE_STYLES.get(view.state, "")),
            ("  ·  sampler ", "dim"), (view.sampler or "—", ""),
            ("  ·  ", "dim"), (units.detail_line(view), "italic #ff875f"),
        )

    def _job_panel(self, v: DeviceView) -> Table:
        per_query_j = v.energy_j / v.queries_done if v.energy_j is not None and v.queries_done else None
        rows: list[tuple[str, Any]] = [
            ("job", v.job_id or Text("none", style="dim")),
            ("power", units.watts(v.power_w)),
        ]
        if v.campaign:
            rows.insert(1, ("campaign", v.campaign))
        if v.job_id:
            rows += [
                ("elapsed", units.duration(v.job_elapsed_s)),
                ("energy", units.energy(v.energy_j)),
                ("GWP", units.gwp_interval(v.gwp)),
                ("  operational", units.grams(v.gwp.operational_g if v.gwp else None)),
                ("  embodied", units.grams(v.gwp.embodied_g if v.gwp else None)),
                ("queries", units.count(v.queries_done)),
                ("latency p50", units.millis(v.latency_p50_ms)),
                ("latency p99", units.millis(v.latency_p99_ms)),
                ("energy/query", units.energy(per_query_j)),
                ("GWP/query", units.mg(v.gwp_per_query_mg)),
            ]
        for rail, watts in sorted(v.rails_w.items()):
            rows.append((f"rail {rail}", units.watts(watts)))
        return _kv(rows)

    def _x_range(self, view: DeviceView) -> tuple[float, float]:
        history = self.app.book.get(self.key)  # type: ignore[attr-defined]
        now = self.app.clock()  # type: ignore[attr-defined]
        right = self.paused_at if self.paused_at is not None else now
        span = WINDOWS[self.window][1]
        if span is None:  # whole job (or everything kept when there is no job)
            t, _ = history.total()
            left = history.job_start if history.job_start is not None else (t[0] if t.size else right - 30)
            return left, max(right, left + 1.0)
        return right - span, right

    def _draw_plot(self, view: DeviceView) -> None:
        history = self.app.book.get(self.key)  # type: ignore[attr-defined]
        x0, x1 = self._x_range(view)
        # Redraw only when the data, the window or the toggles changed (never just because of a tick).
        state = (history.version, x0, x1, self.show_rails)
        if state == self._plotted:
            return
        self._plotted = state
        t, w = history.total()
        series = [Series("total", t, w, TOTAL_COLOR)]
        if self.show_rails:
            for i, rail in enumerate(sorted(history.rails)):
                rt, rw = history.rail(rail)
                series.append(Series(rail, rt, rw, RAIL_COLORS[i % len(RAIL_COLORS)]))
        now = self.app.clock()  # type: ignore[attr-defined]
        label = WINDOWS[self.window][0]
        title = f"window {label} · " + ("paused" if self.paused_at is not None else "live")
        self.query_one(PowerPlot).set_data(series, (x0, x1), x_format=lambda x: _ago(now - x), title=title,
                                          x_ticks=time_ticks)

    def _redraw(self) -> None:
        self._plotted = None
        view = self.current()
        if view is not None:
            self._draw_plot(view)

    # -- plot controls ----------------------------------------------------------------------------
    def action_toggle_rails(self) -> None:
        self.show_rails = not self.show_rails
        self._redraw()

    def action_window(self, index: int) -> None:
        self.window = index
        self._redraw()

    def action_next_window(self) -> None:
        self.action_window((self.window + 1) % len(WINDOWS))

    def action_pause(self) -> None:
        self.paused_at = None if self.paused_at is not None else self.app.clock()  # type: ignore[attr-defined]
        self._redraw()

    def action_live(self) -> None:
        self.paused_at = None
        self._redraw()

    def action_scroll(self, direction: int) -> None:
        """Move a paused window by a quarter of its span (pauses first if live)."""
        span = WINDOWS[self.window][1]
        if span is None:
            return
        now = self.app.clock()  # type: ignore[attr-defined]
        t, _ = self.app.book.get(self.key).total()  # type: ignore[attr-defined]
        oldest = float(t[0]) if t.size else now
        right = (self.paused_at if self.paused_at is not None else now) + direction * span / 4
        self.paused_at = float(np.clip(right, oldest + min(span, now - oldest), now))
        if self.paused_at >= now:
            self.paused_at = None
        self._redraw()

    def on_power_plot_scrolled(self, event: PowerPlot.Scrolled) -> None:
        self.action_scroll(event.direction)

    # -- job controls -----------------------------------------------------------------------------
    def _host_device(self) -> tuple[str, str]:
        host, _, device = self.key.partition("/")
        return host, device

    def action_start_sampling(self) -> None:
        view = self.current()
        if view is not None and view.job_id:
            self.notify(f"{self.key} already runs {view.job_id}", severity="warning")
            return
        host, device = self._host_device()
        self.app.request(f"start sampling on {self.key}", self.app.fleet.start_job,  # type: ignore[attr-defined]
                         host, device, sampling_spec())

    def action_start_job(self) -> None:
        view = self.current()
        if view is not None and view.job_id:
            self.notify(f"{self.key} already runs {view.job_id}; stop it first", severity="warning")
            return
        try:
            scenarios, error = load_scenarios(), None
        except WattlabError as err:
            scenarios, error = [], str(err)
        host, device = self._host_device()

        def chosen(spec: dict[str, Any] | None) -> None:
            if spec:
                name = spec.get("meta", {}).get("scenario", "job")
                self.app.request(f"start {name} on {self.key}",  # type: ignore[attr-defined]
                                 self.app.fleet.start_job, host, device, spec,  # type: ignore[attr-defined]
                                 scenario=name)

        self.app.push_screen(StartJobScreen(self.key, scenarios, error=error), chosen)

    def action_stop_job(self) -> None:
        view = self.current()
        if view is None or not view.job_id:
            self.notify("no job to stop", severity="warning")
            return
        host, _ = self._host_device()
        job = view.job_id

        def stop(yes: bool | None = True) -> None:
            if yes:
                self.app.request(f"stop {job}", self.app.fleet.stop_job, host, job)  # type: ignore[attr-defined]

        if view.campaign:
            self.app.push_screen(ConfirmScreen(
                "Stop a campaign job?",
                f"{job} is part of campaign {view.campaign}. Stopping it marks this cell as stopped; "
                "the campaign runner will retry or skip it when resumed.", yes="Stop"), stop)
        else:
            stop()

    def action_mark(self) -> None:
        view = self.current()
        if view is None or not view.job_id:
            self.notify("no job to mark", severity="warning")
            return
        host, _ = self._host_device()
        job = view.job_id

        def marked(label: str | None) -> None:
            if label:
                self.app.request(f"mark {label!r}", self.app.fleet.mark, host, job, label)  # type: ignore[attr-defined]

        prompt = PromptScreen(f"Mark an event on {job}", placeholder="label, e.g. warm cache")
        self.app.push_screen(prompt, marked)
