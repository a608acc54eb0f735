"""Pure metrics over a run's rows: energy, power, latency percentiles and the summary.json dict.

No I/O: the runner hands rows in (wire format, as stored) and writes the dict out. GWP comes from
console.impact.gwp (the thesis formula) with the factors the caller resolved into an ImpactContext.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.energy import trapezoid

# Samplers whose watts are not measured on hardware (the summary flags their energy as estimated).
SYNTHETIC_SAMPLERS = ("sim",)
EMBODIED_SCOPE = "die + memory (thesis scope; excludes PCB, cooling, packaging)"


def integrate_trapezoid(t: Sequence[float], w: Sequence[float | None]) -> float:
    """Joules from seconds and watts by the trapezoid rule (None watts bridged); agents.energy's rule."""
    return trapezoid(t, w)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of already sorted values; q in [0, 100]."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def latency_percentiles(ms: Sequence[float]) -> dict[str, float] | None:
    """{p50, p90, p99, max, mean} of latencies in ms, or None when there are none."""
    values = sorted(float(v) for v in ms if v is not None and math.isfinite(v))
    if not values:
        return None
    return {
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": values[-1],
        "mean": sum(values) / len(values),
    }


@dataclass(frozen=True)
class ImpactContext:
    """The factors turning energy and time into GWP, resolved by the caller from profiles and options.

    hardware     a console.profiles HardwareProfile (None: no embodied share, operational only)
    grid_g_per_kwh  a float or console.impact.Interval (gCO2e/kWh), None: no GWP at all
    """

    hardware: Any = None
    hardware_id: str | None = None
    grid_g_per_kwh: Any = None
    grid_region: str | None = None
    grid_source: str | None = None
    pue: float | None = None
    lifetime_years: float = 7.0
    embodied: Any = None  # console.profiles embodied tables (load_embodied())
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunFacts:
    """How the run was measured (goes into the summary's method block)."""

    sampler: str | None
    interval_ms: int | None
    idle_s: float = 0.0
    load_t_s: float | None = None  # device time the load phase began (the agent's load_start event)
    device: str | None = None
    total_rule: str | None = None
    error: str | None = None
    extra_method: dict[str, Any] = field(default_factory=dict)


GwpFn = Callable[..., Any]


def summarize_run(samples: Sequence[list], queries: Sequence[list], facts: RunFacts,
                  impact: ImpactContext | None = None, *, duration_s: float | None = None,
                  gwp_fn: GwpFn | None = None) -> dict[str, Any]:
    """Build the DESIGN.md summary.json dict from wire rows.

    samples: `[seq, t_s, total_w, rails, energy_j]`; queries: `[seq, qid, issue_t, done_t, ok, extra]`.
    With facts.idle_s > 0 the samples before the load started (facts.load_t_s, else idle_s) are the
    idle baseline: idle_w is their mean power, energy_j/duration_s run from the last idle sample to
    the end, energy_net_j = energy_j - idle_w * duration_s, and GWP uses the net energy.
    duration_s overrides the span of the samples (a time-only run still has a duration).
    """
    rows = sorted(samples, key=lambda r: r[0])
    idle_rows: list[list] = []
    work_rows = rows
    if facts.idle_s and facts.idle_s > 0:
        boundary = float(facts.load_t_s if facts.load_t_s is not None else facts.idle_s)
        idle_rows = [r for r in rows if r[1] < boundary]
        # As on the device: the load phase starts at the last idle sample, so no interval is lost.
        work_rows = idle_rows[-1:] + [r for r in rows if r[1] >= boundary]
    t = [float(r[1]) for r in work_rows]
    w = [None if r[2] is None else float(r[2]) for r in work_rows]
    watts = [x for x in w if x is not None]
    span = (t[-1] - t[0]) if len(t) > 1 else 0.0
    duration = float(duration_s) if duration_s is not None else span

    out: dict[str, Any] = {
        "duration_s": duration,
        "samples": len(rows),
        "energy_j": integrate_trapezoid(t, w) if len(watts) > 1 else None,
        "mean_w": (sum(watts) / len(watts)) if watts else None,
        "max_w": max(watts) if watts else None,
        "error": facts.error,
    }
    counters = [(float(r[1]), float(r[4])) for r in work_rows if r[4] is not None]
    if len(counters) > 1:
        out["energy_counter_j"] = counters[-1][1] - counters[0][1]
    if idle_rows:
        idle_w = [float(r[2]) for r in idle_rows if r[2] is not None]
        out["idle_w"] = sum(idle_w) / len(idle_w) if idle_w else None
        if out["idle_w"] is not None and out["energy_j"] is not None:
            out["energy_net_j"] = out["energy_j"] - out["idle_w"] * duration
    out.update(_query_stats(queries))

    energy_for_gwp = out.get("energy_net_j", out["energy_j"])
    gwp, gwp_notes = _gwp(energy_for_gwp, duration, impact, gwp_fn)
    out["gwp_g"] = gwp
    n_ok = out["queries"]
    out["gwp_per_query_mg"] = gwp["total"] * 1000.0 / n_ok if gwp and n_ok else None
    out["energy_per_query_j"] = energy_for_gwp / n_ok if energy_for_gwp is not None and n_ok else None
    synthetic = facts.sampler in SYNTHETIC_SAMPLERS
    out["estimated"] = {
        "energy": synthetic,  # a simulated device: the watts are a model, not a measurement
        "gwp": True,  # always a model: grid factor, PUE and embodied intervals
        "embodied": bool(impact is None or impact.hardware is None),
    }
    out["method"] = _method(facts, impact, idle_on=bool(idle_rows), counter=len(counters) > 1,
                            notes=gwp_notes)
    return out


