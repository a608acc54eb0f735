"""`?`: every key of the screen underneath, read from its BINDINGS (footer-hidden ones included)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def key_rows(bindings: Iterable[BindingType], display: Callable[[Binding], str]) -> list[tuple[str, str]]:
    """(keys, what they do) per action, in BINDINGS order; keys sharing an action share a row."""
    rows: dict[tuple[str, str], list[str]] = {}
    for b in Binding.make_bindings(bindings):
        what = b.description or b.action.replace("_", " ")
        keys = rows.setdefault((b.action, what), [])
        shown = display(b)
        if shown not in keys:
            keys.append(shown)
    return [(" ".join(keys), what) for (_action, what), keys in rows.items()]


class HelpScreen(ModalScreen[None]):
    """A modal table of keys; any of esc, ? or q closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 64; max-width: 95%; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 0 2;
    }
    HelpScreen #help-title { text-style: bold; margin: 1 0; }
    HelpScreen #help-hint { color: $text-muted; margin: 1 0; }
    """
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, title: str, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self._title = title
        self._sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self._title, id="help-title")
            yield Static(self.keys_table(), id="help-keys")
            yield Static("mouse: click a row or header, scroll plots · esc, ? or q closes", id="help-hint")

    def keys_table(self) -> Table:
        """The keys as a two-column table (what the screen shows)."""
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold #5fd7ff", no_wrap=True, justify="right")
        table.add_column()
        for i, (heading, rows) in enumerate(self._sections):
            if i:
                table.add_row("", "")
            table.add_row("", f"[dim]{heading}[/]")
            for keys, what in rows:
                table.add_row(keys, what)
        return table

    def action_close(self) -> None:
        self.dismiss(None)
