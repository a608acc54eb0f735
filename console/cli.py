"""`wattlab` command line (Typer). Each command lives in console/commands/<name>.py with a
`register(app)` function; heavy imports (pandas, paramiko, textual) happen inside the commands
so `wattlab --help` and the TUI start fast.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Optional

import typer

from console.errors import WattlabError

app = typer.Typer(
    name="wattlab",
    help="Measure energy, latency and GWP (gCO2e) of AI inference on Jetsons and GPU nodes.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Order = order in --help. Each module registers its own command(s).
COMMAND_MODULES = (
    "hosts",
    "measure",
    "bench",
    "campaign",
    "estimate",
    "report",
    "devices",
    "importcmd",
    "agent",
)


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    lab: Optional[Path] = typer.Option(None, "--lab", help="Lab file (default: the built-in simulated lab)."),
    logs: Optional[Path] = typer.Option(None, "--logs", help="Where runs are written (default ./logs)."),
    sample: bool = typer.Option(
        False, "--sample", help="Start sampling on every device once connected (GWP climbs at once; key a)."
    ),
) -> None:
    """With no command: open the console (TUI) on the lab."""
    if ctx.invoked_subcommand is not None:
        return
    from console.tui.app import run_app  # Textual is imported only here

    run_app(lab=lab, logs=logs, sample=sample)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"console.commands.{name}")
        module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI; a WattlabError becomes one message on stderr and an exit code."""
    _register_all()
    try:
        app(args=argv, standalone_mode=True)
    except WattlabError as err:
        typer.echo(f"wattlab: {err}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        typer.echo("wattlab: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
