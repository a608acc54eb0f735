"""`wattlab measure HOST [--device ID] (--duration S | -- CMD ARGS...)`: sample power while a command
runs (or for S seconds), write a run directory, print a summary (--json: summary.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from console.errors import UsageError


def register(app: typer.Typer) -> None:
    """Add the `measure` command to the CLI."""
    app.command(
        "measure",
        help="Sample power while a command runs (or for --duration S); write a run; print a summary.",
    )(measure)


def measure(
    ctx: typer.Context,
    host: Optional[str] = typer.Argument(None, help="Lab host name, local, sim:<hardware-id> or ssh://..."),
    cmd: Optional[List[str]] = typer.Argument(None, help="The workload, after `--` (argv, no shell)."),
    device: Optional[str] = typer.Option(None, "--device", help="Device id (default: the host's)."),
    interval_ms: int = typer.Option(100, "--interval-ms", min=1, help="Sampling interval."),
    idle_s: float = typer.Option(0.0, "--idle-s", min=0.0, help="Idle baseline first (subtracted)."),
    duration: Optional[float] = typer.Option(None, "--duration", min=0.0, help="Sample for S seconds."),
    json_out: bool = typer.Option(False, "--json", help="Print summary.json instead of the text summary."),
    logs: Optional[Path] = typer.Option(None, "--logs", help="Where runs are written (default ./logs)."),
    lab: Optional[Path] = typer.Option(None, "--lab", help="Lab file (default profiles/lab.toml)."),
    grid: Optional[str] = typer.Option(None, "--grid", help="Grid id or region of profiles/grids.toml."),
    pue: Optional[float] = typer.Option(None, "--pue", min=1.0, help="PUE (default: the device category's)."),
    attach: Optional[Path] = typer.Option(None, "--attach", help="Re-attach to an unfinished run's job."),
) -> None:
    """Run the measurement and print its summary; exit 1 when the workload failed."""
    from console import runner
    from console.lab import load_lab, resolve_host, with_overrides
    from console.paths import logs_dir

    parent = ctx.parent.params if ctx.parent is not None else {}
    lab = lab or parent.get("lab")
    logs = logs or parent.get("logs")
    progress = None if json_out else _progress_printer()
    if attach is not None:
        if host or cmd or duration is not None:
            raise UsageError("--attach RUN_DIR takes no HOST, command or --duration (they are in run.json)")
        result = runner.attach(attach, on_progress=progress)
    else:
        if not host:
            raise UsageError("missing HOST", fix="wattlab measure local -- sleep 1 (or sim:<hardware-id>)")
        if bool(cmd) == (duration is not None):
            raise UsageError("give either --duration S or a command after `--` (one of them)",
                             fix="wattlab measure local --duration 5, or wattlab measure local -- sleep 1")
        the_lab = load_lab(lab) if lab else None
        target = with_overrides(resolve_host(host, the_lab), grid=grid, pue=pue)
        spec = runner.JobSpec(device=device, interval_ms=interval_ms, idle_s=idle_s, duration_s=duration,
                              workload={"kind": "argv", "argv": list(cmd)} if cmd else None)
        result = runner.run_job(target, spec, logs_dir(logs), on_progress=progress)
    if progress is not None:
        sys.stderr.write("\r\033[K")
    if json_out:
        typer.echo(json.dumps(result.summary, indent=2, sort_keys=True))
    else:
        typer.echo(format_summary(result.summary, result.run_dir))
    if result.summary.get("state") == "stopped":  # Ctrl-C (or a stop from elsewhere): the run is kept
        typer.echo(f"wattlab: job stopped before its end (run kept in {result.run_dir})", err=True)
        raise typer.Exit(130)
    if result.summary.get("error"):
        typer.echo(f"wattlab: workload failed: {result.summary['error']} (samples kept in {result.run_dir})",
                   err=True)
        raise typer.Exit(1)


def _progress_printer():
    """One self-rewriting stderr line while the job runs (only on a terminal)."""
    if not sys.stderr.isatty():
        return None

    def show(p: Any) -> None:
        power = "-" if p.power_w is None else f"{p.power_w:.1f} W"
        sys.stderr.write(f"\r\033[K{p.state} {p.elapsed_s:5.1f} s  {power}  {p.energy_j:.1f} J  "
                         f"{p.samples} samples")
        sys.stderr.flush()

    return show


def _num(value: Any, fmt: str, unit: str) -> str:
    return "n/a" if value is None else f"{value:{fmt}} {unit}"


def format_summary(s: dict[str, Any], run_dir: Path) -> str:
    """The human summary: where, energy, power, duration, GWP with its interval."""
    m = s.get("method") or {}
    lines = [f"run       {run_dir}"]
    sampler = m.get("sampler") or "?"
    lines.append(f"device    {m.get('device')} via {sampler}"
                 + (" (simulated: not a measurement)" if (s.get("estimated") or {}).get("energy") else ""))
    lines.append(f"duration  {s['duration_s']:.2f} s   samples {s.get('samples', 0)}"
                 f"   state {s.get('state')}")
    if s.get("energy_j") is None:
        lines.append(f"power     not measured ({sampler} sampler: time only); "
                     "run `wattlab hosts` to see what this host can measure")
    else:
        counter = s.get("energy_counter_j")
        extra = f" (counter {counter:.2f} J)" if counter is not None else ""
        lines.append(f"energy    {s['energy_j']:.2f} J{extra}   mean {_num(s.get('mean_w'), '.2f', 'W')}"
                     f"   max {_num(s.get('max_w'), '.2f', 'W')}")
        if s.get("idle_w") is not None:
            net = _num(s.get("energy_net_j"), ".2f", "J")
            lines.append(f"idle      {s['idle_w']:.2f} W   net energy {net}")
    g = s.get("gwp_g")
    if g:
        lines.append(f"GWP       {g['total'] * 1000:.3f} mgCO2e"
                     f" [{g['low'] * 1000:.3f}, {g['high'] * 1000:.3f}]"
                     f"  (operational {g['operational'] * 1000:.3f}, embodied {g['embodied'] * 1000:.3f})"
                     f"  grid {m.get('grid_region')}, PUE {m.get('pue')}")
    if s.get("queries"):
        lat = s.get("latency_ms") or {}
        lines.append(f"queries   {s['queries']}   p50 {_num(lat.get('p50'), '.2f', 'ms')}   "
                     f"p99 {_num(lat.get('p99'), '.2f', 'ms')}   "
                     f"{_num(s.get('energy_per_query_j'), '.4f', 'J')}/query")
    for note in m.get("notes") or []:
        lines.append(f"note      {note}")
    if s.get("error"):
        lines.append(f"error     {s['error']}")
    return "\n".join(lines)
