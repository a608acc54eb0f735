"""`wattlab bench HOST --scenario NAME ...`: run a load-generator workload with power sampling.

Each repeat is one job on HOST (workload {"kind": "loadgen", ...}, see docs/ARCHITECTURE.md) and one
run directory. After the run, the per-query energy (console.query_energy) is added: summary.json
gets a "bench" block (energy per query attributed to each query, energy per phase, TTFT/TPOT, GWP
per query in mg with [low, high], what failed) and query_energy.parquet holds the joules of every
query. With --repeats R an aggregate (mean and standard deviation over the repeats) is printed and
written next to the runs.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from console.errors import UsageError

BUILTIN_SCENARIOS = ("singlestream", "offline", "server", "multistream", "gaps", "bursts", "batch")
DEFAULT_WORK_MS = 10.0
# Figures averaged over repeats: (label, path in the summary).
AGGREGATED = (
    ("energy_j", ("energy_j",)),
    ("duration_s", ("duration_s",)),
    ("energy_per_query_j", ("bench", "energy_per_query_j", "mean")),
    ("gwp_per_query_mg", ("bench", "gwp_per_query_mg", "value")),
    ("latency_p50_ms", ("latency_ms", "p50")),
    ("latency_p90_ms", ("latency_ms", "p90")),
    ("latency_p99_ms", ("latency_ms", "p99")),
    ("ttft_p50_ms", ("bench", "ttft_ms", "p50")),
    ("tpot_p50_ms", ("bench", "tpot_ms", "p50")),
    ("queries_failed", ("queries_failed",)),
)


def register(app: typer.Typer) -> None:
    """Add the `bench` command to the CLI."""
    app.command("bench", help="Run a load-generator scenario with power sampling; energy and GWP per query.")(
        bench)


def bench(
    ctx: typer.Context,
    host: str = typer.Argument(..., help="Lab host name, local, sim:<hardware-id> or ssh://..."),
    scenario: str = typer.Option(..., "--scenario", help="singlestream, offline, server, multistream, gaps, "
                                 "bursts, batch, or a name from profiles/scenarios.toml."),
    queries: Optional[int] = typer.Option(None, "--queries", min=1, help="Number of queries."),
    sut: Optional[str] = typer.Option(None, "--sut", help="builtin | argv:CMD | argv-server:CMD | http:URL"),
    model: Optional[str] = typer.Option(None, "--model", help="Model name sent to an http SUT."),
    qps: Optional[float] = typer.Option(None, "--qps", min=0.001, help="Server scenario: target queries/s."),
    repeats: int = typer.Option(1, "--repeats", min=1, help="Runs of the same workload (one run dir each)."),
    idle_s: float = typer.Option(0.0, "--idle-s", min=0.0, help="Idle baseline first (subtracted)."),
    interval_ms: int = typer.Option(100, "--interval-ms", min=1, help="Sampling interval."),
    work_ms: Optional[float] = typer.Option(None, "--work-ms", min=0.0, help="builtin SUT: CPU ms/sample."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Load generator seed (same every repeat)."),
    generator: Optional[str] = typer.Option(None, "--generator", help="auto | mlperf | builtin (auto: real "
                                            "MLPerf LoadGen when the device has it)."),
    on_error: Optional[str] = typer.Option(None, "--on-error", help="continue | stop, when a query fails."),
    timeout_s: Optional[float] = typer.Option(None, "--timeout-s", min=0.001, help="Per-query SUT timeout."),
    warmup: Optional[int] = typer.Option(None, "--warmup", min=0, help="Unrecorded queries first."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1, help="http SUT: max tokens."),
    device: Optional[str] = typer.Option(None, "--device", help="Device id (default: the host's)."),
    campaign: Optional[str] = typer.Option(None, "--campaign", help="Group the runs (default adhoc)."),
    grid: Optional[str] = typer.Option(None, "--grid", help="Grid id or region of profiles/grids.toml."),
    pue: Optional[float] = typer.Option(None, "--pue", min=1.0, help="PUE (default: the device category's)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON (with repeats: runs + aggregate)."),
    logs: Optional[Path] = typer.Option(None, "--logs", help="Where runs are written (default ./logs)."),
    lab: Optional[Path] = typer.Option(None, "--lab", help="Lab file (default profiles/lab.toml)."),
) -> None:
    """Run the benchmark REPEATS times and print the summary; exit 1 when a job or every query failed."""
    from console import runner
    from console.lab import load_lab, resolve_host, with_overrides
    from console.paths import logs_dir

    parent = ctx.parent.params if ctx.parent is not None else {}
    lab = lab or parent.get("lab")
    logs = logs or parent.get("logs")
    workload = build_workload(scenario, queries=queries, sut=sut, model=model, qps=qps, work_ms=work_ms,
                              seed=seed, generator=generator, on_error=on_error, timeout_s=timeout_s,
                              warmup=warmup, max_tokens=max_tokens)
    target = with_overrides(resolve_host(host, load_lab(lab) if lab else None), grid=grid, pue=pue)
    root = logs_dir(logs)
    summaries: list[dict[str, Any]] = []
    run_dirs: list[Path] = []
    for rep in range(repeats):
        spec = runner.JobSpec(device=device, interval_ms=interval_ms, idle_s=idle_s, workload=workload,
                              meta={"scenario": scenario, "repeat": rep, "repeats": repeats})
        result = runner.run_job(target, spec, root, campaign=campaign,
                                on_progress=None if json_out else _progress_printer(rep, repeats))
        if not json_out and sys.stderr.isatty():
            sys.stderr.write("\r\033[K")
        summary = add_bench_block(result.run_dir, result.summary)
        summaries.append(summary)
        run_dirs.append(result.run_dir)
        if not json_out:
            typer.echo(format_bench(summary, result.run_dir, rep, repeats))
    agg = aggregate(summaries) if repeats > 1 else None
    if agg is not None:
        agg_path = run_dirs[0].parent / f"bench-{run_dirs[0].name}.aggregate.json"
        agg["runs"] = [str(p) for p in run_dirs]
        _atomic_write_json(agg_path, agg)
        if not json_out:
            typer.echo(format_aggregate(agg, agg_path))
    if json_out:
        out = summaries[0] if agg is None else {"runs": summaries, "aggregate": agg}
        typer.echo(json.dumps(out, indent=2, sort_keys=True, default=str))
    if report_failures(summaries, run_dirs):
        raise typer.Exit(1)


def report_failures(summaries: list[dict[str, Any]], run_dirs: list[Path]) -> bool:
    """Say on stderr what failed in each run; True when a job failed or a run had no successful query."""
    bad = False
    for s, d in zip(summaries, run_dirs, strict=True):
        b = s.get("bench") or {}
        if s.get("error"):
            typer.echo(f"wattlab: bench job failed: {s['error']} (samples kept in {d})", err=True)
            bad = True
        if b.get("queries_failed"):
            typer.echo(f"wattlab: {b['queries_failed']} of {b.get('queries_issued')} queries failed in {d}; "
                       f"first: {b.get('first_error')}", err=True)
        if not b.get("queries_ok"):
            typer.echo(f"wattlab: no query succeeded in {d}", err=True)
            bad = True
    return bad


# --- workload ---------------------------------------------------------------------------------


def parse_sut(text: str | None, *, work_ms: float | None = None, model: str | None = None,
              timeout_s: float | None = None, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The SUT dict of a --sut value (None keeps `base`, else the builtin CPU loop)."""
    if text is None:
        out = dict(base or {"kind": "builtin"})
    elif text == "builtin":
        out = {"kind": "builtin"}
    elif text.startswith(("argv:", "argv-server:")):
        prefix, _, cmd = text.partition(":")
        try:
            argv = shlex.split(cmd)  # split like a shell would; run without one
        except ValueError as exc:
            raise UsageError(f"cannot split the --sut command: {exc}", where="--sut") from None
        if not argv:
            raise UsageError("--sut argv: needs a command, e.g. argv:'python infer.py {sample}'")
        out = {"kind": "argv", "argv": argv, "mode": "server" if prefix == "argv-server" else "per_query"}
    elif text.startswith(("http:", "https:")):
        url = text[5:] if text.startswith("http:http") else text
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--sut http needs a URL, got {text!r}", fix="--sut http:http://127.0.0.1:8000/v1")
        out = {"kind": "http", "url": url, "stream": True}
    else:
        raise UsageError(f"unknown --sut {text!r}", fix="builtin | argv:CMD | argv-server:CMD | http:URL")
    if out.get("kind") == "builtin":
        out["work_ms"] = work_ms if work_ms is not None else out.get("work_ms", DEFAULT_WORK_MS)
    elif work_ms is not None:
        raise UsageError("--work-ms applies only to the builtin SUT")
    if model is not None:
        if out.get("kind") != "http":
            raise UsageError("--model applies only to an http SUT")
        out["model"] = model
    if timeout_s is not None and out.get("kind") != "builtin":
        out["timeout_s"] = timeout_s
    return out


