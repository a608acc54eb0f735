"""`wattlab bench` end to end on a simulated device (local agent subprocess, no hardware)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from agents.energy import trapezoid
from console.cli import main
from console.commands.bench import aggregate, bench_block, build_workload, parse_sut
from console.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
SIM = "sim:jetson-agx-orin-64gb"
ORIN_LOAD_W = 0.90 * 60.0  # agents/samplers/sim.py: full load = 90 % of the 60 W TDP
ORIN_IDLE_W = 0.15 * 60.0
FAST = ["--interval-ms", "10", "--work-ms", "3"]

# A line server SUT that exits with code 3 on its third query (index 2).
CRASHING_SERVER = textwrap.dedent("""
    import sys
    for n, line in enumerate(iter(sys.stdin.readline, "")):
        if n == 2:
            sys.stderr.write("segfault in the model\\n"); sys.exit(3)
        print('{"ok": true}'); sys.stdout.flush()
""")


def bench(capsys, tmp_path, *args: str) -> tuple[int, str, str]:
    """Run `wattlab bench ...` in-process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main(["bench", *args, "--logs", str(tmp_path / "logs")])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def run_dirs(tmp_path: Path) -> list[Path]:
    return sorted(p.parent for p in (tmp_path / "logs").glob("*/*/run.json"))


