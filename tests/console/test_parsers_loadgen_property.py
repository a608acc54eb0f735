"""Property: a summary written by the real mlcommons-loadgen parses to the latencies LoadGen
logged in the detail log of the same run (result_* keys), for every scenario.

Each example runs LoadGen in a subprocess (it keeps process-wide state, and aborts the process on
a bad outdir) in its own clean directory (an audit.config in the cwd would be picked up).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.parsers.mlperf import detail_results, parse_detail, parse_summary

pytest.importorskip("mlperf_loadgen")

# A trivial SUT: each sample "runs" for work_us microseconds in a thread, then completes;
# with tokens, a first token is reported before completion (TTFT/TPOT are logged).
SUT = textwrap.dedent("""
    import array, sys, threading, time
    import mlperf_loadgen as lg
    scenario, queries, work_us, tokens, outdir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \\
        sys.argv[4] == "1", sys.argv[5]
    buf = array.array("B", [0]); ptr, size = buf.buffer_info()
    def issue(samples):
        def work():
            if tokens:
                lg.FirstTokenComplete([lg.QuerySampleResponse(s.id, ptr, size, 1) for s in samples])
            time.sleep(work_us / 1e6)
            lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, ptr, size, 3) if tokens
                                     else lg.QuerySampleResponse(s.id, ptr, size) for s in samples])
        threading.Thread(target=work).start()
    ts = lg.TestSettings()
    ts.scenario = getattr(lg.TestScenario, scenario)
    ts.mode = lg.TestMode.PerformanceOnly
    ts.min_query_count = ts.max_query_count = queries
    ts.min_duration_ms = 0
    ts.server_target_qps = 2000
    ts.offline_expected_qps = 1000
    ts.use_token_latencies = tokens
    log = lg.LogSettings()
    log.log_output.outdir = outdir
    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(64, 16, lambda idx: None, lambda idx: None)
    lg.StartTestWithLogSettings(sut, qsl, ts, log)
    lg.DestroyQSL(qsl)
    lg.DestroySUT(sut)
""")


def run_loadgen(workdir: Path, scenario: str, queries: int, work_us: int, tokens: bool) -> Path:
    """Run the trivial SUT under LoadGen; returns the outdir holding the two logs."""
    outdir = workdir / f"{scenario}-{queries}-{work_us}-{int(tokens)}"
    outdir.mkdir(parents=True)  # LoadGen aborts when the outdir does not exist
    subprocess.run(
        [
            sys.executable,
            "-c",
            SUT,
            scenario,
            str(queries),
            str(work_us),
            "1" if tokens else "0",
            str(outdir),
        ],
        cwd=outdir,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return outdir


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    scenario=st.sampled_from(["SingleStream", "MultiStream", "Server", "Offline"]),
    queries=st.integers(min_value=4, max_value=48),
    work_us=st.integers(min_value=0, max_value=300),
    tokens=st.booleans(),
)
def test_real_loadgen_summary_parses_to_the_latencies_loadgen_logged(
    tmp_path: Path, scenario: str, queries: int, work_us: int, tokens: bool
) -> None:
    outdir = run_loadgen(tmp_path, scenario, queries, work_us, tokens)
    s = parse_summary((outdir / "mlperf_log_summary.txt").read_text())
    d = detail_results(parse_detail((outdir / "mlperf_log_detail.txt").read_text()))
    assert s["scenario"] == d["scenario"] == scenario
    assert s["valid"] == d["valid"]
    assert set(s["latency_ns"]) == {"min", "max", "mean", "p50", "p90", "p95", "p97", "p99", "p99.9"}
    assert s["latency_ns"] == d["latency_ns"]
    assert s["latency_ns"]["min"] <= s["latency_ns"]["p50"] <= s["latency_ns"]["max"]
    if tokens and scenario == "Server":  # LoadGen prints token latencies in Server summaries
        assert s["ttft_ns"] == d["ttft_ns"] and s["tpot_ns"] == d["tpot_ns"]
    if s["qps"] is not None:  # the summary rounds what the detail log keeps
        assert s["qps"] == pytest.approx(d["qps"], rel=1e-3)
    assert d["query_count"] == (1 if scenario == "Offline" else queries)
    assert s["settings"]["max_query_count"] == queries
