"""`wattlab import PATH [--power LOG] [--device HWID] [--host NAME]`: an existing MLPerf, trtexec or
llama-bench result (plus an optional power log) becomes a run directory next to measured runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the `import` command to the CLI."""
    app.command("import", help="Turn an MLPerf, trtexec or llama-bench result into a run.")(import_cmd)


def import_cmd(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="Result file, or an MLPerf run dir (mlperf_log_*.txt)."),
    power: Optional[Path] = typer.Option(None, "--power", help="nvidia-smi CSV, spl.txt or tegrastats log."),
    device: Optional[str] = typer.Option(None, "--device", help="Hardware profile id (embodied share, PUE)."),
    host: Optional[str] = typer.Option(None, "--host", help="Lab host the result came from (grid, PUE)."),
    logs: Optional[Path] = typer.Option(None, "--logs", help="Where runs are written (default ./logs)."),
    json_out: bool = typer.Option(False, "--json", help="Print {run_dir, summary} as JSON."),
    grid: Optional[str] = typer.Option(None, "--grid", help="Grid id or region (default: the lab's)."),
    pue: Optional[float] = typer.Option(None, "--pue", min=1.0, help="PUE (default: the device category's)."),
    campaign: str = typer.Option("imported", "--campaign", help="Folder under the logs root."),
    power_interval_ms: float = typer.Option(1000.0, "--power-interval-ms", min=1.0,
                                            help="Sample spacing of a tegrastats log without dates."),
    power_offset_s: float = typer.Option(0.0, "--power-offset-s",
                                         help="Seconds to add to the power log's clock to get UTC."),
    lab: Optional[Path] = typer.Option(None, "--lab", help="Lab file (default profiles/lab.toml)."),
) -> None:
    """Import the result, write the run directory, print where it is and what it says."""
    from console.importer import ImportOptions, import_run
    from console.lab import load_lab, resolve_host
    from console.paths import logs_dir
    from console.runner import impact_context

    parent = ctx.parent.params if ctx.parent is not None else {}
    lab = lab or parent.get("lab")
    logs = logs or parent.get("logs")
    lab_host = resolve_host(host or "local", load_lab(lab) if lab else None)
    hardware_id = device or (lab_host.target[4:] if lab_host.target.startswith("sim:") else None)
    impact = impact_context(hardware_id, grid or lab_host.grid, pue if pue is not None else lab_host.pue)
    # reports group runs by host: name the imported run after the device when no host is given
    options = ImportOptions(host=host or hardware_id or "imported", hardware_id=hardware_id,
                            campaign=campaign, power=power, power_interval_ms=power_interval_ms,
                            power_offset_s=power_offset_s)
    run_dir, summary = import_run(path, logs_dir(logs), options, impact)
    if json_out:
        typer.echo(json.dumps({"run_dir": str(run_dir), "summary": summary}, indent=2, sort_keys=True))
    else:
        typer.echo(format_import(run_dir, summary))


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_import(run_dir: Path, summary: dict[str, Any]) -> str:
    """A few human lines: where the run went, latency, energy and GWP per query."""
    lat = summary.get("latency_ms") or {}
    gwp = summary.get("gwp_g") or {}
    lines = [
        f"imported into {run_dir}",
        f"  queries {summary.get('queries') or '-'}   latency ms "
        + "  ".join(f"{k} {_num(lat.get(k), '.3f')}" for k in ("p50", "p90", "p99", "max")),
        f"  energy {_num(summary.get('energy_j'), '.2f')} J over {_num(summary.get('duration_s'), '.2f')} s"
        f"   per query {_num(summary.get('energy_per_query_j'), '.4g')} J",
    ]
    if gwp:
        lines.append(f"  GWP {gwp['total']:.4g} g [{gwp['low']:.4g}, {gwp['high']:.4g}]   "
                     f"per query {_num(summary.get('gwp_per_query_mg'), '.4g')} mg")
    for note in (summary.get("method") or {}).get("import_notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines)