def named_scenarios() -> dict[str, dict[str, Any]]:
    """Workloads of profiles/scenarios.toml by name ({} when the file is absent)."""
    from console.tui.scenarios import SCENARIOS_FILE, load_scenarios  # no Textual in that module

    if not SCENARIOS_FILE.exists():
        return {}
    return {s.name: s.workload for s in load_scenarios(SCENARIOS_FILE)}


def build_workload(scenario: str, *, queries: int | None = None, sut: str | None = None,
                   model: str | None = None, qps: float | None = None, work_ms: float | None = None,
                   seed: int | None = None, generator: str | None = None, on_error: str | None = None,
                   timeout_s: float | None = None, warmup: int | None = None, max_tokens: int | None = None,
                   named: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The loadgen WORKLOAD for a scenario name plus the command-line overrides.

    The seven built-in names always mean the load generator's scenario with its defaults (a file
    entry of the same name is not used), so `--scenario gaps` is the same everywhere.
    """
    name = scenario.lower()
    if name in BUILTIN_SCENARIOS:
        workload: dict[str, Any] = {"kind": "loadgen", "scenario": name, "seed": 0}
    else:
        named = named_scenarios() if named is None else named
        if scenario not in named:
            known = ", ".join(list(BUILTIN_SCENARIOS) + sorted(set(named) - set(BUILTIN_SCENARIOS)))
            raise UsageError(f"unknown scenario {scenario!r}", where="--scenario", fix=f"one of: {known}")
        workload = json.loads(json.dumps(named[scenario]))  # a deep copy
        if workload.get("kind") != "loadgen":
            raise UsageError(f"scenario {scenario!r} is a {workload.get('kind')} workload, not loadgen",
                             where="profiles/scenarios.toml", fix="use `wattlab measure` for a command")
    workload["sut"] = parse_sut(sut, work_ms=work_ms, model=model, timeout_s=timeout_s,
                                base=workload.get("sut"))
    if max_tokens is not None:
        if workload["sut"].get("kind") != "http":
            raise UsageError("--max-tokens applies only to an http SUT")
        workload["sut"]["max_tokens"] = max_tokens
    for key, value in (("queries", queries), ("qps", qps), ("seed", seed), ("warmup", warmup)):
        if value is not None:
            workload[key] = value
    if qps is not None and workload["scenario"] != "server":
        raise UsageError("--qps applies only to the server scenario")
    if generator is not None:
        if generator not in ("auto", "mlperf", "builtin"):
            raise UsageError(f"--generator must be auto, mlperf or builtin, got {generator!r}")
        workload["generator"] = generator
    if on_error is not None:
        if on_error not in ("continue", "stop"):
            raise UsageError(f"--on-error must be continue or stop, got {on_error!r}")
        workload["on_error"] = on_error
    return workload


# --- per-query energy and the bench block -----------------------------------------------------


def add_bench_block(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """Compute the bench block of a finished run, store it in summary.json and query_energy.parquet."""
    from console import store

    run = store.load_run(run_dir)
    block = bench_block(run, summary)
    out = dict(summary, bench=block)
    per_query = block.pop("_per_query", None)
    if per_query is not None:
        _write_query_energy(Path(run_dir) / "query_energy.parquet", per_query)
    _atomic_write_json(Path(run_dir) / "summary.json", out)
    return out


def bench_block(run: Any, summary: dict[str, Any]) -> dict[str, Any]:
    """Energy per query and per phase, token latencies, GWP per query and failures of one run."""
    from console.metrics import latency_percentiles
    from console.query_energy import query_energy

    total = run.total()
    q = run.queries
    extras = [json.loads(x) if isinstance(x, str) and x else {} for x in q["extra"]] if len(q) else []
    issue = [float(x) for x in q["issue_t"]] if len(q) else []
    done = [None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)
            for x in q["done_t"]] if len(q) else []
    ok = [bool(x) for x in q["ok"]] if len(q) else []
    energy = query_energy(list(total["t"]), [None if math.isnan(w) else float(w) for w in total["watts"]],
                          issue, done, idle_w=summary.get("idle_w"))
    ok_j = [e for e, good in zip(energy.per_query_j, ok, strict=True) if good and e is not None]
    workload = _workload_summary(run.events)
    n_ok = len(ok_j)
    block: dict[str, Any] = {
        "generator": workload.get("generator"),
        "scenario": workload.get("scenario") or (run.meta.get("workload") or {}).get("scenario"),
        "queries_issued": len(q),
        "queries_ok": sum(ok),
        "queries_failed": len(q) - sum(ok),
        "first_error": next((x.get("error") for x, good in zip(extras, ok, strict=True) if not good), None),
        "errors": workload.get("errors"),
        "stopped": workload.get("stopped"),
        "energy_per_query_j": _stats(ok_j),
        "phases_j": energy.as_dict() if summary.get("energy_j") is not None else None,
        "ttft_ms": latency_percentiles([x["ttft_ms"] for x in extras if "ttft_ms" in x]),
        "tpot_ms": latency_percentiles([x["tpot_ms"] for x in extras if "tpot_ms" in x]),
        "output_tokens": sum(int(x.get("output_tokens") or 0) for x in extras) or None,
        "gwp_per_query_mg": _gwp_per_query_mg(summary.get("gwp_g"), n_ok),
        "attribution": "power shared equally among queries in flight (console/query_energy.py)",
    }
    if energy.per_query_net_j is not None:
        block["energy_net_per_query_j"] = _stats(
            [e for e, good in zip(energy.per_query_net_j, ok, strict=True) if good and e is not None])
    for key in ("log_dir", "mlperf_result"):
        if workload.get(key) is not None:
            block[key] = workload[key]
    if workload.get("log_dir"):
        block["mlperf"] = _mlperf_log(Path(workload["log_dir"]))
    if len(q):
        block["_per_query"] = {"query_id": [int(x) for x in q["query_id"]], "ok": ok,
                               "energy_j": energy.per_query_j,
                               "energy_net_j": energy.per_query_net_j or [None] * len(q)}
    return block


def _workload_summary(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The load generator's own summary, as the agent logged it when the workload ended."""
    for e in reversed(events):
        s = e.get("summary")
        if isinstance(s, dict) and "generator" in s:
            return s
    return {}


