"""`wattlab import`: turn a result made elsewhere (MLPerf LoadGen logs, trtexec, llama-bench), plus
an optional power log (nvidia-smi CSV, PTDaemon spl.txt, tegrastats), into a run directory, so old
results sit next to new ones in reports.

The benchmark gives the query count, latency percentiles and, for MLPerf with a detail log, the
power window (power_begin..power_end, UTC). The power log is cut to that window when both carry
wall clocks (as the MLPerf checker does); otherwise the whole log is taken as covering the run.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from console.errors import UsageError
from console.parsers.common import ParseError, PowerTrace
from console.parsers.detect import detect

IMPORTABLE = ("mlperf_summary", "mlperf_detail", "trtexec", "llama_bench_md", "llama_bench_csv",
              "llama_bench_json", "llama_bench_jsonl")
POWER_FORMATS = ("nvidia_smi_csv", "ptd_spl", "tegrastats")
_LATENCY_KEYS = ("p50", "p90", "p99", "max", "mean")  # DESIGN summary.json latency_ms keys come first


class LogFileError(UsageError):
    """A file given to `wattlab import` that cannot be read or parsed: names the file and line."""

    def __init__(self, path: Path, what: str, line: int | None = None, fix: str | None = None) -> None:
        self.path = path
        self.line = line
        super().__init__(what, where=f"{path}:{line}" if line else str(path), fix=fix)


@dataclass
class ImportedResult:
    """What a foreign benchmark result says about the run (units in the names)."""

    format: str
    sources: dict[str, str]
    scenario: str | None
    queries: int | None
    latency_ms: dict[str, float] | None
    duration_s: float | None = None
    window: tuple[datetime, datetime] | None = None  # UTC, when the result logs one
    extra: dict[str, Any] = field(default_factory=dict)  # goes to summary.json as is
    parsed: Any = None  # the parser's output, kept in run.json
    notes: list[str] = field(default_factory=list)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise LogFileError(path, f"cannot read: {exc.strerror or exc}") from None


def _parse(path: Path, fmt: str, text: str, **kwargs: Any) -> Any:
    from console.parsers.detect import PARSERS

    try:
        return PARSERS[fmt](text, **kwargs)
    except ParseError as err:
        raise LogFileError(path, f"{err.fmt}: {err.message}", err.line) from None


def _ordered(values: dict[str, float]) -> dict[str, float]:
    """Latency dict with the DESIGN keys (p50, p90, p99, max, mean) first, the rest after."""
    keys = [k for k in _LATENCY_KEYS if k in values] + [k for k in values if k not in _LATENCY_KEYS]
    return {k: float(values[k]) for k in keys}


def _ms(values_ns: dict[str, int | float]) -> dict[str, float]:
    return _ordered({k: v / 1e6 for k, v in values_ns.items()})


# ------------------------------------------------------------------ results


def read_result(path: Path) -> ImportedResult:
    """Parse a result file, or an MLPerf run directory holding mlperf_log_summary.txt / _detail.txt."""
    if path.is_dir():
        summary, detail = path / "mlperf_log_summary.txt", path / "mlperf_log_detail.txt"
        if not summary.exists() and not detail.exists():
            raise LogFileError(path, "directory has no mlperf_log_summary.txt or mlperf_log_detail.txt")
        path = summary if summary.exists() else detail
    text = _read(path)
    fmt = detect(text, path.name)
    if fmt not in IMPORTABLE:
        what = f"a {fmt} file cannot be imported as a result" if fmt else "unknown file format"
        raise LogFileError(path, what, fix="give an MLPerf summary/detail log, trtexec or llama-bench output")
    if fmt.startswith("mlperf"):
        return _mlperf(path, fmt, text)
    if fmt == "trtexec":
        return _trtexec(path, _parse(path, fmt, text))
    return _llama_bench(path, fmt, _parse(path, fmt, text))


def _mlperf(path: Path, fmt: str, text: str) -> ImportedResult:
    from console.parsers import mlperf

    summary = _parse(path, fmt, text) if fmt == "mlperf_summary" else None
    detail_path = path if fmt == "mlperf_detail" else path.with_name(path.name.replace("summary", "detail"))
    detail = None
    if fmt == "mlperf_detail" or (detail_path != path and detail_path.exists()):
        detail = mlperf.detail_results(_parse(detail_path, "mlperf_detail", _read(detail_path)))
    main = summary or detail
    assert main is not None
    sources = {"summary": str(path)} if summary else {}
    if detail:
        sources["detail"] = str(detail_path)
    notes: list[str] = []
    queries = detail.get("query_count") if detail else None
    settings = (summary or {}).get("settings", {})
    if queries is None and summary:
        queries = summary["early_stopping"]["queries_processed"]
    if queries is None and settings.get("min_query_count") == settings.get("max_query_count"):
        queries = settings.get("max_query_count")  # min = max = N: the study's fixed query count
    if main["scenario"] == "Offline" and settings.get("samples_per_query"):
        queries = settings["samples_per_query"]  # one Offline query holds every sample: count samples
        notes.append("Offline: queries counts samples (one LoadGen query holds all of them)")
    window = (detail["power_begin"], detail["power_end"]) if detail and detail["power_begin"] else None
    duration = (window[1] - window[0]).total_seconds() if window else None
    if duration is None and queries and main.get("qps"):
        duration = queries / main["qps"]
        notes.append("duration estimated as queries / qps (no detail log with power_begin/power_end)")
    extra = {"valid": main["valid"], "qps": main["qps"], "qps_metric": main["qps_metric"],
             "tokens_per_s": main.get("tokens_per_s")}
    for key in ("ttft_ns", "tpot_ns"):
        if main.get(key):
            extra[key.replace("_ns", "_ms")] = _ms(main[key])
    return ImportedResult(fmt, sources, main["scenario"], queries, _ms(main["latency_ns"]) or None,
                          duration, window, extra, {"summary": summary, "detail": detail}, notes)


def _trtexec(path: Path, parsed: dict[str, Any]) -> ImportedResult:
    walltime = parsed["total_host_walltime_s"]
    qps = parsed["throughput_qps"]
    # Throughput = executions / Total Host Walltime (TensorRT developer guide), so their product counts them.
    queries = round(qps * walltime) if walltime else None
    latency = _ordered({k: v for k, v in parsed["latency_ms"].items() if k != "median"})
    notes = ["queries = throughput x total host walltime"] if queries else []
    return ImportedResult("trtexec", {"result": str(path)}, "trtexec", queries, latency, walltime, None,
                          {"qps": qps, "passed": parsed["passed"]}, parsed, notes)


def _llama_bench(path: Path, fmt: str, rows: list[Any]) -> ImportedResult:
    if not rows:
        raise LogFileError(path, "llama-bench output with no result rows")
    latencies_ms: list[float] = []
    tokens = 0
    notes = ["a query is one test repetition (one pp or tg run)"]
    for r in rows:
        n_tokens = r.n_prompt + r.n_gen
        runs_ms = [n_tokens / ts * 1000.0 for ts in r.samples_ts if ts > 0]
        if not runs_ms:  # md/csv output has only the mean: assume the default 5 repetitions
            runs_ms = [n_tokens / r.avg_ts * 1000.0] * 5
            notes = [notes[0], "no per-repetition samples: 5 runs at the mean assumed (llama-bench -r 5)"]
        latencies_ms += runs_ms
        tokens += n_tokens * len(runs_ms)
    from console.metrics import latency_percentiles

    tests = [dataclasses.asdict(r) for r in rows]
    return ImportedResult(fmt, {"result": str(path)}, "llama-bench", len(latencies_ms),
                          latency_percentiles(latencies_ms), sum(latencies_ms) / 1000.0, None,
                          {"tokens": tokens, "tests": [{"test": r.test, "avg_ts": r.avg_ts} for r in rows]},
                          tests, notes)


# ------------------------------------------------------------------ power


def read_power(path: Path, interval_ms: float = 1000.0) -> tuple[str, PowerTrace]:
    """(format, trace) of a power log: nvidia-smi CSV, PTDaemon spl.txt or tegrastats."""
    text = _read(path)
    fmt = detect(text, path.name)
    if fmt not in POWER_FORMATS:
        raise LogFileError(path, f"not a power log this command reads ({fmt or 'unknown format'})",
                           fix="give an nvidia-smi --format=csv log, a PTDaemon spl.txt or a tegrastats log")
    if fmt == "tegrastats":
        return fmt, _parse(path, fmt, text, interval_ms=interval_ms)
    if fmt == "nvidia_smi_csv":
        return fmt, _parse(path, fmt, text)
    samples = _parse(path, fmt, text)
    t0 = samples[0].time
    return fmt, PowerTrace(source="ptdaemon", t_s=[(s.time - t0).total_seconds() for s in samples],
                           total_w=[s.watts for s in samples], rails=[{} for _ in samples], t0=t0,
                           total_rule="Watts at the wall (PTDaemon analyzer)")


def cut_to_window(trace: PowerTrace, window: tuple[datetime, datetime], offset_s: float = 0.0,
                  path: Path | None = None) -> tuple[list[float], list[float | None], list[dict]]:
    """Samples inside the benchmark window, with t re-based to its start. Naive log times are read
    as UTC after adding offset_s (nvidia-smi and tegrastats print local time)."""
    assert trace.t0 is not None
    t0 = trace.t0 if trace.t0.tzinfo else trace.t0.replace(tzinfo=timezone.utc)
    t0 += timedelta(seconds=offset_s)
    begin, end = window
    start_s, end_s = (begin - t0).total_seconds(), (end - t0).total_seconds()
    keep = [i for i, t in enumerate(trace.t_s) if start_s <= t <= end_s]
    if len(keep) < 2:
        log_end = t0 + timedelta(seconds=trace.t_s[-1])
        raise LogFileError(path or Path(trace.source),
                           f"power log ({t0:%Y-%m-%d %H:%M:%S} to {log_end:%H:%M:%S} UTC) has {len(keep)} "
                           f"sample(s) inside the benchmark window ({begin:%Y-%m-%d %H:%M:%S} to "
                           f"{end:%H:%M:%S} UTC)",
                           fix="--power-offset-s SECONDS shifts the log's clock (e.g. -7200 for a UTC+2 log)")
    return ([trace.t_s[i] - start_s for i in keep], [trace.total_w[i] for i in keep],
            [trace.rails[i] if i < len(trace.rails) else {} for i in keep])


def _checker_power(t_s: list[float], watts: list[float | None], duration_s: float,
                   queries: int | None) -> dict[str, float] | None:
    """The MLPerf checker's figures for spl.txt: mean of positive Watts strictly inside the window,
    times its length (energy), per query in mJ (the SingleStream/MultiStream metric)."""
    inside = [w for t, w in zip(t_s, watts, strict=True) if 0 < t < duration_s and w is not None and w > 0]
    if not inside:
        return None
    avg = sum(inside) / len(inside)
    out = {"avg_watts": avg, "samples": len(inside), "energy_j": avg * duration_s}
    if queries:
        out["energy_mj_per_query"] = avg * duration_s * 1000.0 / queries
    return out


# ------------------------------------------------------------------ the run


@dataclass(frozen=True)
class ImportOptions:
    """Who and where the imported run is attributed to."""

    host: str = "imported"
    hardware_id: str | None = None
    campaign: str = "imported"
    power: Path | None = None
    power_interval_ms: float = 1000.0
    power_offset_s: float = 0.0


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: o.isoformat() if isinstance(o, datetime)
                                 else dataclasses.asdict(o) if dataclasses.is_dataclass(o) else str(o)))


def import_run(path: Path, logs_root: Path, options: ImportOptions, impact: Any = None) -> tuple[Path, dict]:
    """Write a run directory for an existing result (+ power log); returns (run dir, summary.json dict).

    impact: a console.metrics.ImpactContext (grid, PUE, hardware) or None for no GWP.
    """
    from console import store
    from console.metrics import RunFacts, summarize_run

    result = read_result(path)
    rows: list[list] = []
    power_fmt = None
    mlperf_power: dict[str, float] | None = None
    notes = list(result.notes)
    duration = result.duration_s
    if options.power is not None:
        power_fmt, trace = read_power(options.power, options.power_interval_ms)
        if result.window and trace.t0 is not None:
            t_s, watts, rails = cut_to_window(trace, result.window, options.power_offset_s, options.power)
            duration = (result.window[1] - result.window[0]).total_seconds()
            notes.append("power cut to the benchmark's power_begin..power_end window")
            if power_fmt == "ptd_spl":
                mlperf_power = _checker_power(t_s, watts, duration, result.queries)
        else:
            t_s, watts, rails = trace.t_s, trace.total_w, trace.rails
            duration = t_s[-1] - t_s[0]
            notes.append("power log taken as covering the whole run (no common wall clock to cut it)")
        for seq, (t, w, r) in enumerate(zip(t_s, watts, rails, strict=True)):
            single = len(r) == 1 and next(iter(r.values())) == w  # one GPU: its rail is the total
            rows.append([seq, t, w, {} if single else r, None])
        sampler = {"name": f"import:{power_fmt}", "total_rule": trace.total_rule}
    else:
        sampler = {"name": None, "total_rule": None}
        notes.append("no power log: energy and GWP not computed")

    facts = RunFacts(sampler=sampler["name"], interval_ms=None, device=options.hardware_id,
                     total_rule=sampler["total_rule"], extra_method={"imported": True, "import_notes": notes})
    summary = summarize_run(rows, [], facts, impact, duration_s=duration)
    summary["queries"] = result.queries or 0
    summary["latency_ms"] = result.latency_ms
    energy = summary.get("energy_net_j", summary.get("energy_j"))
    n = result.queries
    summary["energy_per_query_j"] = energy / n if energy is not None and n else None
    gwp = summary.get("gwp_g")
    summary["gwp_per_query_mg"] = gwp["total"] * 1000.0 / n if gwp and n else None
    summary.update({k: v for k, v in result.extra.items() if k not in summary})
    if mlperf_power:
        summary["mlperf_power"] = mlperf_power
    if result.format.startswith("llama_bench") and energy is not None and result.extra.get("tokens"):
        summary["energy_per_token_j"] = energy / result.extra["tokens"]

    writer = store.RunWriter(logs_root, options.campaign, host=options.host,
                             device=options.hardware_id or "none")
    sources = dict(result.sources, **({"power": str(options.power)} if options.power else {}))
    writer.write_meta({
        "imported": True, "source": sources, "format": result.format, "power_format": power_fmt,
        "host": options.host, "device": options.hardware_id, "hardware_id": options.hardware_id,
        "grid": getattr(impact, "grid_region", None), "pue": getattr(impact, "pue", None),
        "scenario": result.scenario, "sampler": sampler,
        "start_wall": result.window[0].timestamp() if result.window else None,
        "end_wall": result.window[1].timestamp() if result.window else None,
        "imported_result": _jsonable(result.parsed),
    })
    if rows:
        writer.add_samples(rows)
    writer.event("imported", sources=sources, format=result.format, power_format=power_fmt)
    run_dir = writer.finish(summary)
    return run_dir, summary
