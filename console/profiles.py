"""Load and validate the TOML data under profiles/ (hardware, grids, embodied) into frozen dataclasses.

A bad file raises `ProfileError(path, key, line)`: the line comes from tomllib for syntax errors, and from
a scan of the file text for a bad value, so the message points where the user has to edit.
Loads are cached per (path, mtime), since the TUI asks often and the files rarely change.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from console import paths
from console.compat import tomllib
from console.errors import ProfileError, UsageError

CATEGORIES = ("edge", "desktop", "gaming", "datacenter")
# Power-source names match the samplers in agents/samplers/ (ARCHITECTURE.md "Samplers").
POWER_SOURCES = ("sim", "tegrastats", "ina3221", "jtop", "nvml", "rapl", "none")
UNKNOWN = "unknown"

# Numeric hardware fields; each may be a positive number, "unknown", or absent, and may have <field>_estimate.
HW_NUMERIC = ("die_mm2", "node_nm", "year", "memory_gb", "tdp_w", "fp32_tflops", "fp16_tensor_tflops",
              "bandwidth_gb_s", "pue_default")
HW_TEXT = ("vendor", "name", "category", "arch", "foundry", "process", "memory_type")
HW_KEYS = frozenset(HW_NUMERIC + HW_TEXT + tuple(f + "_estimate" for f in HW_NUMERIC)
                    + ("power_sources", "unverified", "sources", "estimate_basis"))


@dataclass(frozen=True)
class HardwareProfile:
    """One device of profiles/hardware.toml. Unknown numbers are None; estimates are in `estimates`."""

    id: str
    vendor: str
    name: str
    category: str
    arch: str | None = None
    die_mm2: float | None = None
    node_nm: float | None = None
    foundry: str | None = None
    process: str | None = None
    year: int | None = None
    memory_gb: float | None = None
    memory_type: str | None = None
    tdp_w: float | None = None
    fp32_tflops: float | None = None
    fp16_tensor_tflops: float | None = None
    bandwidth_gb_s: float | None = None
    pue_default: float | None = None
    power_sources: tuple[str, ...] = ()
    unverified: tuple[str, ...] = ()
    estimates: Mapping[str, float] = field(default_factory=dict, hash=False)
    estimate_basis: Mapping[str, str] = field(default_factory=dict, hash=False)
    sources: Mapping[str, str] = field(default_factory=dict, hash=False)
    path: str = ""

    def number(self, name: str) -> tuple[float | None, bool]:
        """The field's known value, else its documented estimate; the flag is True when it is an estimate."""
        known = getattr(self, name)
        if known is not None:
            return float(known), False
        if name in self.estimates:
            return self.estimates[name], True
        return None, False


@dataclass(frozen=True)
class GridFactor:
    """Carbon intensity of one grid (gCO2e/kWh) with its [low, high] range and optional ADPe/PE per kWh."""

    id: str
    region: str
    g_per_kwh: float
    low: float
    high: float
    year: int | None = None
    dataset: str = ""
    source: str = ""
    adp_kgsb_per_kwh: float | None = None
    pe_mj_per_kwh: float | None = None
    adp_pe_source: str = ""


@dataclass(frozen=True)
class ProcFactor:
    """I_proc for one (foundry, node): kgCO2e per cm2 of die, value [low, high]."""

    key: str
    node_nm: float
    foundry: str
    kg_per_cm2: float
    low: float
    high: float
    basis: str = ""
    source: str = ""


@dataclass(frozen=True)
class MemFactor:
    """I_mem for one memory type: gCO2e per GB, value [low, high]; `estimate` when a near class is reused."""

    type: str
    g_per_gb: float | None
    low: float
    high: float
    estimate: bool = False
    basis: str = ""
    source: str = ""


@dataclass(frozen=True)
class EmbodiedData:
    """Everything F and the defaults need: I_proc per node, I_mem per type, lifetime and PUE by category."""

    lifetime_years_default: float
    pue_by_category: Mapping[str, float] = field(hash=False)
    proc: Mapping[str, ProcFactor] = field(hash=False)
    mem: Mapping[str, MemFactor] = field(hash=False)
    path: str = ""

    def proc_for(self, node_nm: float, foundry: str) -> ProcFactor | None:
        """The I_proc entry for a node and foundry (e.g. 7, "TSMC" -> proc.tsmc-7), or None."""
        return self.proc.get(proc_key(node_nm, foundry))

    def mem_for(self, memory_type: str) -> MemFactor | None:
        """The I_mem entry for a memory type, case-insensitive (HBM2e, hbm2e...), or None."""
        wanted = memory_type.lower()
        for name, factor in self.mem.items():
            if name.lower() == wanted:
                return factor
        return None