def _mlperf_log(log_dir: Path) -> dict[str, Any] | None:
    """LoadGen's own figures when its log is readable from here (a local or sim host), else None."""
    from console.errors import WattlabError
    from console.parsers.mlperf import parse_summary

    path = log_dir / "mlperf_log_summary.txt"
    try:
        parsed = parse_summary(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None  # on the device only: `log_dir` says where
    except (WattlabError, ValueError) as exc:
        return {"error": f"{path}: {exc}"}
    return {k: parsed.get(k) for k in ("scenario", "mode", "valid", "qps", "latency_ns")}


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    xs = sorted(values)
    from console.metrics import percentile

    return {"mean": sum(xs) / len(xs), "p50": percentile(xs, 50), "p90": percentile(xs, 90), "max": xs[-1],
            "sum": sum(xs)}


def _gwp_per_query_mg(gwp_g: dict[str, float] | None, n_ok: int) -> dict[str, float] | None:
    """The run's GWP (the job's energy and time, as summary.json has it) per completed query, in mg."""
    if not gwp_g or not n_ok:
        return None
    return {"value": gwp_g["total"] * 1000.0 / n_ok, "low": gwp_g["low"] * 1000.0 / n_ok,
            "high": gwp_g["high"] * 1000.0 / n_ok}


def _write_query_energy(path: Path, cols: dict[str, list]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"query_id": pa.array(cols["query_id"], pa.int64()),
                      "ok": pa.array(cols["ok"], pa.bool_()),
                      "energy_j": pa.array(cols["energy_j"], pa.float64()),
                      "energy_net_j": pa.array(cols["energy_net_j"], pa.float64())})
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _atomic_write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# --- repeats ----------------------------------------------------------------------------------


