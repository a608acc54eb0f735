"""The study's impact model, as pure functions over profile data (grams and kilograms CO2e).

    I = E_kWh x EF_grid x PUE  +  (t / lifetime) x F
    F = die_cm2 x I_proc(node, foundry)  +  mem_GB x I_mem(memory type)

Every factor is an `Interval(value, low, high)`: GWP "low" combines all low factors, "high" all high ones.
F covers the processor die and the memory only (the study's scope), not the board, heatsink or packaging.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from console.errors import UsageError
from console.profiles import EmbodiedData, GridFactor, HardwareProfile, load_embodied

J_PER_KWH = 3.6e6
SECONDS_PER_YEAR = 365.25 * 24 * 3600  # Julian year; the study does not say which year length it used


@dataclass(frozen=True)
class Interval:
    """A value with its [low, high] bounds; `estimated` names the inputs that were documented estimates."""

    value: float
    low: float
    high: float
    estimated: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.low <= self.value <= self.high:
            raise ValueError(f"Interval needs low <= value <= high: {self.low}, {self.value}, {self.high}")

    @classmethod
    def point(cls, value: float) -> Interval:
        """An exact value (low = value = high)."""
        return cls(value, value, value)

    def as_dict(self) -> dict[str, float]:
        """{value, low, high} for JSON output."""
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class GwpResult:
    """GWP of one job in grams CO2e: operational, embodied share, total, and total's [low, high]."""

    operational: float
    embodied: float
    total: float
    low: float
    high: float
    embodied_device_kg: Interval | None = None  # F of the whole device; None without a hardware profile
    pue: float = 1.0
    lifetime_years: float = 7.0
    grid_g_per_kwh: Interval | None = None
    estimated: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, float]:
        """The DESIGN.md `gwp_g` object: {operational, embodied, total, low, high}."""
        return {"operational": self.operational, "embodied": self.embodied, "total": self.total,
                "low": self.low, "high": self.high}


@dataclass(frozen=True)
class AdpPe:
    """Operational abiotic depletion (kgSbeq) and primary energy (MJ) of the electricity a job used."""

    adp_kgsb: float
    pe_mj: float
    source: str


def grid_interval(grid: GridFactor | Interval | float) -> Interval:
    """A grid factor (profile entry, interval or plain gCO2e/kWh) as an Interval."""
    if isinstance(grid, Interval):
        return grid
    if isinstance(grid, GridFactor):
        return Interval(grid.g_per_kwh, grid.low, grid.high)
    value = float(grid)
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"grid factor must be a number >= 0 gCO2e/kWh, got {grid!r}")
    return Interval.point(value)


def default_pue(hw: HardwareProfile | None, embodied: EmbodiedData | None = None) -> float:
    """The device's PUE: its profile's pue_default, else its category's (datacenter 1.5, others 1.0)."""
    if hw is None:
        return 1.0  # an unknown machine is treated as on-premises, like edge/desktop
    if hw.pue_default is not None:
        return hw.pue_default
    data = embodied if embodied is not None else load_embodied()
    return data.pue_by_category[hw.category]


