"""Fleet screen (home): one row per device across hosts, updated in place each tick."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Footer, Input, Static

from console.state import DeviceState, DeviceView
from console.tui import units
from console.tui.screens.live import LiveScreen
from console.tui.widgets.sparkline import sparkline, window_means
from console.tui.widgets.topbar import TopBar

STATE_STYLES = {
    DeviceState.IDLE: "grey62",
    DeviceState.SAMPLING: "#5fd7ff",
    DeviceState.RUNNING: "bold #87d75f",
    DeviceState.CONNECTING: "#d7af5f",
    DeviceState.RECONNECTING: "bold #d7af5f",
    DeviceState.STALLED: "bold #ff875f",
    DeviceState.LOST: "bold #ff5f5f",
    DeviceState.ERROR: "bold #ff5f5f",
}
SPARK_WIDTH = 12


def _num(x: float | None) -> float:
    return float("-inf") if x is None else x


@dataclass(frozen=True)
class Column:
    """A fleet-table column: its key, header, the cell it shows, and what it sorts by."""

    key: str
    label: str
    cell: Callable[[DeviceView], Any]
    sort: Callable[[DeviceView], Any] | None
    width: int | None = None


def _right(text: str, style: str = "") -> Text:
    return Text(text, style=style, justify="right")


COLUMNS: tuple[Column, ...] = (
    Column("host", "host", lambda v: Text(v.host, style="bold"), lambda v: v.host),
    Column("device", "device", lambda v: v.name, lambda v: v.name),
    Column("state", "state", lambda v: Text(units.state_label(v), style=STATE_STYLES.get(v.state, "")),
           lambda v: v.state.value, 14),
    Column("power", "power", lambda v: _right(units.watts(v.power_w)), lambda v: _num(v.power_w), 8),
    Column("energy", "energy", lambda v: _right(units.energy(v.energy_j)), lambda v: _num(v.energy_j), 9),
    Column("gwp", "GWP CO2e [low–high]", lambda v: _right(units.gwp_interval(v.gwp)),
           lambda v: _num(v.gwp.total_g if v.gwp else None), 22),
    Column("queries", "queries", lambda v: _right(units.count(v.queries_done) if v.job_id else units.DASH),
           lambda v: v.queries_done, 8),
    Column("p50", "p50", lambda v: _right(units.millis(v.latency_p50_ms)),
           lambda v: _num(v.latency_p50_ms), 8),
    Column("p99", "p99", lambda v: _right(units.millis(v.latency_p99_ms)),
           lambda v: _num(v.latency_p99_ms), 8),
    Column("gwpq", "GWP/query", lambda v: _right(units.mg(v.gwp_per_query_mg)),
           lambda v: _num(v.gwp_per_query_mg), 9),
    Column("spark", "last minute", lambda v: sparkline(window_means(v.history, SPARK_WIDTH), SPARK_WIDTH),
           None, SPARK_WIDTH),
)
SORTABLE = [c.key for c in COLUMNS if c.sort is not None]
COMPACT_BELOW = 120  # terminal columns under which the table drops the interval and reorders


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


_BY_KEY = {c.key: c for c in COLUMNS}
# At 80 columns the numbers that matter most (power, GWP, GWP/query) come first and fit.
COMPACT_COLUMNS: tuple[Column, ...] = (
    _BY_KEY["host"],
    Column("device", "device", lambda v: _short(v.name, 14), lambda v: v.name, 14),
    _BY_KEY["state"],
    _BY_KEY["power"],
    Column("gwp", "GWP CO2e", lambda v: _right(units.grams(v.gwp.total_g if v.gwp else None)),
           _BY_KEY["gwp"].sort, 9),
    _BY_KEY["gwpq"], _BY_KEY["energy"], _BY_KEY["queries"], _BY_KEY["p50"], _BY_KEY["p99"], _BY_KEY["spark"],
)


def matches(view: DeviceView, text: str, host: str | None, category: str | None) -> bool:
    """Whether a device passes the filters: every word of `text` in its host/name/id/category/state."""
    if host is not None and view.host != host:
        return False
    if category is not None and view.category != category:
        return False
    hay = f"{view.host} {view.name} {view.device_id} {view.category or ''} {view.state.value}".lower()
    return all(word in hay for word in text.lower().split())


class FleetScreen(LiveScreen):
    """All devices; enter opens one, space marks devices to compare."""

    BINDINGS = [
        Binding("enter", "open_device", "Device"),
        Binding("space", "toggle_mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("s", "sort_next", "Sort"),
        Binding("S", "sort_reverse", "Reverse", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("h", "host_filter", "Host"),
        Binding("g", "category_filter", "Category"),
        Binding("a", "sample_all", "Sample all"),
        Binding("p", "campaign", "Campaign"),
        Binding("escape", "clear_filters", "Clear", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sort_key = "host"
        self.sort_reverse = False
        self.filter_text = ""
        self.host_filter: str | None = None
        self.category_filter: str | None = None
        self.marked: set[str] = set()
        self._views: dict[str, DeviceView] = {}
        self._shown: list[str] = []  # row keys in table order
        self._cells: dict[str, tuple[Any, ...]] = {}
        self.compact: bool | None = None
        self._status_text = ""
        self.columns: tuple[Column, ...] = COLUMNS

    def compose(self) -> ComposeResult:
        yield TopBar("fleet")
        yield Input(placeholder="filter: words matched in host, device, category, state", id="filter")
        table: DataTable[Any] = DataTable(id="fleet", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="fleet-status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self._layout(self.app.size.width)
        self.query_one(DataTable).focus()
        self.show_views(getattr(self.app, "views", []))
        self.ready = True

    def on_resize(self) -> None:
        if self._layout(self.size.width):
            self.show_views(list(self._views.values()))

    def _layout(self, width: int) -> bool:
        """Pick the wide or compact columns for this width; True when the columns changed."""
        compact = width < COMPACT_BELOW
        if compact == self.compact:
            return False
        self.compact = compact
        self.columns = COMPACT_COLUMNS if compact else COLUMNS
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_column(" ", key="mark", width=1)
        for col in self.columns:
            table.add_column(col.label, key=col.key, width=col.width)
        self._shown = []  # rows are re-added by the next show_views
        return True

    # -- refresh ------------------------------------------------------------------------------
    def show_views(self, views: list[DeviceView]) -> None:
        """Update cells in place; rebuild the row order only when rows come, go, or sort/filter changes."""
        self._views = {v.key: v for v in views}
        wanted = self._ordered_keys()
        table = self.query_one(DataTable)
        if wanted != self._shown:
            self._rebuild(table, wanted)
        else:
            for key in wanted:
                cells = self._row(self._views[key])
                old = self._cells.get(key)
                for i, (value, col_key) in enumerate(zip(cells, self._col_keys(), strict=True)):
                    if old is None or old[i] != value:
                        table.update_cell(key, col_key, value)
                self._cells[key] = cells
        self._status()

    def _col_keys(self) -> list[str]:
        return ["mark", *[c.key for c in self.columns]]

    def _row(self, view: DeviceView) -> tuple[Any, ...]:
        mark = Text("●", style="bold #d787ff") if view.key in self.marked else Text(" ")
        return (mark, *[c.cell(view) for c in self.columns])

    def _ordered_keys(self) -> list[str]:
        shown = [v for v in self._views.values()
                 if matches(v, self.filter_text, self.host_filter, self.category_filter)]
        col = next(c for c in COLUMNS if c.key == self.sort_key)
        assert col.sort is not None
        shown.sort(key=lambda v: (col.sort(v), v.key), reverse=self.sort_reverse)
        return [v.key for v in shown]

    def _rebuild(self, table: DataTable[Any], keys: list[str]) -> None:
        selected = self.selected_key()
        table.clear()
        self._cells = {}
        for key in keys:
            cells = self._row(self._views[key])
            table.add_row(*cells, key=key)
            self._cells[key] = cells
        self._shown = keys
        if selected in keys:
            table.move_cursor(row=keys.index(selected), animate=False)

    def _status(self) -> None:
        parts = [f"sort [b]{self.sort_key}[/b]{' ↓' if self.sort_reverse else ''}"]
        if self.host_filter:
            parts.append(f"host [b]{self.host_filter}[/b]")
        if self.category_filter:
            parts.append(f"category [b]{self.category_filter}[/b]")
        if self.filter_text:
            parts.append(f"filter [b]{self.filter_text}[/b]")
        if self.marked:
            parts.append(f"[b]{len(self.marked)}[/b] marked for compare")
        parts.append(f"{len(self._shown)} of {len(self._views)} devices")
        selected = self._views.get(self.selected_key() or "")
        detail = units.detail_line(selected) if selected is not None else ""
        if selected is not None and detail:
            parts.append(f"[#ff875f]{escape(selected.key)}: {escape(detail)}[/]")
        text = "  ·  ".join(parts)
        if text != self._status_text:  # a fixed one-line bar: repaint only, no layout pass
            self._status_text = text
            self.query_one("#fleet-status", Static).update(text, layout=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._status()  # the status line names the selected device's last notice

    def selected_key(self) -> str | None:
        """Row key under the cursor, if any."""
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value

    def _resort(self) -> None:
        self.show_views(list(self._views.values()))

    # -- actions ------------------------------------------------------------------------------
    def action_open_device(self) -> None:
        key = self.selected_key()
        if key is not None:
            self.app.open_device(key)  # type: ignore[attr-defined]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # Enter or a click on the selected row: same as the `enter` binding.
        event.stop()
        if event.row_key.value is not None:
            self.app.open_device(event.row_key.value)  # type: ignore[attr-defined]

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key in SORTABLE:
            self.sort_reverse = not self.sort_reverse if key == self.sort_key else False
            self.sort_key = key
            self._resort()

    def action_toggle_mark(self) -> None:
        key = self.selected_key()
        if key is None:
            return
        self.marked.symmetric_difference_update({key})
        self.show_views(list(self._views.values()))
        table = self.query_one(DataTable)
        table.move_cursor(row=min(table.cursor_row + 1, table.row_count - 1))

    def action_compare(self) -> None:
        keys = [k for k in self._shown if k in self.marked] or list(self._shown)
        self.app.open_compare(keys)  # type: ignore[attr-defined]

    def action_sort_next(self) -> None:
        self.sort_key = SORTABLE[(SORTABLE.index(self.sort_key) + 1) % len(SORTABLE)]
        self._resort()

    def action_sort_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._resort()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self._resort()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(DataTable).focus()
        if not event.value:
            event.input.display = False

    def action_host_filter(self) -> None:
        hosts = sorted({v.host for v in self._views.values()})
        self.host_filter = _cycle(self.host_filter, hosts)
        self._resort()

    def action_category_filter(self) -> None:
        cats = sorted({v.category for v in self._views.values() if v.category})
        self.category_filter = _cycle(self.category_filter, cats)
        self._resort()

    def action_clear_filters(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.filter_text, self.host_filter, self.category_filter = "", None, None
        self.query_one(DataTable).focus()
        self._resort()

    def action_sample_all(self) -> None:
        """Start a sampling-only job on every shown device that has none (power and GWP start moving)."""
        idle = [self._views[k] for k in self._shown if self._views[k].job_id is None
                and self._views[k].state.value in ("idle", "stalled")]
        if not idle:
            self.notify("every shown device already runs a job", severity="warning")
        self.app.sample(idle)  # type: ignore[attr-defined]

    def action_campaign(self) -> None:
        self.app.ask_campaign()  # type: ignore[attr-defined]


def _cycle(current: str | None, options: list[str]) -> str | None:
    """None -> first -> ... -> last -> None."""
    if not options:
        return None
    if current not in options:
        return options[0]
    i = options.index(current)
    return options[i + 1] if i + 1 < len(options) else None