def aggregate(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation over repeats of each AGGREGATED figure (n = runs that have it)."""
    out: dict[str, Any] = {"repeats": len(summaries), "metrics": {}}
    for label, path in AGGREGATED:
        values = [v for v in (_dig(s, path) for s in summaries) if isinstance(v, (int, float))]
        if not values:
            continue
        out["metrics"][label] = {"mean": statistics.fmean(values),
                                 "std": statistics.stdev(values) if len(values) > 1 else None,
                                 "n": len(values)}
    return out


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


# --- output -----------------------------------------------------------------------------------


def _fmt(value: Any, spec: str = ".3f", unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{(' ' + unit) if unit else ''}"


def format_bench(s: dict[str, Any], run_dir: Path, rep: int = 0, repeats: int = 1) -> str:
    """The human summary of one bench run."""
    b = s.get("bench") or {}
    lat = s.get("latency_ms") or {}
    epq = b.get("energy_per_query_j") or {}
    g = b.get("gwp_per_query_mg") or {}
    ph = b.get("phases_j") or {}
    head = f"run {rep + 1}/{repeats}  " if repeats > 1 else ""
    lines = [f"{head}{run_dir}",
             f"  {b.get('scenario')} via {b.get('generator')}   queries {b.get('queries_ok')} ok, "
             f"{b.get('queries_failed')} failed   duration {_fmt(s.get('duration_s'), '.2f', 's')}"
             + ("   (simulated device)" if (s.get("estimated") or {}).get("energy") else ""),
             f"  latency   p50 {_fmt(lat.get('p50'), '.2f')}  p90 {_fmt(lat.get('p90'), '.2f')}  "
             f"p99 {_fmt(lat.get('p99'), '.2f')}  max {_fmt(lat.get('max'), '.2f')} ms",
             f"  energy    {_fmt(s.get('energy_j'), '.2f', 'J')} total; per query mean "
             f"{_fmt(epq.get('mean'), '.4f', 'J')} (p90 {_fmt(epq.get('p90'), '.4f', 'J')}); "
             f"gaps {_fmt(ph.get('gaps_j'), '.2f', 'J')}, before {_fmt(ph.get('before_j'), '.2f', 'J')}, "
             f"after {_fmt(ph.get('after_j'), '.2f', 'J')}"
             if s.get("energy_j") is not None else
             "  energy    not measured (time only on this device); `wattlab hosts` shows what it can measure"]
    if g:
        lines.append(f"  GWP       {g['value']:.4f} mgCO2e/query [{g['low']:.4f}, {g['high']:.4f}]")
    if b.get("ttft_ms"):
        tpot = (b.get("tpot_ms") or {}).get("p50")
        lines.append(f"  tokens    TTFT p50 {_fmt(b['ttft_ms'].get('p50'), '.1f', 'ms')}   "
                     f"TPOT p50 {_fmt(tpot, '.2f', 'ms')}   out {b.get('output_tokens')}")
    if b.get("log_dir"):
        lines.append(f"  loadgen   {b.get('mlperf_result')}, logs on the device in {b['log_dir']}")
    if b.get("first_error"):
        lines.append(f"  failed    {b.get('queries_failed')} queries; first: {b['first_error']}")
    if s.get("error"):
        lines.append(f"  error     {s['error']}")
    return "\n".join(lines)


def format_aggregate(agg: dict[str, Any], path: Path) -> str:
    """Mean ± std per figure over the repeats."""
    lines = [f"aggregate over {agg['repeats']} runs ({path})"]
    for label, m in agg["metrics"].items():
        std = "n/a" if m["std"] is None else f"{m['std']:.4g}"
        lines.append(f"  {label:<20} {m['mean']:.4g} ± {std}")
    return "\n".join(lines)


def _progress_printer(rep: int, repeats: int):
    """One self-rewriting stderr line while a job runs (only on a terminal)."""
    if not sys.stderr.isatty():
        return None

    def show(p: Any) -> None:
        power = "-" if p.power_w is None else f"{p.power_w:.1f} W"
        sys.stderr.write(f"\r\033[Krun {rep + 1}/{repeats} {p.state} {p.elapsed_s:5.1f} s  {power}  "
                         f"{p.energy_j:.1f} J  {p.queries} queries")
        sys.stderr.flush()

    return show
