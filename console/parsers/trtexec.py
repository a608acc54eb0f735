"""TensorRT `trtexec` performance summary (TensorRT 8.x and 10.x console output).

    [I] === Performance summary ===
    [I] Throughput: 41087.7 qps
    [I] Latency: min = 0.387 ms, max = ..., mean = ..., median = ..., percentile(99%) = 0.420 ms
    [I] Enqueue Time / H2D Latency / GPU Compute Time / D2H Latency: same shape
    [I] Total Host Walltime: 3.00119 s

8.x prints only percentile(99%); 10.x prints percentile(90%), (95%) and (99%). Stats are in ms,
keyed min, max, mean, median (also as p50) and p<N>; metric names are snake_case
(`latency`, `enqueue_time`, `h2d_latency`, `gpu_compute_time`, `d2h_latency`, ...).
"""

from __future__ import annotations

import re
from typing import Any

from console.parsers.common import ParseError, pct_key

FORMAT = "trtexec"

_PREFIX = re.compile(r"^(?:\[[^\]]*\]\s*)*")  # "[03/11/2022-14:57:03] [I] "
_STATS_LINE = re.compile(r"^(?P<name>[A-Za-z][\w\s-]*?): (?P<body>min = .*)$")
_STAT = re.compile(r"(?P<key>min|max|mean|median|percentile\((?P<pct>[\d.]+)%\)) = (?P<value>\S+) ms")
_SCALAR = re.compile(
    r"^(?P<name>Throughput|Total Host Walltime|Total GPU Compute Time): (?P<value>\S+) (?P<unit>qps|s)$")
_PASSED = re.compile(
    r"^&&&& (?P<state>PASSED|FAILED) TensorRT\.trtexec \[TensorRT v(?P<version>\d+)\] # (?P<cmd>.*)$")


def _snake(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip()).lower()


def _float(lineno: int, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ParseError(FORMAT, lineno, f"{text!r} is not a number") from None


def parse_trtexec(text: str) -> dict[str, Any]:
    """Throughput, per-metric latency stats (ms), walltimes (s) and PASSED/FAILED of a trtexec log."""
    out: dict[str, Any] = {
        "format": "trtexec", "throughput_qps": None, "metrics": {}, "total_host_walltime_s": None,
        "total_gpu_compute_time_s": None, "passed": None, "tensorrt_version": None, "command": None,
    }
    in_summary = False
    seen_summary = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = _PREFIX.sub("", raw).strip()
        passed = _PASSED.match(raw.strip())
        if passed:
            out["passed"] = passed.group("state") == "PASSED"
            out["tensorrt_version"] = passed.group("version")
            out["command"] = passed.group("cmd")
            continue
        if line == "=== Performance summary ===":
            in_summary = seen_summary = True
            continue
        if not in_summary:
            continue
        if line.startswith("==="):
            in_summary = False  # the next "=== ... ===" block (e.g. trace details) ends ours
            continue
        scalar = _SCALAR.match(line)
        if scalar:
            key = {"Throughput": "throughput_qps", "Total Host Walltime": "total_host_walltime_s",
                   "Total GPU Compute Time": "total_gpu_compute_time_s"}[scalar.group("name")]
            out[key] = _float(lineno, scalar.group("value"))
            continue
        stats = _STATS_LINE.match(line)
        if stats:
            values: dict[str, float] = {}
            for m in _STAT.finditer(stats.group("body")):
                name = pct_key(float(m.group("pct"))) if m.group("pct") else m.group("key")
                values[name] = _float(lineno, m.group("value"))
            if not {"min", "max", "mean"} <= values.keys():
                raise ParseError(FORMAT, lineno, f"stats line without min/max/mean: {line!r}")
            if "median" in values:
                values.setdefault("p50", values["median"])
            out["metrics"][_snake(stats.group("name"))] = values
    if not seen_summary:
        raise ParseError(FORMAT, 1, "no '=== Performance summary ===' line: not a trtexec log")
    has_latency = "latency" in out["metrics"] or "host_latency" in out["metrics"]
    if out["throughput_qps"] is None or not has_latency:
        raise ParseError(FORMAT, None, "summary without Throughput and Latency lines (truncated?)")
    out["latency_ms"] = out["metrics"].get("latency", out["metrics"].get("host_latency"))
    return out
