"""The one-line header every screen shows: product, lab, screen title, fleet counts, clock."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class TopBar(Static):
    """Dim labels, bright values; the app sets `lab`, `counts` and `clock_text` on each tick."""

    DEFAULT_CSS = """
    TopBar {
        height: 1;
        background: $panel;
        color: $text;
        padding: 0 1;
    }
    """

    def __init__(self, title: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.title = title
        self.lab = ""
        self.counts = ""
        self.clock_text = ""

    def show(self, *, lab: str, counts: str, clock_text: str) -> None:
        """Update the fields; repaints only when something changed."""
        if (lab, counts, clock_text) != (self.lab, self.counts, self.clock_text):
            self.lab, self.counts, self.clock_text = lab, counts, clock_text
            self.update(self._text(), layout=False)  # one fixed line: no layout pass per tick

    def on_mount(self) -> None:
        # A screen pushed between ticks shows the current fields at once, not at the next tick.
        fields = getattr(self.app, "topbar_fields", None)
        if callable(fields):
            self.lab, self.counts, self.clock_text = fields()
        self.update(self._text())

    def _text(self) -> Text:
        left = Text.assemble(("wattlab", "bold #5fd7ff"), ("  lab ", "dim"), (self.lab or "—", "bold"),
                             ("  ·  ", "dim"), (self.title, "bold"))
        right = Text.assemble((self.counts, ""), ("  ", ""), (self.clock_text, "dim"))
        width = max(0, self.size.width - 2) if self.size.width else 0
        pad = max(1, width - left.cell_len - right.cell_len)
        return Text.assemble(left, " " * pad, right)

    def on_resize(self) -> None:
        self.update(self._text(), layout=False)