@pytest.fixture
def stub_url():
    """The tests' OpenAI-compatible stub as its own process on 127.0.0.1 (80 ms TTFT, 20 ms/token)."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/agent/http_stub.py"), "--ttft-ms", "80",
                             "--tpot-ms", "20", "--tokens", "5"], stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(5)
        proc.stdout.close()


def test_bench_singlestream_on_a_sim_device_prints_a_json_summary(capsys, tmp_path):
    code, out, _ = bench(capsys, tmp_path, SIM, "--scenario", "singlestream", "--queries", "64", "--json",
                         *FAST)
    assert code == 0
    s = json.loads(out)
    b = s["bench"]
    assert s["queries"] == 64 and b["queries_ok"] == 64 and b["queries_failed"] == 0
    assert b["generator"] in ("mlperf_loadgen", "builtin")
    if b["generator"] == "mlperf_loadgen":  # LoadGen's own log, read back on this (local) machine
        assert b["mlperf"]["scenario"] == "SingleStream" and b["mlperf"]["valid"] is True
    assert s["latency_ms"]["p50"] >= 3.0
    g = b["gwp_per_query_mg"]
    assert 0 < g["low"] <= g["value"] <= g["high"]
    (run_dir,) = run_dirs(tmp_path)
    assert len(pd.read_parquet(run_dir / "queries.parquet")) == 64
    assert len(pd.read_parquet(run_dir / "query_energy.parquet")) == 64
    assert json.loads((run_dir / "summary.json").read_text())["bench"]["queries_ok"] == 64


def test_per_query_energy_on_a_sim_device_sums_to_the_job_energy(capsys, tmp_path):
    # --idle-s: samples exist before the first query, so its whole window is measured.
    code, out, _ = bench(capsys, tmp_path, SIM, "--scenario", "gaps", "--queries", "12", "--json",
                         "--interval-ms", "10", "--work-ms", "20", "--generator", "builtin",
                         "--idle-s", "0.1")
    assert code == 0
    b = json.loads(out)["bench"]
    ph = b["phases_j"]
    parts = b["energy_per_query_j"]["sum"] + ph["before_j"] + ph["gaps_j"] + ph["after_j"]
    run_dir = run_dirs(tmp_path)[0]
    total = pd.read_parquet(run_dir / "samples.parquet").query("rail == 'total'").sort_values("t")
    assert parts == pytest.approx(trapezoid(total["t"].tolist(), total["watts"].tolist()), rel=0.005)
    counter_j = total["energy_j"].iloc[-1] - total["energy_j"].iloc[0]  # the sim's exact integral
    assert parts == pytest.approx(counter_j, rel=0.005)
    # The known shape: between idle and full-load power over each query's window.
    q = pd.read_parquet(run_dir / "queries.parquet")
    e = pd.read_parquet(run_dir / "query_energy.parquet")
    seconds = (q["done_t"] - q["issue_t"]).to_numpy()
    joules = e["energy_j"].to_numpy()
    assert (joules >= 0.9 * ORIN_IDLE_W * seconds).all()
    assert (joules <= 1.1 * ORIN_LOAD_W * seconds).all()
    assert ph["gaps_j"] > 0 and ph["before_j"] > 0  # idle gaps and the idle baseline are phases


def test_http_endpoint_records_ttft_and_tpot_close_to_the_server_delays(capsys, tmp_path, stub_url):
    code, out, _ = bench(capsys, tmp_path, SIM, "--scenario", "singlestream", "--queries", "3", "--json",
                         "--interval-ms", "20", "--sut", f"http:{stub_url}", "--model", "stub",
                         "--max-tokens", "5", "--warmup", "1")
    assert code == 0
    b = json.loads(out)["bench"]
    assert 78.0 <= b["ttft_ms"]["p50"] <= 80.0 + 60.0
    assert 19.0 <= b["tpot_ms"]["p50"] <= 20.0 + 15.0
    assert b["output_tokens"] == 15


def test_sut_crash_mid_run_keeps_the_run_marks_the_query_and_says_what_failed(capsys, tmp_path):
    sut = "argv-server:" + shlex.join([sys.executable, "-c", CRASHING_SERVER])
    code, out, err = bench(capsys, tmp_path, SIM, "--scenario", "singlestream", "--queries", "5", "--json",
                           "--interval-ms", "20", "--sut", sut)
    assert code == 0  # the other queries ran
    b = json.loads(out)["bench"]
    assert (b["queries_ok"], b["queries_failed"]) == (4, 1)
    assert "exited with code 3" in b["first_error"] and "segfault in the model" in b["first_error"]
    assert "1 of 5 queries failed" in err and "exited with code 3" in err
    q = pd.read_parquet(run_dirs(tmp_path)[0] / "queries.parquet")
    assert q["ok"].tolist() == [True, True, False, True, True]


def test_endpoint_that_times_out_keeps_the_run_and_exits_1_naming_the_timeout(capsys, tmp_path):
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/agent/http_stub.py"), "--hang-s", "3"],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        code, out, err = bench(capsys, tmp_path, SIM, "--scenario", "singlestream", "--queries", "2",
                               "--json", "--interval-ms", "20", "--sut", f"http:{url}", "--timeout-s", "0.3")
    finally:
        proc.terminate()
        proc.wait(5)
        proc.stdout.close()
    assert code == 1
    assert "timed out after 0.3 s" in err and "no query succeeded" in err
    s = json.loads(out)
    assert s["bench"]["queries_failed"] == 2 and s["samples"] > 0  # the samples are kept
    assert (run_dirs(tmp_path)[0] / "samples.parquet").exists()


def test_repeats_write_one_run_each_and_an_aggregate(capsys, tmp_path):
    code, out, _ = bench(capsys, tmp_path, SIM, "--scenario", "offline", "--queries", "8", "--repeats", "2",
                         "--json", *FAST)
    assert code == 0
    data = json.loads(out)
    assert len(data["runs"]) == 2 and len(run_dirs(tmp_path)) == 2
    m = data["aggregate"]["metrics"]["energy_per_query_j"]
    assert m["n"] == 2 and m["std"] is not None
    (agg_file,) = (tmp_path / "logs").glob("*/bench-*.aggregate.json")
    assert json.loads(agg_file.read_text())["repeats"] == 2


def test_unknown_scenario_exits_2_listing_the_known_ones(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["bench", SIM, "--scenario", "warp", "--logs", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "warp" in err and "singlestream" in err


def test_sut_option_becomes_the_workload_sut():
    assert parse_sut("builtin", work_ms=4) == {"kind": "builtin", "work_ms": 4}
    assert parse_sut("argv:python infer.py '{sample}'") == {
        "kind": "argv", "argv": ["python", "infer.py", "{sample}"], "mode": "per_query"}
    assert parse_sut("argv-server:./serve --fp16")["mode"] == "server"
    http = parse_sut("http:http://127.0.0.1:8000/v1", model="llama", timeout_s=30)
    assert http == {"kind": "http", "url": "http://127.0.0.1:8000/v1", "stream": True, "model": "llama",
                    "timeout_s": 30}
    for bad in ("grpc:x", "http:localhost", "argv:"):
        with pytest.raises(UsageError):
            parse_sut(bad)
    with pytest.raises(UsageError, match="--model applies only to an http SUT"):
        parse_sut("builtin", model="m")


def test_named_scenarios_come_from_the_scenarios_file_with_overrides():
    named = {"server-20qps": {"kind": "loadgen", "scenario": "server", "queries": 400, "qps": 20.0,
                              "sut": {"kind": "builtin", "work_ms": 10.0}},
             "cmd": {"kind": "argv", "argv": ["true"]}}
    w = build_workload("server-20qps", queries=10, qps=5.0, work_ms=2, warmup=3, named=named)
    assert (w["scenario"], w["queries"], w["qps"], w["sut"]["work_ms"]) == ("server", 10, 5.0, 2)
    assert w["warmup"] == 3
    assert named["server-20qps"]["queries"] == 400  # the profile is not modified
    with pytest.raises(UsageError, match="not loadgen"):
        build_workload("cmd", named=named)
    with pytest.raises(UsageError, match="--qps applies only to the server scenario"):
        build_workload("singlestream", qps=3.0, named={})


def test_a_device_without_power_readings_gives_no_energy_per_query_or_phase():
    queries = pd.DataFrame({"query_id": [0, 1], "issue_t": [0.1, 0.3], "done_t": [0.2, 0.4],
                            "ok": [True, True], "extra": ["{}", "{}"]})
    no_power = pd.DataFrame({"t": [0.0, 0.5], "watts": [float("nan")] * 2})
    run = SimpleNamespace(total=lambda: no_power, queries=queries, events=[], meta={})
    b = bench_block(run, {"energy_j": None, "gwp_g": None})
    assert b["energy_per_query_j"] is None and b["phases_j"] is None and b["gwp_per_query_mg"] is None
    assert b["_per_query"]["energy_j"] == [None, None]
    assert b["queries_ok"] == 2


def test_aggregate_gives_mean_and_sample_std_over_repeats():
    runs = [{"energy_j": 10.0, "bench": {"energy_per_query_j": {"mean": 1.0}}},
            {"energy_j": 14.0, "bench": {"energy_per_query_j": {"mean": 3.0}}}]
    m = aggregate(runs)["metrics"]
    assert m["energy_j"] == {"mean": 12.0, "std": pytest.approx(2.8284271), "n": 2}
    assert m["energy_per_query_j"]["mean"] == 2.0
    assert "ttft_p50_ms" not in m
