"""Campaign reports: per-cell statistics over repeats, the study's pivot, profiles, Pareto, what-if.

A report is built from run directories alone (a campaign directory, or any directory of runs), so
it can be regenerated at any time, by anyone, from what is on disk. Every number says how it was
obtained: the `method` table lists sampler, interval, idle subtraction, grid factor and source,
PUE, lifetime and embodied scope per device, taken from each run's summary.json.

Cells are grouped by (device, scenario, queries). A campaign run carries its cell in run.json
(`cell: {id, host, scenario, params, repeat}`); an ad-hoc run falls back to its host/scenario.
Rendering: Markdown and CSV are plain text; PNG uses matplotlib (Agg); HTML is self-contained
(the figures are embedded as base64 PNG).
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from console.analysis import pareto_front, profile_band
from console.errors import UsageError
from console.store import RunInfo, list_runs, load_run

FORMATS = ("md", "csv", "html", "png")
DEFAULT_USERS = 1000
DEFAULT_QUERIES_PER_DAY = 100

# Per-run columns the report keeps (flattened from summary.json and run.json).
RUN_COLUMNS = [
    "device",
    "hardware_id",
    "scenario",
    "queries_param",
    "repeat",
    "run_id",
    "complete",
    "duration_s",
    "queries",
    "queries_failed",
    "energy_j",
    "energy_net_j",
    "idle_w",
    "mean_w",
    "max_w",
    "energy_per_query_j",
    "lat_p50_ms",
    "lat_p90_ms",
    "lat_p99_ms",
    "lat_max_ms",
    "gwp_total_g",
    "gwp_low_g",
    "gwp_high_g",
    "gwp_operational_g",
    "gwp_embodied_g",
    "gwp_per_query_mg",
    "gwp_per_query_low_mg",
    "gwp_per_query_high_mg",
    "gwp_per_query_operational_mg",
    "gwp_per_query_embodied_mg",
    "gwp_total_mg",
]
STAT_COLUMNS = [
    "energy_j",
    "gwp_total_mg",
    "energy_per_query_j",
    "lat_p50_ms",
    "lat_p90_ms",
    "lat_max_ms",
    "gwp_per_query_mg",
    "gwp_per_query_low_mg",
    "gwp_per_query_high_mg",
    "gwp_per_query_operational_mg",
    "gwp_per_query_embodied_mg",
    "mean_w",
]
GROUP = ["device", "scenario", "queries_param"]


@dataclass
class Report:
    """Everything a rendering needs; built once by build_report()."""

    title: str
    source: Path
    runs: pd.DataFrame  # one row per run (RUN_COLUMNS)
    cells: pd.DataFrame  # one row per (device, scenario, queries): n, mean and std of STAT_COLUMNS
    pivot: pd.DataFrame  # devices x query counts: GWP per query (mg), mean over repeats
    profiles: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]]  # device -> (x, mean, std, n)
    pareto: list[int]  # indices into `cells` on the latency-vs-GWP front
    method: pd.DataFrame  # per device: how the numbers were obtained
    what_if: pd.DataFrame  # per cell: yearly kgCO2e at users x queries/day
    users: int = DEFAULT_USERS
    queries_per_day: int = DEFAULT_QUERIES_PER_DAY
    warnings: list[str] = field(default_factory=list)


# --- collecting ------------------------------------------------------------------------------


def _run_dirs(source: Path) -> list[RunInfo]:
    """Runs of a campaign directory (`<dir>/<run-id>/`) or of a logs root (`<root>/<campaign>/<run-id>/`).

    A campaign directory with a manifest counts exactly one run per done cell (the manifest's), so
    a superseded attempt or a cell re-run after a crash is never counted twice.
    """
    manifest = source / "manifest.json"
    if manifest.exists():
        try:
            doc = json.loads(manifest.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"unreadable manifest: {exc}", where=str(manifest)) from None
        chosen = {
            Path(c["run_dir"]).name
            for c in doc.get("cells", [])
            if c.get("state") == "done" and c.get("run_dir")
        }
        return [r for r in list_runs(source.parent) if r.path.parent == source and r.run_id in chosen]
    direct = list_runs(source.parent) if source.parent != source else []
    mine = [r for r in direct if r.path.parent == source]
    return mine or list_runs(source)


def _flatten(meta: dict[str, Any], summary: dict[str, Any], run_id: str, complete: bool) -> dict[str, Any]:
    cell = meta.get("cell") or (meta.get("meta") or {}).get("cell") or {}
    params = cell.get("params") or {}
    workload = meta.get("workload") or {}
    lat = summary.get("latency_ms") or {}
    gwp = summary.get("gwp_g") or {}
    n = summary.get("queries") or 0

    def per_query(key: str) -> float | None:
        value = gwp.get(key)
        return value * 1000.0 / n if value is not None and n else None

    return {
        "device": cell.get("host") or meta.get("host") or "?",
        "hardware_id": meta.get("hardware_id"),
        "scenario": cell.get("scenario") or meta.get("scenario") or workload.get("scenario") or "measure",
        "queries_param": params.get("queries", workload.get("queries", n)),
        "repeat": cell.get("repeat", 0),
        "run_id": run_id,
        "complete": complete,
        "duration_s": summary.get("duration_s"),
        "queries": n,
        "queries_failed": summary.get("queries_failed", 0),
        "energy_j": summary.get("energy_j"),
        "energy_net_j": summary.get("energy_net_j"),
        "idle_w": summary.get("idle_w"),
        "mean_w": summary.get("mean_w"),
        "max_w": summary.get("max_w"),
        "energy_per_query_j": summary.get("energy_per_query_j"),
        "lat_p50_ms": lat.get("p50"),
        "lat_p90_ms": lat.get("p90"),
        "lat_p99_ms": lat.get("p99"),
        "lat_max_ms": lat.get("max"),
        "gwp_total_g": gwp.get("total"),
        "gwp_low_g": gwp.get("low"),
        "gwp_high_g": gwp.get("high"),
        "gwp_operational_g": gwp.get("operational"),
        "gwp_embodied_g": gwp.get("embodied"),
        "gwp_per_query_mg": summary.get("gwp_per_query_mg", per_query("total")),
        "gwp_per_query_low_mg": per_query("low"),
        "gwp_per_query_high_mg": per_query("high"),
        "gwp_per_query_operational_mg": per_query("operational"),
        "gwp_per_query_embodied_mg": per_query("embodied"),
        "gwp_total_mg": gwp["total"] * 1000.0 if gwp.get("total") is not None else None,
    }


def build_report(
    source: str | Path,
    *,
    users: int = DEFAULT_USERS,
    queries_per_day: int = DEFAULT_QUERIES_PER_DAY,
    include_incomplete: bool = False,
) -> Report:
    """Read every run under `source` and compute the report's tables and series."""
    source = Path(source)
    if not source.is_dir():
        raise UsageError("no such directory", where=str(source))
    infos = _run_dirs(source)
    if not infos:
        raise UsageError(
            "no run directories found (expected <dir>/<run-id>/run.json)",
            where=str(source),
            fix="run `wattlab campaign run FILE --out DIR` or `wattlab measure` first",
        )
    warnings: list[str] = []
    rows: list[dict[str, Any]] = []
    traces: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    methods: dict[str, dict[str, Any]] = {}
    for info in infos:
        run = load_run(info.path)
        if not run.complete and not include_incomplete:
            warnings.append(f"skipped incomplete run {info.run_id} (resume the campaign to finish it)")
            continue
        row = _flatten(run.meta, run.summary, info.run_id, run.complete)
        rows.append(row)
        total = run.total()
        if len(total):
            t = total["t"].to_numpy(dtype=float)
            w = total["watts"].to_numpy(dtype=float)
            idle_s = float((run.summary.get("method") or {}).get("idle_s") or 0.0)
            if idle_s > 0:  # the profile shows the workload, as the study's figures do
                keep = t >= idle_s
                t, w = t[keep], w[keep]
            traces.setdefault(row["device"], []).append((t, w))
        methods.setdefault(row["device"], _method_row(row["device"], run.meta, run.summary))
    if not rows:
        raise UsageError(
            "no complete runs to report on",
            where=str(source),
            fix="resume the campaign, or pass --include-incomplete",
        )
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS).sort_values([*GROUP, "repeat", "run_id"], kind="stable")
    runs = runs.reset_index(drop=True)
    cells = aggregate(runs)
    pivot = pivot_gwp(cells)
    profiles = {dev: (*profile_band(tr), len(tr)) for dev, tr in sorted(traces.items())}
    points = list(
        zip(cells["lat_p50_ms_mean"].astype(float), cells["gwp_per_query_mg_mean"].astype(float), strict=True)
    )
    method = pd.DataFrame([methods[d] for d in sorted(methods)])
    return Report(
        title=source.name,
        source=source,
        runs=runs,
        cells=cells,
        pivot=pivot,
        profiles=profiles,
        pareto=pareto_front(points),
        method=method,
        what_if=what_if(cells, users, queries_per_day),
        users=users,
        queries_per_day=queries_per_day,
        warnings=warnings,
    )


