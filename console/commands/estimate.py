"""`wattlab estimate`: roofline latency and GWP of one inference on a device that is not at hand.

As in the study, energy is TDP x roofline time (an upper-bound style estimate: the device at full power for
the whole inference), the grid defaults to ADEME's French mix (FR-ademe, 79.1 gCO2e/kWh), PUE to the device's
category and lifetime to 7 years.
"""

from __future__ import annotations

import json
from typing import Any, List, Optional

import typer

from console.commands.devices import format_table
from console.errors import UsageError
from console.impact import Interval, adp_pe, gwp
from console.profiles import EmbodiedData, GridFactor, HardwareProfile, get_device, get_grid, load_embodied
from console.roofline import PRECISIONS, roofline

DEFAULT_GRID = "FR-ademe"  # the study's factor (ADEME Base Empreinte)


def resolve_grid(region: str | None, g_per_kwh: float | None) -> GridFactor:
    """--grid REGION or --grid-g-per-kwh X (not both) as a GridFactor; default FR-ademe."""
    if region is not None and g_per_kwh is not None:
        raise UsageError("give either --grid REGION or --grid-g-per-kwh X, not both")
    if g_per_kwh is not None:
        if not g_per_kwh >= 0:  # also refuses NaN
            raise UsageError(f"--grid-g-per-kwh must be >= 0, got {g_per_kwh}")
        return GridFactor(id="custom", region="custom", g_per_kwh=g_per_kwh, low=g_per_kwh, high=g_per_kwh,
                          source="--grid-g-per-kwh")
    return get_grid(region or DEFAULT_GRID)


def estimate_one(
    hw: HardwareProfile,
    flops: float,
    grid: GridFactor,
    *,
    bytes_: float | None = None,
    precision: str = "fp32",
    pue: float | None = None,
    lifetime_years: float | None = None,
    queries: int = 1,
    embodied: EmbodiedData | None = None,
) -> dict[str, Any]:
    """The estimate for one device as the JSON-ready dict `wattlab estimate --json` prints (per inference)."""
    data = embodied if embodied is not None else load_embodied()
    lifetime = data.lifetime_years_default if lifetime_years is None else lifetime_years
    if queries < 1:
        raise UsageError(f"--queries must be >= 1, got {queries}")
    roof = roofline(hw, flops, bytes_, precision)
    if hw.tdp_w is None:
        raise UsageError(f"{hw.id} has no tdp_w in its profile, so energy (TDP x time) cannot be estimated",
                         where=hw.path or "profiles/hardware.toml")
    energy_j = hw.tdp_w * roof.latency_s
    result = gwp(energy_j, roof.latency_s, hw, Interval(grid.g_per_kwh, grid.low, grid.high), pue=pue,
                 lifetime_years=lifetime, embodied=data)
    extra = adp_pe(energy_j, result.pue, grid)
    estimated_fields = list(dict.fromkeys(roof.estimated + result.estimated))
    assert result.embodied_device_kg is not None  # hw is given, so F is computed (or an error was raised)
    return {
        "device": hw.id,
        "device_name": hw.name,
        "precision": precision,
        "flops": flops,
        "bytes": bytes_,
        "latency_s": roof.latency_s,
        "bound": roof.bound,
        "compute_s": roof.compute_s,
        "memory_s": roof.memory_s,
        "peak_tflops": roof.peak_tflops,
        "energy_j": energy_j,
        "energy_basis": f"tdp_w ({hw.tdp_w:g} W) x latency_s",
        "gwp_g": result.as_dict(),
        "embodied_device_kg": result.embodied_device_kg.as_dict(),
        "embodied_scope": "processor die + memory only (the study's scope)",
        "adp_kgsb": extra.adp_kgsb if extra else None,
        "pe_mj": extra.pe_mj if extra else None,
        "grid": {"id": grid.id, "g_per_kwh": grid.g_per_kwh, "low": grid.low, "high": grid.high,
                 "year": grid.year, "source": grid.source},
        "pue": result.pue,
        "lifetime_years": lifetime,
        "queries": queries,
        "total_for_queries": {
            "latency_s": roof.latency_s * queries,
            "energy_j": energy_j * queries,
            "gwp_g": {k: v * queries for k, v in result.as_dict().items()},
        },
        "estimated": bool(estimated_fields),
        "estimated_fields": estimated_fields,
        "unverified_fields": list(hw.unverified),
    }


def _g(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.3g}{unit}"


