"""agents.loadgen driven by the real MLPerf LoadGen (mlcommons-loadgen in the venv).

Each run is in its own Python process: LoadGen aborts the whole process on some errors, which
must not take pytest with it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from console.parsers.mlperf import parse_summary

pytest.importorskip("mlperf_loadgen")
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, sys, time
    if sys.argv[2] == "hide-loadgen":
        sys.modules["mlperf_loadgen"] = None  # as on a device without it: import fails
    from agents.loadgen import LoadgenError, run_workload
    rows, loads = [], []
    try:
        summary = run_workload(json.loads(sys.argv[1]), time.monotonic, lambda *r: rows.append(r),
                               loads.append, lambda: False)
    except LoadgenError as exc:
        summary = {"error": str(exc)}
    print(json.dumps({"summary": summary, "rows": rows, "loads": loads}))
""")


def run_in_subprocess(spec: dict, hide_loadgen: bool = False) -> dict:
    mode = "hide-loadgen" if hide_loadgen else "-"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(spec), mode],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def spec(tmp_path: Path, scenario: str, **kw) -> dict:
    return {"kind": "loadgen", "scenario": scenario, "queries": 16, "seed": 3,
            "log_dir": str(tmp_path / "lg"), "sut": {"kind": "builtin", "work_ms": 2}, **kw}


def test_singlestream_runs_on_real_loadgen_and_its_log_matches_our_rows(tmp_path):
    out = run_in_subprocess(spec(tmp_path, "singlestream"))
    s = out["summary"]
    assert s["generator"] == "mlperf_loadgen"
    assert s["log_dir"] == str(tmp_path / "lg")
    assert s["queries_ok"] == 16 and len(out["rows"]) == 16
    assert s["mlperf_result"] == "INVALID"  # fewer than 64 queries: early stopping cannot validate
    logged = parse_summary((tmp_path / "lg" / "mlperf_log_summary.txt").read_text())
    assert logged["scenario"] == "SingleStream"
    ours_ms = sorted((done - issue) * 1000 for _, issue, done, _, _ in out["rows"])
    lg_min_ms, lg_max_ms = logged["latency_ns"]["min"] / 1e6, logged["latency_ns"]["max"] / 1e6
    assert lg_min_ms >= 2.0 and ours_ms[0] >= 2.0  # both saw the 2 ms of work
    # LoadGen times from its own issue to QuerySamplesComplete, which comes just after our done stamp.
    assert ours_ms[-1] <= lg_max_ms + 0.5
    assert ours_ms[-1] >= 0.5 * lg_max_ms
    # SingleStream: one query at a time, back to back.
    for cur, nxt in zip(out["rows"], out["rows"][1:], strict=False):
        assert cur[2] <= nxt[1]


@pytest.mark.parametrize("scenario,extra,rows", [
    ("offline", {}, 16),
    ("server", {"qps": 400.0}, 16),
    ("multistream", {"samples_per_query": 4}, 16),
])
def test_every_mlperf_scenario_runs_on_real_loadgen(tmp_path, scenario, extra, rows):
    out = run_in_subprocess(spec(tmp_path, scenario, **extra))
    assert out["summary"]["generator"] == "mlperf_loadgen"
    assert len(out["rows"]) == rows
    assert all(r[3] for r in out["rows"])
    assert (tmp_path / "lg" / "mlperf_log_detail.txt").exists()
    if scenario == "multistream":
        assert {r[4]["samples"] for r in out["rows"]} == {4}
    if scenario == "offline":
        assert len({r[1] for r in out["rows"]}) == 1  # one query with every sample, issued at once


def test_builtin_generator_is_used_when_asked_even_with_loadgen_installed(tmp_path):
    out = run_in_subprocess(spec(tmp_path, "singlestream", generator="builtin", queries=4))
    assert out["summary"]["generator"] == "builtin"
    assert "log_dir" not in out["summary"]


def test_auto_falls_back_to_builtin_and_mlperf_fails_clearly_without_loadgen(tmp_path):
    auto = run_in_subprocess(spec(tmp_path, "singlestream", queries=4), hide_loadgen=True)
    assert auto["summary"]["generator"] == "builtin"
    forced = run_in_subprocess(spec(tmp_path, "singlestream", queries=4, generator="mlperf"),
                               hide_loadgen=True)
    assert "mlperf_loadgen cannot be imported" in forced["summary"]["error"]