def proc_key(node_nm: float, foundry: str) -> str:
    """Key of embodied.toml's [proc.<key>] table: lowercase foundry, dash, node in nm."""
    node = int(node_nm) if float(node_nm).is_integer() else node_nm
    return f"{foundry.strip().lower()}-{node}"


# ----------------------------------------------------------------------------------------------- file reading


def _resolve(path: str | os.PathLike[str] | None, default_name: str) -> Path:
    return Path(path) if path is not None else paths.PROFILES_DIR / default_name


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1  # the loader reports the missing file with its path


def _read(path: Path) -> tuple[dict[str, Any], str]:
    """Parse one TOML file; a missing file or syntax error becomes a ProfileError with the parser's line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError("file not found", path=str(path),
                           fix="restore it from git or pass the right path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read: {exc}", path=str(path)) from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        # tomllib puts the position in the message ("... (at line 5, column 9)"); 3.14 also sets .lineno.
        line = getattr(exc, "lineno", None)
        match = re.search(r"at line (\d+)", str(exc))
        if line is None and match:
            line = int(match.group(1))
        what = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc)) or "invalid TOML"
        raise ProfileError(f"TOML syntax error: {what}", path=str(path), line=line) from None


def _header_of(line: str) -> str | None:
    stripped = line.split("#", 1)[0].strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        return stripped.strip("[]").replace('"', "").replace("'", "").replace(" ", "")
    return None


def find_line(text: str, table: str, key: str | None = None) -> int | None:
    """1-based line of `key =` inside `[table]` (or of the header when key is None); None if not found."""
    header_line = None
    in_table = table == ""  # top-level keys come before any [header]
    key_re = re.compile(r'^\s*["\']?' + re.escape(key) + r'["\']?\s*=') if key else None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _header_of(line)
        if header is not None:
            in_table = header == table
            if in_table and header_line is None:
                header_line = number
            continue
        if in_table and key_re is not None and key_re.match(line):
            return number
    return header_line


class _Checker:
    """Validation helpers bound to one file, so every error names file, key and line."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = str(path)
        self.text = text

    def fail(self, table: str, key: str | None, what: str, fix: str | None = None) -> ProfileError:
        dotted = ".".join(part for part in (table, key) if part)
        return ProfileError(what, path=self.path, key=dotted, line=find_line(self.text, table, key), fix=fix)

    def table(self, table: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(table, None, f"expected a table [{table}], got {type(value).__name__}")
        return value

    def number(self, table: str, key: str, value: Any, *, allow_unknown: bool = False,
               positive: bool = True) -> float | None:
        """A finite number (> 0 when `positive`), or None for "unknown" where allowed."""
        if allow_unknown and isinstance(value, str) and value.strip().lower() == UNKNOWN:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            allowed = 'a number or "unknown"' if allow_unknown else "a number"
            raise self.fail(table, key, f"{key} must be {allowed}, got {value!r}")
        if positive and value <= 0:
            raise self.fail(table, key, f"{key} must be > 0, got {value!r}")
        if not positive and value < 0:
            raise self.fail(table, key, f"{key} must be >= 0, got {value!r}")
        return float(value)

    def text_value(self, table: str, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(table, key, f"{key} must be a non-empty string, got {value!r}")
        return value

    def interval(self, table: str, value: float | None, low: float, high: float) -> None:
        if value is not None and not low <= value <= high:
            raise self.fail(table, "low", f"need low <= value <= high, got {low} <= {value} <= {high}")
        if value is None and low > high:
            raise self.fail(table, "low", f"need low <= high, got {low} > {high}")


# ----------------------------------------------------------------------------------------------- hardware


def _hardware_entry(check: _Checker, dev_id: str, raw: dict[str, Any]) -> HardwareProfile:
    for key in raw:
        if key not in HW_KEYS:
            close = difflib.get_close_matches(key, sorted(HW_KEYS), n=1)
            hint = f"did you mean {close[0]!r}?" if close else None
            raise check.fail(dev_id, key, f"unknown key {key!r}", fix=hint)
    for key in ("vendor", "name", "category"):
        if key not in raw:
            raise check.fail(dev_id, None, f"missing required key {key!r}")
    text = {k: check.text_value(dev_id, k, raw[k]) for k in HW_TEXT if k in raw}
    if text["category"] not in CATEGORIES:
        raise check.fail(dev_id, "category",
                         f"category must be one of {', '.join(CATEGORIES)}, got {text['category']!r}")
    numbers = {k: check.number(dev_id, k, raw[k], allow_unknown=True) for k in HW_NUMERIC if k in raw}
    estimates = {k[: -len("_estimate")]: check.number(dev_id, k, v)
                 for k, v in raw.items() if k.endswith("_estimate")}
    for name in estimates:
        if numbers.get(name) is not None:
            raise check.fail(dev_id, name + "_estimate",
                             f"{name} is known; drop {name}_estimate or set {name} = \"unknown\"")
    sources_raw = check.table(f"{dev_id}.sources", raw.get("sources", {}))
    sources = {k: check.text_value(f"{dev_id}.sources", k, v) for k, v in sources_raw.items()}
    # Every number we ship carries where it came from (DESIGN.md: "a URL per number").
    for name, value in numbers.items():
        if value is not None and name not in sources:
            raise check.fail(dev_id, name, f"{name} has no source",
                             fix=f"add {name} = \"<url>\" under [{dev_id}.sources]")
    basis_raw = check.table(f"{dev_id}.estimate_basis", raw.get("estimate_basis", {}))
    basis = {k: check.text_value(f"{dev_id}.estimate_basis", k, v) for k, v in basis_raw.items()}
    for name in estimates:
        if name + "_estimate" not in sources:
            raise check.fail(dev_id, name + "_estimate", f"{name}_estimate has no source",
                             fix=f"add {name}_estimate = \"<url>\" under [{dev_id}.sources]")
        if name not in basis:
            raise check.fail(dev_id, name + "_estimate", f"{name}_estimate has no basis",
                             fix=f"explain it as {name} = \"...\" under [{dev_id}.estimate_basis]")
    power = raw.get("power_sources", [])
    if not isinstance(power, list) or any(p not in POWER_SOURCES for p in power):
        raise check.fail(dev_id, "power_sources",
                         f"power_sources must be a list drawn from {', '.join(POWER_SOURCES)}")
    unverified = raw.get("unverified", [])
    if not isinstance(unverified, list) or not all(isinstance(u, str) for u in unverified):
        raise check.fail(dev_id, "unverified", "unverified must be a list of field names")
    year = numbers.get("year")
    return HardwareProfile(
        id=dev_id,
        vendor=text["vendor"],
        name=text["name"],
        category=text["category"],
        arch=text.get("arch"),
        foundry=text.get("foundry"),
        process=text.get("process"),
        memory_type=None if text.get("memory_type", UNKNOWN).lower() == UNKNOWN else text["memory_type"],
        die_mm2=numbers.get("die_mm2"),
        node_nm=numbers.get("node_nm"),
        year=int(year) if year is not None else None,
        memory_gb=numbers.get("memory_gb"),
        tdp_w=numbers.get("tdp_w"),
        fp32_tflops=numbers.get("fp32_tflops"),
        fp16_tensor_tflops=numbers.get("fp16_tensor_tflops"),
        bandwidth_gb_s=numbers.get("bandwidth_gb_s"),
        pue_default=numbers.get("pue_default"),
        power_sources=tuple(power),
        unverified=tuple(unverified),
        estimates={k: v for k, v in estimates.items() if v is not None},
        estimate_basis=basis,
        sources=sources,
        path=check.path,
    )


@functools.lru_cache(maxsize=16)
def _load_hardware_cached(path: str, mtime_ns: int) -> dict[str, HardwareProfile]:
    data, text = _read(Path(path))
    check = _Checker(Path(path), text)
    devices = {}
    for dev_id, raw in data.items():
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", dev_id):
            raise check.fail(dev_id, None, f"device id {dev_id!r} must be a lowercase slug (a-z, 0-9, -)")
        devices[dev_id] = _hardware_entry(check, dev_id, check.table(dev_id, raw))
    if not devices:
        raise ProfileError("no devices defined", path=path)
    return devices


def load_hardware(path: str | os.PathLike[str] | None = None) -> dict[str, HardwareProfile]:
    """All devices of hardware.toml (default: the packaged profiles/hardware.toml), keyed by id."""
    resolved = _resolve(path, "hardware.toml")
    return dict(_load_hardware_cached(str(resolved), _mtime(resolved)))


def _suggest(wanted: str, names: list[str]) -> list[str]:
    """Close matches: ids containing the text first (a100 -> a100-*), then difflib's nearest."""
    low = wanted.lower()
    contained = [n for n in names if low and low in n.lower()]
    near = difflib.get_close_matches(low, names, n=5, cutoff=0.5)
    return list(dict.fromkeys(contained + near))[:6]


def get_device(device_id: str, path: str | os.PathLike[str] | None = None) -> HardwareProfile:
    """The device with this id (case-insensitive); UsageError listing close matches when there is none."""
    devices = load_hardware(path)
    if device_id in devices:
        return devices[device_id]
    by_lower = {k.lower(): v for k, v in devices.items()}
    if device_id.lower() in by_lower:
        return by_lower[device_id.lower()]
    close = _suggest(device_id, sorted(devices))
    fix = ("close matches: " + ", ".join(close)) if close else "run `wattlab devices` for the list"
    raise UsageError(f"unknown device {device_id!r}", where="profiles/hardware.toml", fix=fix)


# ----------------------------------------------------------------------------------------------- grids


def _grid_entry(check: _Checker, grid_id: str, raw: dict[str, Any],
                adp_pe: dict[str, tuple[float, float, str]]) -> GridFactor:
    table = f"grid.{grid_id}"
    allowed = {"region", "year", "g_per_kwh", "low", "high", "dataset", "source"}
    for key in raw:
        if key not in allowed:
            raise check.fail(table, key, f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")
    for key in ("region", "g_per_kwh", "source"):
        if key not in raw:
            raise check.fail(table, None, f"missing required key {key!r}")
    value = check.number(table, "g_per_kwh", raw["g_per_kwh"], positive=False)
    assert value is not None  # allow_unknown is off
    low = check.number(table, "low", raw.get("low", value), positive=False) or 0.0
    high = check.number(table, "high", raw.get("high", value), positive=False) or 0.0
    check.interval(table, value, low, high)
    year = check.number(table, "year", raw["year"]) if "year" in raw else None
    region = check.text_value(table, "region", raw["region"])
    adp, pe, adp_src = adp_pe.get(region.upper(), (None, None, ""))
    return GridFactor(
        id=grid_id, region=region, g_per_kwh=value, low=low, high=high,
        year=int(year) if year is not None else None,
        dataset=str(raw.get("dataset", "")), source=check.text_value(table, "source", raw["source"]),
        adp_kgsb_per_kwh=adp, pe_mj_per_kwh=pe, adp_pe_source=adp_src,
    )


@functools.lru_cache(maxsize=16)
def _load_grids_cached(path: str, mtime_ns: int) -> dict[str, GridFactor]:
    data, text = _read(Path(path))
    check = _Checker(Path(path), text)
    for key in data:
        if key not in ("grid", "adp_pe"):
            raise check.fail(key, None, f"unknown table [{key}] (expected [grid.<id>] or [adp_pe.<region>])")
    adp_pe: dict[str, tuple[float, float, str]] = {}
    for region, raw in check.table("adp_pe", data.get("adp_pe", {})).items():
        table = f"adp_pe.{region}"
        raw = check.table(table, raw)
        adp = check.number(table, "adp_kgsb_per_kwh", raw.get("adp_kgsb_per_kwh"))
        pe = check.number(table, "pe_mj_per_kwh", raw.get("pe_mj_per_kwh"))
        assert adp is not None and pe is not None
        adp_pe[region.upper()] = (adp, pe, check.text_value(table, "source", raw.get("source")))
    grids = {gid: _grid_entry(check, gid, check.table(f"grid.{gid}", raw), adp_pe)
             for gid, raw in check.table("grid", data.get("grid", {})).items()}
    if not grids:
        raise ProfileError("no [grid.<id>] tables defined", path=path)
    return grids


def load_grids(path: str | os.PathLike[str] | None = None) -> dict[str, GridFactor]:
    """All grid factors of grids.toml (default: the packaged one), keyed by id (FR-ademe, DE-2024...)."""
    resolved = _resolve(path, "grids.toml")
    return dict(_load_grids_cached(str(resolved), _mtime(resolved)))


def get_grid(region: str, path: str | os.PathLike[str] | None = None) -> GridFactor:
    """A grid by id (FR-2023, FR-ademe) or region code (FR = latest year); UsageError with close matches."""
    grids = load_grids(path)
    by_lower = {k.lower(): v for k, v in grids.items()}
    if region.lower() in by_lower:
        return by_lower[region.lower()]
    of_region = [g for g in grids.values() if g.region.lower() == region.lower() and g.year is not None]
    if of_region:
        return max(of_region, key=lambda g: g.year or 0)
    close = _suggest(region, sorted(grids))
    fix = ("close matches: " + ", ".join(close)) if close else "known grids: " + ", ".join(sorted(grids))
    raise UsageError(f"unknown grid {region!r}", where="profiles/grids.toml", fix=fix)


# ----------------------------------------------------------------------------------------------- embodied


@functools.lru_cache(maxsize=16)
def _load_embodied_cached(path: str, mtime_ns: int) -> EmbodiedData:
    data, text = _read(Path(path))
    check = _Checker(Path(path), text)
    lifetime = check.number("", "lifetime_years_default", data.get("lifetime_years_default"))
    pue_raw = check.table("pue_by_category", data.get("pue_by_category", {}))
    pue = {}
    for cat in CATEGORIES:
        if cat not in pue_raw:
            raise check.fail("pue_by_category", None, f"missing PUE for category {cat!r}")
        value = check.number("pue_by_category", cat, pue_raw[cat])
        if value is not None and value < 1.0:
            raise check.fail("pue_by_category", cat, f"PUE must be >= 1.0, got {value}")
        pue[cat] = value
    proc = {}
    for key, raw in check.table("proc", data.get("proc", {})).items():
        table = f"proc.{key}"
        raw = check.table(table, raw)
        node = check.number(table, "node_nm", raw.get("node_nm"))
        foundry = check.text_value(table, "foundry", raw.get("foundry"))
        assert node is not None
        if proc_key(node, foundry) != key:
            raise check.fail(table, None,
                             f"table name must be [proc.{proc_key(node, foundry)}] for {foundry} {node:g} nm")
        value = check.number(table, "kg_per_cm2", raw.get("kg_per_cm2"))
        low = check.number(table, "low", raw.get("low"))
        high = check.number(table, "high", raw.get("high"))
        assert value is not None and low is not None and high is not None
        check.interval(table, value, low, high)
        proc[key] = ProcFactor(key, node, foundry, value, low, high, str(raw.get("basis", "")),
                               check.text_value(table, "source", raw.get("source")))
    mem = {}
    for mtype, raw in check.table("mem", data.get("mem", {})).items():
        table = f"mem.{mtype}"
        raw = check.table(table, raw)
        value = check.number(table, "g_per_gb", raw.get("g_per_gb"), allow_unknown=True)
        low = check.number(table, "low", raw.get("low"))
        high = check.number(table, "high", raw.get("high"))
        assert low is not None and high is not None
        check.interval(table, value, low, high)
        estimate = raw.get("estimate", False)
        if not isinstance(estimate, bool):
            raise check.fail(table, "estimate", f"estimate must be true or false, got {estimate!r}")
        mem[mtype] = MemFactor(mtype, value, low, high, estimate, str(raw.get("basis", "")),
                               check.text_value(table, "source", raw.get("source")))
    assert lifetime is not None
    return EmbodiedData(lifetime, pue, proc, mem, path=path)


def load_embodied(path: str | os.PathLike[str] | None = None) -> EmbodiedData:
    """I_proc, I_mem, lifetime and PUE defaults from embodied.toml (default: the packaged one)."""
    resolved = _resolve(path, "embodied.toml")
    return _load_embodied_cached(str(resolved), _mtime(resolved))