def format_one(est: dict[str, Any]) -> str:
    """Human summary of one estimate: aligned `label  value` lines."""
    gwp_g, f_kg, grid = est["gwp_g"], est["embodied_device_kg"], est["grid"]
    lines = [
        ("device", f"{est['device']} ({est['device_name']})"),
        ("latency", f"{_g(est['latency_s'], ' s')} ({est['bound']}-bound, {est['precision']}, "
                    f"peak {est['peak_tflops']:g} TFLOPS)"),
        ("energy", f"{_g(est['energy_j'], ' J')} ({est['energy_basis']})"),
        ("GWP", f"{_g(gwp_g['total'], ' gCO2e')} [{_g(gwp_g['low'])}, {_g(gwp_g['high'])}]"),
        ("  operational", _g(gwp_g["operational"], " g")),
        ("  embodied", _g(gwp_g["embodied"], " g")),
        ("embodied F", f"{f_kg['value']:.1f} kgCO2e [{f_kg['low']:.1f}, {f_kg['high']:.1f}], "
                       f"{est['embodied_scope']}"),
        ("grid", f"{grid['id']}: {grid['g_per_kwh']:g} gCO2e/kWh [{grid['low']:g}, {grid['high']:g}]"),
        ("PUE, lifetime", f"{est['pue']:g}, {est['lifetime_years']:g} y"),
    ]
    if est["adp_kgsb"] is not None:
        lines.append(("ADPe, PE", f"{est['adp_kgsb']:.3g} kgSbeq, {est['pe_mj']:.3g} MJ (operational only)"))
    if est["queries"] > 1:
        total = est["total_for_queries"]
        lines.append((f"x {est['queries']} queries",
                      f"{_g(total['latency_s'], ' s')}, {_g(total['energy_j'], ' J')}, "
                      f"{_g(total['gwp_g']['total'], ' gCO2e')} [{_g(total['gwp_g']['low'])}, "
                      f"{_g(total['gwp_g']['high'])}]"))
    if est["estimated"]:
        lines.append(("estimated", ", ".join(est["estimated_fields"])))
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in lines)


def format_compare(estimates: list[dict[str, Any]]) -> str:
    """Several devices side by side, one row each."""
    headers = ["device", "latency s", "bound", "energy J", "GWP gCO2e [low, high]", "F kg", "PUE",
               "estimated"]
    rows = [[e["device"], _g(e["latency_s"]), e["bound"], _g(e["energy_j"]),
             f"{_g(e['gwp_g']['total'])} [{_g(e['gwp_g']['low'])}, {_g(e['gwp_g']['high'])}]",
             f"{e['embodied_device_kg']['value']:.1f}", f"{e['pue']:g}",
             ", ".join(e["estimated_fields"]) or "-"]
            for e in estimates]
    first = estimates[0]
    footer = (f"\nflops {first['flops']:g}, {first['precision']}, grid {first['grid']['id']} "
              f"{first['grid']['g_per_kwh']:g} gCO2e/kWh, lifetime {first['lifetime_years']:g} y, "
              "energy = TDP x time")
    return format_table(headers, rows, right=(1, 3, 5, 6)) + footer


def register(app: typer.Typer) -> None:
    """Add `wattlab estimate` to the CLI."""

    @app.command("estimate", context_settings={"allow_extra_args": True})
    def estimate(
        ctx: typer.Context,
        device: str = typer.Option(..., "--device", help="Hardware id (see `wattlab devices`)."),
        flops: float = typer.Option(..., "--flops", help="FLOPs of one inference, e.g. 1.6505e13."),
        bytes_: Optional[float] = typer.Option(None, "--bytes", help="Bytes read/written per inference."),
        precision: str = typer.Option("fp32", "--precision", help=f"One of: {', '.join(PRECISIONS)}."),
        grid: Optional[str] = typer.Option(None, "--grid", help=f"Grid id/region, default {DEFAULT_GRID}"),
        grid_g_per_kwh: Optional[float] = typer.Option(None, "--grid-g-per-kwh", help="Grid gCO2e/kWh."),
        pue: Optional[float] = typer.Option(None, "--pue", help="PUE (default: datacenter 1.5, others 1.0)."),
        lifetime_years: Optional[float] = typer.Option(None, "--lifetime-years", help="Default 7."),
        queries: int = typer.Option(1, "--queries", help="Also report totals for N queries."),
        compare: Optional[List[str]] = typer.Option(None, "--compare", help="More ids: --compare ID ID..."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Roofline time and GWP for one inference, no hardware needed."""
        extra = list(ctx.args)
        if extra and not compare:
            raise UsageError(f"unexpected argument(s): {' '.join(extra)}",
                             fix="to compare devices: --compare ID ID...")
        others = [i for item in [*(compare or []), *extra] for i in item.split(",") if i]
        ids = list(dict.fromkeys([device, *others]))
        grid_factor = resolve_grid(grid, grid_g_per_kwh)
        embodied = load_embodied()
        results = [estimate_one(get_device(i), flops, grid_factor, bytes_=bytes_, precision=precision,
                                pue=pue, lifetime_years=lifetime_years, queries=queries, embodied=embodied)
                   for i in ids]
        if as_json:
            typer.echo(json.dumps(results if compare else results[0], indent=2))
        elif compare:
            typer.echo(format_compare(results))
        else:
            typer.echo(format_one(results[0]))
