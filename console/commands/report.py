"""`wattlab report DIR`: tables and figures from a campaign (or any directory of runs)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from console.errors import UsageError


def register(app: typer.Typer) -> None:
    """Add the `report` command."""

    @app.command("report")
    def report_cmd(
        directory: Path = typer.Argument(..., help="Campaign directory (or a logs root) with run dirs."),
        fmt: str = typer.Option("md", "--format", "-f", help="md | csv | html | png"),
        out: Optional[Path] = typer.Option(None, "--out", "-o",
                                           help="Write here (default: stdout for md/csv, DIR/report.<fmt>)."),
        users: int = typer.Option(1000, "--users", help="What-if: number of users."),
        queries_per_day: int = typer.Option(100, "--queries-per-day", help="What-if: queries/user/day."),
        include_incomplete: bool = typer.Option(False, "--include-incomplete",
                                                help="Also count runs that did not finish."),
    ) -> None:
        """Per device x scenario: energy, latency and GWP per query (mean ± std), pivot, profiles, Pareto."""
        from console.report import FORMATS, build_report, render

        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r}", fix=f"use one of: {', '.join(FORMATS)}")
        if users <= 0 or queries_per_day <= 0:
            raise UsageError("--users and --queries-per-day must be positive")
        rep = build_report(directory, users=users, queries_per_day=queries_per_day,
                           include_incomplete=include_incomplete)
        for warning in rep.warnings:
            typer.echo(f"warning: {warning}", err=True)
        data = render(rep, fmt)
        if out is None and fmt in ("md", "csv"):
            sys.stdout.write(data if isinstance(data, str) else data.decode())
            return
        target = out or directory / f"report.{fmt}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                target.write_bytes(data)
            else:
                target.write_text(data)
        except OSError as exc:
            raise UsageError(f"cannot write report: {exc}", where=str(target)) from exc
        typer.echo(f"wrote {target}")
