"""Campaign screen: progress of a campaign directory from its manifest.json, re-read every 2 s."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, ProgressBar, Static

from console.tui import units
from console.tui.campaign_manifest import Progress, read_manifest
from console.tui.widgets.topbar import TopBar

CELL_STYLES = {"done": "#87d75f", "running": "bold #5fd7ff", "queued": "grey62", "failed": "bold #ff5f5f"}
REFRESH_S = 2.0


class CampaignScreen(Screen[None]):
    """Counts, ETA and a per-cell table; attaches to any campaign directory, running or finished."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "reload", "Reload"),
    ]

    class ManifestRead(Message):
        """A fresh read of the manifest (done in a thread: the directory may be on a slow disk)."""

        def __init__(self, progress: Progress) -> None:
            super().__init__()
            self.progress = progress

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self.progress: Progress | None = None
        self._rows: dict[str, tuple[str, ...]] = {}

    def compose(self) -> ComposeResult:
        yield TopBar(f"campaign {self.directory.name}")
        yield Static(id="campaign-summary")
        yield ProgressBar(id="campaign-bar", show_eta=False)
        yield DataTable(id="campaign-cells", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for col in ("cell", "device", "scenario", "repeat", "state", "duration", "run dir / error"):
            table.add_column(col, key=col)
        self.reload()
        self.set_interval(REFRESH_S, self.reload)

    @work(thread=True, exclusive=True, group="campaign-manifest")
    def reload(self) -> None:
        """Read the manifest off the UI thread."""
        now = self.app.clock()  # type: ignore[attr-defined]
        self.post_message(self.ManifestRead(read_manifest(self.directory, now)))

    def action_reload(self) -> None:
        self.reload()

    def on_campaign_screen_manifest_read(self, message: ManifestRead) -> None:
        self.show_progress(message.progress)

    def show_progress(self, p: Progress) -> None:
        """Draw counts, ETA and cells; rows are updated in place when the cell list is unchanged."""
        self.progress = p
        c = p.counts
        total = len(p.cells)
        summary = Text.assemble(
            (p.name, "bold"), ("  ·  ", "dim"),
            *[part for state in ("done", "running", "queued", "failed")
              for part in ((f"{c.get(state, 0)} {state}", CELL_STYLES[state]), ("  ", ""))],
            ("·  ETA ", "dim"), (units.duration(p.eta_s) if p.eta_s is not None else "—", "bold"),
        )
        if p.problem:
            summary = Text(p.problem, style="bold #ff875f")
        self.query_one("#campaign-summary", Static).update(summary, layout=False)
        finished = c.get("done", 0) + c.get("failed", 0)
        self.query_one(ProgressBar).update(total=max(1, total), progress=finished)
        table = self.query_one(DataTable)
        rows = {cell.id: (
            cell.id, cell.device, cell.scenario, str(cell.repeat), cell.state,
            units.duration(cell.duration_s) if cell.duration_s is not None else units.DASH,
            cell.error or cell.run_dir or "",
        ) for cell in p.cells}
        if list(rows) != list(self._rows):
            table.clear()
            for key, row in rows.items():
                table.add_row(*self._styled(row), key=key)
        else:
            for key, row in rows.items():
                if row != self._rows[key]:
                    for col, value in zip(table.columns, self._styled(row), strict=True):
                        table.update_cell(key, col, value)
        self._rows = rows

    @staticmethod
    def _styled(row: tuple[str, ...]) -> tuple[object, ...]:
        return (*row[:4], Text(row[4], style=CELL_STYLES.get(row[4], "")), *row[5:])