def _method_row(device: str, meta: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    m = summary.get("method") or {}
    grid = m.get("grid_g_per_kwh")
    if isinstance(grid, dict):
        grid = f"{grid.get('value')} [{grid.get('low')}, {grid.get('high')}]"
    return {
        "device": device,
        "hardware": m.get("hardware") or meta.get("hardware_id"),
        "sampler": m.get("sampler"),
        "interval_ms": m.get("interval_ms"),
        "total_rule": m.get("total_rule"),
        "energy": m.get("energy"),
        "idle_subtraction": "on" if m.get("idle_subtraction") else "off",
        "grid_g_per_kwh": grid,
        "grid": m.get("grid_source") or m.get("grid_region"),
        "pue": m.get("pue"),
        "lifetime_years": m.get("lifetime_years"),
        "embodied_scope": m.get("embodied_scope"),
        "estimated": ", ".join(k for k, v in (summary.get("estimated") or {}).items() if v),
    }


# --- pure tables ----------------------------------------------------------------------------


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std over repeats of each (device, scenario, queries) cell; n = repeats."""
    grouped = runs.groupby(GROUP, sort=True, dropna=False)
    out = grouped.size().rename("n").to_frame()
    for col in STAT_COLUMNS:
        values = pd.to_numeric(runs[col], errors="coerce")
        g = values.groupby([runs[k] for k in GROUP], sort=True, dropna=False)
        out[f"{col}_mean"] = g.mean()
        out[f"{col}_std"] = g.std(ddof=1).fillna(0.0)
    return out.reset_index()


def pivot_gwp(cells: pd.DataFrame) -> pd.DataFrame:
    """The study's Table 5.1 shape: devices (rows) x query counts (columns), GWP per query in mg."""
    table = cells.pivot_table(
        index="device", columns="queries_param", values="gwp_per_query_mg_mean", aggfunc="mean"
    )
    table.columns = [f"{c} queries" for c in table.columns]
    return table


def what_if(cells: pd.DataFrame, users: int, queries_per_day: int) -> pd.DataFrame:
    """Scale each cell's GWP per query to `users` x `queries_per_day` for a year (kgCO2e/year)."""
    per_year = users * queries_per_day * 365.0
    out = cells[GROUP].copy()
    for suffix in ("", "_low", "_high"):
        out[f"kg_per_year{suffix}"] = cells[f"gwp_per_query{suffix}_mg_mean"] * per_year / 1e6
    return out


# --- rendering ------------------------------------------------------------------------------


def _fmt(x: Any, digits: int = 4) -> str:
    """Numbers at `digits` significant figures (thousands separated past 10 000); missing as an en dash."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if abs(x) >= 1e4:
            return f"{x:,.0f}"
        return f"{x:.{digits}g}"
    return str(x)


def _pm(mean: Any, std: Any) -> str:
    return f"{_fmt(mean)} ± {_fmt(std, 2)}"


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def cell_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the main per-cell table (shared by Markdown and HTML)."""
    headers = [
        "device",
        "scenario",
        "queries",
        "n",
        "energy/run (J)",
        "GWP/run (mg)",
        "energy/query (J)",
        "p50 (ms)",
        "p90 (ms)",
        "max (ms)",
        "GWP/query (mg) [low, high]",
        "operational (mg)",
        "embodied (mg)",
        "Pareto",
    ]
    rows = []
    for i, c in report.cells.iterrows():
        rows.append(
            [
                str(c["device"]),
                str(c["scenario"]),
                _fmt(c["queries_param"]),
                str(int(c["n"])),
                _pm(c["energy_j_mean"], c["energy_j_std"]),
                _pm(c["gwp_total_mg_mean"], c["gwp_total_mg_std"]),
                _pm(c["energy_per_query_j_mean"], c["energy_per_query_j_std"]),
                _pm(c["lat_p50_ms_mean"], c["lat_p50_ms_std"]),
                _pm(c["lat_p90_ms_mean"], c["lat_p90_ms_std"]),
                _pm(c["lat_max_ms_mean"], c["lat_max_ms_std"]),
                f"{_pm(c['gwp_per_query_mg_mean'], c['gwp_per_query_mg_std'])} "
                f"[{_fmt(c['gwp_per_query_low_mg_mean'])}, {_fmt(c['gwp_per_query_high_mg_mean'])}]",
                _pm(c["gwp_per_query_operational_mg_mean"], c["gwp_per_query_operational_mg_std"]),
                _pm(c["gwp_per_query_embodied_mg_mean"], c["gwp_per_query_embodied_mg_std"]),
                "★" if i in report.pareto else "",
            ]
        )
    return headers, rows


def render_markdown(report: Report) -> str:
    """The whole report as Markdown (tables only; figures are in the png/html formats)."""
    out = [
        f"# wattlab report: {report.title}",
        "",
        f"Source: `{report.source}` — {len(report.runs)} runs in {len(report.cells)} cells "
        "(mean ± sample std over repeats).",
        "",
    ]
    for w in report.warnings:
        out.append(f"> warning: {w}")
    if report.warnings:
        out.append("")
    out += ["## Per cell", ""]
    out += _md_table(*cell_rows(report))
    out += [
        "",
        "★ = on the latency (p50) vs GWP-per-query Pareto front.",
        "",
        "## GWP per query (mg CO2e), devices x query counts",
        "",
    ]
    piv = report.pivot
    out += _md_table(
        ["device", *map(str, piv.columns)],
        [[str(idx), *(_fmt(v) for v in row)] for idx, row in piv.iterrows()],
    )
    out += ["", f"## What if: {report.users} users x {report.queries_per_day} queries/day, one year", ""]
    out += _md_table(
        ["device", "scenario", "queries", "kgCO2e/year [low, high]"],
        [
            [
                str(r["device"]),
                str(r["scenario"]),
                _fmt(r["queries_param"]),
                f"{_fmt(r['kg_per_year'])} [{_fmt(r['kg_per_year_low'])}, {_fmt(r['kg_per_year_high'])}]",
            ]
            for _, r in report.what_if.iterrows()
        ],
    )
    out += ["", "## Power profiles (normalized time, 100 points)", ""]
    out += _md_table(
        ["device", "runs", "mean W (start / middle / end)", "max mean W", "mean std W"],
        [
            [
                dev,
                str(n),
                f"{_fmt(m[0])} / {_fmt(m[len(m) // 2])} / {_fmt(m[-1])}",
                _fmt(float(np.nanmax(m)) if np.isfinite(m).any() else None),
                _fmt(float(np.nanmean(s)) if np.isfinite(s).any() else None),
            ]
            for dev, (_x, m, s, n) in report.profiles.items()
        ],
    )
    out += ["", "## How these numbers were obtained", ""]
    out += _md_table(
        list(report.method.columns), [[_fmt(v) for v in row] for row in report.method.itertuples(index=False)]
    )
    out += [
        "",
        "GWP = E_kWh x EF_grid x PUE + (t / lifetime) x F, F = die_cm2 x I_proc + mem_GB x I_mem "
        "(embodied scope: die + memory). [low, high] use the low/high factors throughout.",
        "",
    ]
    return "\n".join(out)


def render_csv(report: Report) -> str:
    """The per-cell statistics as CSV (one row per device x scenario x queries)."""
    return report.cells.to_csv(index=False)


def render_png(report: Report) -> bytes:
    """A figure: power profiles (mean ± std band) per device and latency vs GWP per query with Pareto."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    for dev, (x, mean, std, n) in report.profiles.items():
        ax1.plot(x * 100, mean, label=f"{dev} (n={n})")
        ax1.fill_between(x * 100, mean - std, mean + std, alpha=0.25)
    ax1.set_xlabel("normalized time (%)")
    ax1.set_ylabel("power (W)")
    ax1.set_title("Power profile, mean ± std over runs")
    ax1.legend(fontsize=8)
    c = report.cells
    for dev, grp in c.groupby("device"):
        ax2.errorbar(
            grp["lat_p50_ms_mean"],
            grp["gwp_per_query_mg_mean"],
            yerr=[
                grp["gwp_per_query_mg_mean"] - grp["gwp_per_query_low_mg_mean"],
                grp["gwp_per_query_high_mg_mean"] - grp["gwp_per_query_mg_mean"],
            ],
            fmt="o",
            capsize=3,
            label=str(dev),
        )
    if report.pareto:
        front = c.loc[report.pareto].sort_values("lat_p50_ms_mean")
        ax2.plot(front["lat_p50_ms_mean"], front["gwp_per_query_mg_mean"], "k--", lw=1, label="Pareto front")
    ax2.set_xlabel("latency p50 (ms)")
    ax2.set_ylabel("GWP per query (mg CO2e)")
    ax2.set_title("Latency vs GWP per query [low, high]")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def render_html(report: Report) -> str:
    """A self-contained HTML page: the Markdown tables as HTML plus the figure embedded as base64."""
    import html

    def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    png = base64.b64encode(render_png(report)).decode("ascii")
    piv = report.pivot
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>wattlab report: {html.escape(report.title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
        "td:first-child,th:first-child{text-align:left}.warn{color:#a50}</style></head><body>",
        f"<h1>wattlab report: {html.escape(report.title)}</h1>",
        f"<p>{len(report.runs)} runs in {len(report.cells)} cells (mean ± sample std over repeats).</p>",
        *(f"<p class='warn'>warning: {html.escape(w)}</p>" for w in report.warnings),
        "<h2>Per cell</h2>",
        table(*cell_rows(report)),
        "<h2>GWP per query (mg CO2e)</h2>",
        table(
            ["device", *map(str, piv.columns)], [[str(i), *(_fmt(v) for v in r)] for i, r in piv.iterrows()]
        ),
        f"<h2>Figures</h2><img alt='power profiles and latency vs GWP' src='data:image/png;base64,{png}'>",
        "<h2>How these numbers were obtained</h2>",
        table(
            list(report.method.columns), [[_fmt(v) for v in r] for r in report.method.itertuples(index=False)]
        ),
        "<script type='application/json' id='cells'>"
        + html.escape(report.cells.to_json(orient="records"))
        + "</script>",
        "</body></html>",
    ]
    return "\n".join(parts)


def render(report: Report, fmt: str) -> str | bytes:
    """Render in one of FORMATS."""
    if fmt == "md":
        return render_markdown(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "html":
        return render_html(report)
    if fmt == "png":
        return render_png(report)
    raise UsageError(f"unknown report format {fmt!r}", fix=f"use one of: {', '.join(FORMATS)}")


def report_json(report: Report) -> str:
    """Machine-readable cells (for tests and scripts)."""
    return json.dumps(json.loads(report.cells.to_json(orient="records")), indent=2)
