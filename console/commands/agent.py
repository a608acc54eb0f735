"""`wattlab agent bridge|daemon|probe|pack|stop`: the device agent's own commands.

Each delegates to `agents.__main__.main`, the same entry the zipapp runs on a device, so the
console and a deployed agent behave identically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

agent_app = typer.Typer(
    help="The device agent's own entry (what runs on the device).",
    no_args_is_help=True,
)


def _run(argv: list[str]) -> None:
    from agents.__main__ import main

    code = main(argv)
    if code:
        raise typer.Exit(code)


def _home(home: Optional[Path]) -> list[str]:
    return ["--home", str(home)] if home else []


HOME_OPTION = typer.Option(None, "--home", help="Agent state dir (default $WATTLAB_AGENT_HOME).")


@agent_app.command()
def bridge(home: Optional[Path] = HOME_OPTION) -> None:
    """Relay stdin/stdout to the agent daemon, starting it if needed."""
    _run([*_home(home), "bridge"])


@agent_app.command()
def daemon(
    foreground: bool = typer.Option(False, "--foreground", help="Run in this process, do not detach."),
    idle_exit: Optional[float] = typer.Option(None, "--idle-exit", help="Exit after S idle seconds."),
    home: Optional[Path] = HOME_OPTION,
) -> None:
    """Run the per-user agent daemon (detached unless --foreground)."""
    argv = [*_home(home), "daemon"]
    if foreground:
        argv.append("--foreground")
    if idle_exit is not None:
        argv += ["--idle-exit", str(idle_exit)]
    _run(argv)


@agent_app.command()
def probe(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Samplers and devices this machine can measure."""
    _run(["probe", "--json"] if as_json else ["probe"])


@agent_app.command()
def pack(out: Path = typer.Option(..., "--out", help="Where to write the zipapp.")) -> None:
    """Build the agent zipapp and print its sha256."""
    _run(["pack", "--out", str(out)])


@agent_app.command()
def stop(home: Optional[Path] = HOME_OPTION) -> None:
    """Stop the running agent daemon (its jobs end as 'stopped')."""
    _run([*_home(home), "stop"])


def register(app: typer.Typer) -> None:
    """Add `wattlab agent ...` to the CLI."""
    app.add_typer(agent_app, name="agent")
