"""`wattlab campaign run FILE | resume DIR | status DIR`."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import typer


def _printer(total: int) -> tuple[float, Callable[..., None]]:
    """An on_progress that prints one line per finished cell with counts and ETA (no tty tricks)."""
    start = time.monotonic()
    lock = threading.Lock()

    def on_progress(manifest, cell) -> None:
        from console.campaign import eta_s

        if cell.state == "running":
            return
        counts = manifest.counts()
        eta = eta_s(manifest)
        eta_text = f", ETA {eta / 60:.1f} min" if eta is not None and counts["done"] < total else ""
        done = counts["done"]
        bar = "#" * int(20 * done / max(total, 1))
        line = (f"[{bar:<20}] {done}/{total} {cell.state:6} {cell.id}"
                f"{' — ' + cell.error if cell.error else ''} ({time.monotonic() - start:.0f} s{eta_text})")
        with lock:
            typer.echo(line)

    return start, on_progress


def _finish(manifest) -> None:
    from console.campaign import status_lines

    counts = manifest.counts()
    for line in status_lines(manifest):
        typer.echo(line)
    if counts["done"] != len(manifest.cells):
        typer.echo(f"not every cell is done: `wattlab campaign resume {manifest.out}` continues", err=True)
        raise typer.Exit(1)
    typer.echo(f"report: wattlab report {manifest.out} --format md")


def register(app: typer.Typer) -> None:
    """Add the `campaign` command group."""
    group = typer.Typer(help="Matrices of devices x scenarios x repeats that resume after any crash.",
                        no_args_is_help=True)

    @group.command("run")
    def run_cmd(
        file: Path = typer.Argument(..., help="Campaign file (profiles/campaigns/*.toml)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Campaign directory (default logs/<name>)."),
        lab: Optional[Path] = typer.Option(None, "--lab", help="Lab file (default: the campaign's)."),
        check: bool = typer.Option(False, "--check", help="Validate and list the cells only."),
    ) -> None:
        """Validate FILE (every problem listed with its line), then run every cell."""
        from console.campaign import expand, load_for_run, run_campaign
        from console.lab import load_lab
        from console.paths import logs_dir

        spec, lab_obj = load_for_run(file, load_lab(lab) if lab else None)
        cells = expand(spec)
        if check:
            for cell in cells:
                typer.echo(cell.id)
            typer.echo(f"{len(cells)} cells on {len(spec.devices)} devices: the file is valid")
            return
        target = out or logs_dir() / spec.name
        typer.echo(f"campaign {spec.name}: {len(cells)} cells -> {target}")
        _, progress = _printer(len(cells))
        _finish(run_campaign(spec, target, lab=lab_obj, on_progress=progress))

    @group.command("resume")
    def resume_cmd(
        directory: Path = typer.Argument(..., help="Campaign directory (holds manifest.json)."),
        lab: Optional[Path] = typer.Option(None, "--lab", help="Lab file (default: the campaign's)."),
    ) -> None:
        """Skip done cells, re-attach to jobs still running on devices, re-run failed/lost/incomplete ones."""
        from console.campaign import Manifest, resume_campaign
        from console.lab import load_lab

        manifest = Manifest.load(directory)
        todo = len(manifest.cells) - manifest.counts()["done"]
        typer.echo(f"campaign {manifest.name}: resuming {todo} of {len(manifest.cells)} cells")
        _, progress = _printer(len(manifest.cells))
        _finish(resume_campaign(directory, lab=load_lab(lab) if lab else None, on_progress=progress))

    @group.command("status")
    def status_cmd(
        directory: Path = typer.Argument(..., help="Campaign directory (holds manifest.json)."),
        json_out: bool = typer.Option(False, "--json", help="The manifest as JSON."),
    ) -> None:
        """Cells done / running / queued / failed / lost, ETA, and the unfinished cells."""
        from console.campaign import MANIFEST, Manifest, status_lines

        manifest = Manifest.load(directory)
        if json_out:
            sys.stdout.write((directory / MANIFEST).read_text())
            return
        for line in status_lines(manifest):
            typer.echo(line)

    app.add_typer(group, name="campaign")
