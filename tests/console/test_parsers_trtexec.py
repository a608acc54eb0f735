"""trtexec performance summaries: TensorRT 8.4 (p99 only) and 10.x (p90/p95/p99)."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.parsers.common import ParseError
from console.parsers.trtexec import parse_trtexec

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "trtexec"


def test_trt84_xavier_summary_reads_throughput_latency_and_passed() -> None:
    r = parse_trtexec((FIX / "jetson-agx-xavier_trt8.4_perf-summary.txt").read_text())
    assert r["throughput_qps"] == 41087.7
    assert r["latency_ms"] == {
        "min": 0.387207,
        "max": 0.447357,
        "mean": 0.402238,
        "median": 0.401947,
        "p50": 0.401947,
        "p99": 0.420288,
    }
    assert r["metrics"]["gpu_compute_time"]["mean"] == 0.388221
    assert r["metrics"]["h2d_latency"]["p99"] == 0.0272217
    assert r["metrics"]["d2h_latency"]["max"] == 0.00537109
    assert r["metrics"]["enqueue_time"]["median"] == 0.0871582
    assert r["total_host_walltime_s"] == 3.00119 and r["total_gpu_compute_time_s"] == 2.99202
    assert r["passed"] is True and r["tensorrt_version"] == "8400"
    assert r["command"] == "trtexec --loadEngine=mnist16.trt --batch=16"


def test_trt10_summary_reads_p90_p95_p99_of_every_metric() -> None:
    r = parse_trtexec((FIX / "trt10-era_perf-summary_p90-p95-p99.txt").read_text())
    assert r["throughput_qps"] == 130.298
    assert (r["latency_ms"]["p90"], r["latency_ms"]["p95"], r["latency_ms"]["p99"]) == (
        10.2996,
        10.8698,
        12.9675,
    )
    assert r["metrics"]["enqueue_time"]["p95"] == 11.7217
    assert r["metrics"]["gpu_compute_time"]["p90"] == 10.2881
    assert r["metrics"]["d2h_latency"]["p99"] == 0.0994873
    assert r["passed"] is None  # cut before the &&&& line


def test_log_without_a_performance_summary_is_refused_on_line_1() -> None:
    with pytest.raises(ParseError) as err:
        parse_trtexec("[I] Loading engine\n[I] Done\n")
    assert err.value.line == 1 and "trtexec" in str(err.value)


def test_non_numeric_stat_names_its_line() -> None:
    lines = (FIX / "trt10-era_perf-summary_p90-p95-p99.txt").read_text().splitlines()
    lines[2] = lines[2].replace("mean = 7.60628 ms", "mean = 7.6.0 ms")
    with pytest.raises(ParseError) as err:
        parse_trtexec("\n".join(lines))
    assert err.value.line == 3