def embodied_kg(hw: HardwareProfile, embodied: EmbodiedData) -> Interval:
    """F (kgCO2e) = die_cm2 x I_proc + mem_GB x I_mem / 1000, [low, high]; UsageError if data is missing."""
    estimated: list[str] = []
    die_mm2, die_est = hw.number("die_mm2")
    if die_est:
        estimated.append("die_mm2")
    mem_gb, mem_est = hw.number("memory_gb")
    if mem_est:
        estimated.append("memory_gb")
    needed = (("die_mm2", die_mm2), ("memory_gb", mem_gb), ("node_nm", hw.node_nm),
              ("foundry", hw.foundry), ("memory_type", hw.memory_type))
    missing = [name for name, value in needed if value is None]
    if missing:
        raise UsageError(f"embodied footprint of {hw.id} is unknown: {', '.join(missing)} not in the profile",
                         where=hw.path or "profiles/hardware.toml",
                         fix="add the value with its source (or a documented <field>_estimate)")
    assert die_mm2 is not None and mem_gb is not None and hw.node_nm is not None
    assert hw.foundry is not None and hw.memory_type is not None
    proc = embodied.proc_for(hw.node_nm, hw.foundry)
    if proc is None:
        raise UsageError(f"no I_proc factor for {hw.foundry} {hw.node_nm:g} nm (device {hw.id})",
                         where=embodied.path or "profiles/embodied.toml",
                         fix="add a [proc.<foundry>-<nm>] table")
    mem = embodied.mem_for(hw.memory_type)
    if mem is None or mem.g_per_gb is None:
        raise UsageError(f"no I_mem factor for memory type {hw.memory_type} (device {hw.id})",
                         where=embodied.path or "profiles/embodied.toml", fix=f"add [mem.{hw.memory_type}]")
    if mem.estimate:
        estimated.append(f"i_mem[{mem.type}]")
    die_cm2 = die_mm2 / 100.0
    return Interval(
        value=die_cm2 * proc.kg_per_cm2 + mem_gb * mem.g_per_gb / 1000.0,
        low=die_cm2 * proc.low + mem_gb * mem.low / 1000.0,
        high=die_cm2 * proc.high + mem_gb * mem.high / 1000.0,
        estimated=tuple(estimated),
    )


def gwp(
    energy_j: float,
    duration_s: float,
    hw: HardwareProfile | None,
    grid_g_per_kwh: Interval | float,
    pue: float | None = None,
    lifetime_years: float = 7.0,
    embodied: EmbodiedData | None = None,
) -> GwpResult:
    """GWP (g) of a job that used `energy_j` over `duration_s` on `hw`.

    `pue` None = the device's default; `embodied` None = the packaged profiles/embodied.toml. With `hw` None
    (a machine with no hardware profile) only the operational part is computed and the result says so.
    """
    _check_number("energy_j", energy_j, allow_zero=True)
    _check_number("duration_s", duration_s, allow_zero=True)
    _check_number("lifetime_years", lifetime_years)
    grid = grid_interval(grid_g_per_kwh)
    if pue is None:
        pue = default_pue(hw, embodied)
    _check_number("pue", pue)
    if pue < 1.0:
        raise UsageError(f"PUE must be >= 1.0 (total facility power / IT power), got {pue}")
    kwh = energy_j / J_PER_KWH
    operational = Interval(kwh * grid.value * pue, kwh * grid.low * pue, kwh * grid.high * pue)
    estimated = list(grid.estimated)
    if hw is None:
        device_kg = None
        share = Interval.point(0.0)
        estimated.append("embodied (no hardware profile)")
    else:
        data = embodied if embodied is not None else load_embodied()
        device_kg = embodied_kg(hw, data)
        estimated.extend(device_kg.estimated)
        fraction = duration_s / (lifetime_years * SECONDS_PER_YEAR)
        share = Interval(fraction * device_kg.value * 1000.0, fraction * device_kg.low * 1000.0,
                         fraction * device_kg.high * 1000.0)
    return GwpResult(
        operational=operational.value,
        embodied=share.value,
        total=operational.value + share.value,
        low=operational.low + share.low,
        high=operational.high + share.high,
        embodied_device_kg=device_kg,
        pue=pue,
        lifetime_years=lifetime_years,
        grid_g_per_kwh=grid,
        estimated=tuple(estimated),
    )


def adp_pe(energy_j: float, pue: float, grid: GridFactor) -> AdpPe | None:
    """Operational ADPe and PE of `energy_j` at this PUE where the grid's region has factors, else None."""
    if grid.adp_kgsb_per_kwh is None or grid.pe_mj_per_kwh is None:
        return None
    kwh = energy_j / J_PER_KWH * pue
    return AdpPe(kwh * grid.adp_kgsb_per_kwh, kwh * grid.pe_mj_per_kwh, grid.adp_pe_source)


def _check_number(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise UsageError(f"{name} must be a finite number {bound}, got {value!r}")