def _query_stats(queries: Sequence[list]) -> dict[str, Any]:
    done = [q for q in queries if q[3] is not None]
    ok = [q for q in done if q[4]]
    latencies = [(float(q[3]) - float(q[2])) * 1000.0 for q in ok]
    return {
        "queries": len(ok),
        "queries_failed": len(queries) - len(ok),
        "latency_ms": latency_percentiles(latencies),
    }


def _gwp(energy_j: float | None, duration_s: float, impact: ImpactContext | None,
         gwp_fn: GwpFn | None) -> tuple[dict[str, float] | None, list[str]]:
    if energy_j is None:
        return None, ["no power measured: GWP not computed"]
    if impact is None or impact.grid_g_per_kwh is None:
        return None, ["no grid factor: GWP not computed"]
    if gwp_fn is None:
        from console.impact import gwp as gwp_fn  # the one implementation of the thesis formula
    res = gwp_fn(energy_j, duration_s, impact.hardware, impact.grid_g_per_kwh, pue=impact.pue,
                 lifetime_years=impact.lifetime_years, embodied=impact.embodied)
    said = any("no hardware profile" in n for n in impact.notes)
    notes = [] if impact.hardware is not None or said else ["no hardware profile: embodied share not counted"]
    estimated = [str(e) for e in getattr(res, "estimated", ()) or () if "no hardware profile" not in str(e)]
    if estimated:  # documented estimates behind the number (die area not public, memory class reused...)
        notes.append("estimated inputs: " + ", ".join(estimated))
    return {k: float(getattr(res, k)) for k in ("operational", "embodied", "total", "low", "high")}, notes


def _method(facts: RunFacts, impact: ImpactContext | None, *, idle_on: bool, counter: bool,
            notes: list[str]) -> dict[str, Any]:
    grid = impact.grid_g_per_kwh if impact else None
    method: dict[str, Any] = {
        "sampler": facts.sampler,
        "device": facts.device,
        "interval_ms": facts.interval_ms,
        "total_rule": facts.total_rule,
        "energy": "trapezoid over the device total" + (" (+ hardware energy counter)" if counter else ""),
        "idle_subtraction": idle_on,
        "idle_s": facts.idle_s if idle_on else 0.0,
        "grid_g_per_kwh": _interval_dict(grid),
        "grid_region": impact.grid_region if impact else None,
        "grid_source": impact.grid_source if impact else None,
        "pue": impact.pue if impact else None,
        "lifetime_years": impact.lifetime_years if impact else None,
        "hardware": impact.hardware_id if impact else None,
        "embodied_scope": EMBODIED_SCOPE,
        "notes": list(impact.notes if impact else ()) + notes,
    }
    method.update(facts.extra_method)
    return method


def _interval_dict(value: Any) -> Any:
    """An impact.Interval as {value, low, high}; a float as is."""
    if value is None or isinstance(value, (int, float)):
        return value
    return {k: float(getattr(value, k)) for k in ("value", "low", "high") if hasattr(value, k)}
