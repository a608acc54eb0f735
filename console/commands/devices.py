"""`wattlab devices`: the hardware database as an aligned table or JSON, with each device's embodied F."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Optional

import typer

from console.errors import UsageError, WattlabError
from console.impact import embodied_kg
from console.profiles import CATEGORIES, EmbodiedData, HardwareProfile, load_embodied, load_hardware


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Plain-text table, columns padded to their widest cell; `right` lists right-aligned column indexes."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in pairs).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def fmt_num(value: float | None, estimated: bool = False, spec: str = "g") -> str:
    """A number for a table cell: '?' when unknown, a trailing '*' when it is an estimate."""
    if value is None:
        return "?"
    return format(value, spec) + ("*" if estimated else "")


def device_record(hw: HardwareProfile, embodied: EmbodiedData) -> dict[str, Any]:
    """One device as a JSON-ready dict: the profile's fields, estimates, and F kg [low, high] (or null)."""
    try:
        f = embodied_kg(hw, embodied)
        f_kg: dict[str, Any] | None = f.as_dict()
        f_est, f_error = list(f.estimated), None
    except WattlabError as err:  # a device with unknown die/memory still lists; F is reported missing
        f_kg, f_est, f_error = None, [], err.what
    record = {
        "id": hw.id, "vendor": hw.vendor, "name": hw.name, "category": hw.category, "arch": hw.arch,
        "die_mm2": hw.die_mm2, "node_nm": hw.node_nm, "foundry": hw.foundry, "process": hw.process,
        "year": hw.year, "memory_gb": hw.memory_gb, "memory_type": hw.memory_type, "tdp_w": hw.tdp_w,
        "fp32_tflops": hw.fp32_tflops, "fp16_tensor_tflops": hw.fp16_tensor_tflops,
        "bandwidth_gb_s": hw.bandwidth_gb_s, "pue_default": hw.pue_default,
        "power_sources": list(hw.power_sources), "estimates": dict(hw.estimates),
        "estimate_basis": dict(hw.estimate_basis), "unverified": list(hw.unverified),
        "sources": dict(hw.sources), "embodied_device_kg": f_kg, "embodied_estimated": f_est,
    }
    if f_error:
        record["embodied_error"] = f_error
    return record


def devices_table(profiles: Sequence[HardwareProfile], embodied: EmbodiedData) -> str:
    """The human table: id, name, category, die, node, memory, TDP, FP32, bandwidth, F kg [low, high]."""
    rows = []
    for hw in profiles:
        die, die_est = hw.number("die_mm2")
        try:
            f = embodied_kg(hw, embodied)
            f_cell = f"{f.value:.1f}{'*' if f.estimated else ''} [{f.low:.1f}, {f.high:.1f}]"
        except WattlabError:
            f_cell = "?"
        node = f"{hw.node_nm:g} nm {hw.foundry or ''}".strip() if hw.node_nm is not None else "?"
        memory = f"{hw.memory_gb:g} GB {hw.memory_type or ''}".strip() if hw.memory_gb is not None else "?"
        rows.append([hw.id, hw.name, hw.category, fmt_num(die, die_est), node, memory, fmt_num(hw.tdp_w),
                     fmt_num(hw.fp32_tflops), fmt_num(hw.bandwidth_gb_s), f_cell])
    headers = ["id", "name", "category", "die mm2", "node", "memory", "TDP W", "FP32 TF", "BW GB/s",
               "F kgCO2e [low, high]"]
    note = ("\n* = documented estimate (see profiles/hardware.toml estimate_basis); F = die + memory only "
            "(the study's scope)")
    return format_table(headers, rows, right=(3, 6, 7, 8)) + note


def register(app: typer.Typer) -> None:
    """Add `wattlab devices` to the CLI."""

    @app.command("devices")
    def devices(
        as_json: bool = typer.Option(False, "--json", help="Print JSON (a list of device records)."),
        category: Optional[str] = typer.Option(None, "--category", help=f"One of: {', '.join(CATEGORIES)}."),
    ) -> None:
        """The hardware database: specs, sources and embodied footprint F per device."""
        if category is not None and category not in CATEGORIES:
            raise UsageError(f"unknown category {category!r}", fix=f"use one of {', '.join(CATEGORIES)}")
        embodied = load_embodied()
        selected = [hw for hw in load_hardware().values() if category is None or hw.category == category]
        if as_json:
            typer.echo(json.dumps([device_record(hw, embodied) for hw in selected], indent=2))
        else:
            typer.echo(devices_table(selected, embodied))
