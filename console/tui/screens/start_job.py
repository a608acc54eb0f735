"""Start-job dialog: pick a named scenario or type a command; dismisses with the `start` spec."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from console.errors import WattlabError
from console.tui.scenarios import Scenario, command_spec, scenario_spec


class StartJobScreen(ModalScreen[dict[str, Any] | None]):
    """Enter on a scenario starts it; Enter in the command line runs that argv (never via a shell)."""

    DEFAULT_CSS = """
    StartJobScreen { align: center middle; }
    StartJobScreen > Vertical {
        width: 84; max-width: 98%; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    StartJobScreen .dialog-title { text-style: bold; padding: 1 0 0 0; }
    StartJobScreen .hint { color: $text-muted; }
    StartJobScreen OptionList { height: auto; max-height: 12; margin: 1 0; }
    StartJobScreen #start-error { color: $error; height: auto; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("tab", "app.focus_next", "Next field", show=False),
    ]

    def __init__(self, target: str, scenarios: list[Scenario], *, error: str | None = None) -> None:
        super().__init__()
        self._target = target
        self._scenarios = scenarios
        self._load_error = error

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Start a job on {self._target}", classes="dialog-title")
            yield OptionList(
                *[Option(Text.assemble((s.name.ljust(18), "bold"), (s.description, "dim")), id=s.name)
                  for s in self._scenarios],
                id="scenarios",
            )
            yield Static("or run a command (argv, split like a shell, run without one):", classes="hint")
            yield Input(placeholder="python3 infer.py --model bert --n 100", id="command")
            yield Static(self._load_error or "", id="start-error")
            yield Static("enter start · tab switch · esc cancel", classes="hint")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        if self._scenarios:
            options.highlighted = 0
            options.focus()
        else:
            self.query_one("#command", Input).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        chosen = next(s for s in self._scenarios if s.name == event.option.id)
        self.dismiss(scenario_spec(chosen))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            self.dismiss(command_spec(event.value))
        except WattlabError as err:
            self.query_one("#start-error", Static).update(str(err))

    def action_cancel(self) -> None:
        self.dismiss(None)
