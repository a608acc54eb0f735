"""What the compare screen compares: live devices and stored runs reduced to the same entries.

No Textual here. Stored runs are grouped by (device, scenario) and averaged over repeats; each
entry keeps its power traces so the screen can draw the 100-point normalized profile (mean ± std).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from console.state import DeviceView
from console.tui.history import HistoryBook

LIVE = "live"
Trace = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class CompareEntry:
    """One device on one scenario: latency, energy and GWP per query, and its power traces."""

    label: str
    scenario: str
    source: str  # "live" or "stored"
    runs: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    energy_per_query_j: float | None
    gwp_per_query_mg: float | None
    gwp_low_mg: float | None
    gwp_high_mg: float | None
    traces: tuple[Trace, ...] = field(default=(), compare=False)


def _per_query(value: float | None, queries: int) -> float | None:
    return value / queries if value is not None and queries else None


def entry_from_view(view: DeviceView, book: HistoryBook, scenario: str = LIVE) -> CompareEntry:
    """A live device's running numbers; its trace is the current job (or the last minute)."""
    history = book.get(view.key)
    t, w = history.job_series()
    if t.size == 0:
        t, w = history.total()
    q = view.queries_done
    gwp = view.gwp
    return CompareEntry(
        label=f"{view.host}/{view.name}", scenario=scenario, source=LIVE, runs=1,
        latency_p50_ms=view.latency_p50_ms, latency_p99_ms=view.latency_p99_ms,
        energy_per_query_j=_per_query(view.energy_j, q),
        gwp_per_query_mg=view.gwp_per_query_mg,
        gwp_low_mg=_per_query(gwp.low_g * 1000 if gwp else None, q),
        gwp_high_mg=_per_query(gwp.high_g * 1000 if gwp else None, q),
        traces=((t, w),) if t.size else (),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_row(meta: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one stored run (run.json + summary.json, DESIGN.md "Run directory")."""
    cell = meta.get("cell") or {}
    workload = meta.get("workload") or {}
    lat = summary.get("latency_ms") or {}
    gwp = summary.get("gwp_g") or {}
    n = int(summary.get("queries") or 0)
    hw = meta.get("hardware") if isinstance(meta.get("hardware"), dict) else {}
    asked = meta.get("meta") if isinstance(meta.get("meta"), dict) else {}  # the start args' meta
    device = hw.get("name") or meta.get("device_name") or meta.get("hardware_id") or meta.get("device") or "?"
    scenario = (cell.get("scenario") or meta.get("scenario") or asked.get("scenario")
                or workload.get("scenario") or "measure")
    return {
        "label": f"{cell.get('host') or meta.get('host') or '?'}/{device}",
        "scenario": str(scenario),
        "lat_p50": lat.get("p50"), "lat_p99": lat.get("p99"),
        "epq": summary.get("energy_per_query_j"),
        "gpq": summary.get("gwp_per_query_mg", _per_query(_mg(gwp.get("total")), n)),
        "glo": _per_query(_mg(gwp.get("low")), n), "ghi": _per_query(_mg(gwp.get("high")), n),
    }


def _mg(grams: float | None) -> float | None:
    return grams * 1000 if grams is not None else None


def _mean(values: Sequence[Any]) -> float | None:
    nums = [float(v) for v in values if isinstance(v, int | float)]
    return sum(nums) / len(nums) if nums else None


def entries_from_runs(logs: Path, limit: int = 200) -> list[CompareEntry]:
    """Stored runs under `logs`, grouped by (device, scenario), averaged over repeats (newest `limit`)."""
    try:
        from console.store import list_runs, load_run
    except ImportError:
        return []
    groups: dict[tuple[str, str], list[tuple[dict[str, Any], Trace | None]]] = {}
    for info in list_runs(logs)[-limit:]:
        row = run_row(_read_json(info.path / "run.json"), _read_json(info.path / "summary.json"))
        trace = None
        try:
            total = load_run(info.path).total()
            if len(total):
                trace = (total["t"].to_numpy(dtype=float), total["watts"].to_numpy(dtype=float))
        except Exception:  # a run being written or damaged: keep its numbers, skip its trace
            trace = None
        groups.setdefault((row["label"], row["scenario"]), []).append((row, trace))
    out = []
    for (label, scenario), items in sorted(groups.items()):
        rows = [r for r, _ in items]
        out.append(CompareEntry(
            label=label, scenario=scenario, source="stored", runs=len(rows),
            latency_p50_ms=_mean([r["lat_p50"] for r in rows]),
            latency_p99_ms=_mean([r["lat_p99"] for r in rows]),
            energy_per_query_j=_mean([r["epq"] for r in rows]),
            gwp_per_query_mg=_mean([r["gpq"] for r in rows]),
            gwp_low_mg=_mean([r["glo"] for r in rows]),
            gwp_high_mg=_mean([r["ghi"] for r in rows]),
            traces=tuple(t for _, t in items if t is not None),
        ))
    return out
