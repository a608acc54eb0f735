"""`wattlab measure` against the real agent (a subprocess daemon in a tmp home), on a GPU-less machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import typer
from typer.testing import CliRunner

from console.commands import measure
from console.errors import UsageError
from console.store import load_run
from console.transport.local import stop_local_daemon

SUMMARY_KEYS = {"duration_s", "energy_j", "mean_w", "max_w", "queries", "latency_ms", "gwp_g",
                "gwp_per_query_mg", "energy_per_query_j", "estimated", "method", "complete"}


@pytest.fixture
def agent_home(tmp_path, monkeypatch):
    home = tmp_path / "agent"
    monkeypatch.setenv("WATTLAB_AGENT_HOME", str(home))
    yield home
    stop_local_daemon(home)  # never leave a daemon behind


@pytest.fixture
def cli():
    app = typer.Typer()
    measure.register(app)

    @app.callback()
    def _root() -> None:  # a group, so `measure` is a subcommand as in the real CLI
        pass

    return app


def test_measure_sim_orin_for_3_s_prints_summary_json_and_writes_the_run(cli, agent_home, tmp_path):
    logs = tmp_path / "logs"
    res = CliRunner().invoke(cli, ["measure", "sim:jetson-agx-orin-64gb", "--duration", "3", "--json",
                                   "--logs", str(logs)])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert SUMMARY_KEYS <= set(s)
    assert s["duration_s"] == pytest.approx(3.0, abs=0.15)
    assert 5 < s["mean_w"] < 60  # between the simulated Orin's idle and its 60 W TDP
    assert s["energy_j"] == pytest.approx(s["mean_w"] * s["duration_s"], rel=0.05)
    assert s["gwp_g"]["low"] <= s["gwp_g"]["total"] <= s["gwp_g"]["high"] and s["estimated"]["energy"]
    (run_dir,) = [p.parent for p in logs.rglob("run.json")]
    assert {p.name for p in run_dir.iterdir()} == {"run.json", "samples.parquet", "queries.parquet",
                                                   "events.jsonl", "summary.json"}
    run = load_run(run_dir)
    assert run.complete and list(run.total()["seq"]) == list(range(len(run.total())))
    assert len(run.total()) == s["samples"] >= 29


def test_measure_local_with_a_command_records_time_even_without_a_power_source(cli, agent_home, tmp_path):
    res = CliRunner().invoke(cli, ["measure", "local", "--logs", str(tmp_path), "--", "sleep", "1"])
    assert res.exit_code == 0, res.output
    assert "duration  1." in res.stdout
    run = load_run(next(tmp_path.rglob("run.json")).parent)
    assert run.meta["command"] == ["sleep", "1"]
    assert run.summary["duration_s"] >= 0.9
    if run.meta["device"] == "none":  # no RAPL here: say what cannot be measured
        assert "not measured" in res.stdout and "rapl" in res.stdout


def test_a_failing_workload_exits_1_with_the_error_and_keeps_samples(cli, agent_home, tmp_path):
    res = CliRunner().invoke(cli, ["measure", "sim:h100-sxm5-80gb", "--logs", str(tmp_path), "--json", "--",
                                   sys.executable, "-c", "import time, sys; time.sleep(0.5); sys.exit(3)"])
    assert res.exit_code == 1
    s = json.loads(res.stdout)
    assert "code 3" in s["error"]
    run = load_run(next(tmp_path.rglob("run.json")).parent)
    assert len(run.total()) >= 4 and run.summary["error"] == s["error"]
    assert any("code 3" in json.dumps(e) for e in run.events)


def test_duration_and_command_together_are_refused(cli):
    res = CliRunner().invoke(cli, ["measure", "local", "--duration", "1", "--", "true"])
    assert isinstance(res.exception, UsageError)


def test_unknown_device_exits_2_with_one_clear_line(agent_home, tmp_path):
    env = dict(os.environ, WATTLAB_AGENT_HOME=str(agent_home))
    proc = subprocess.run([sys.executable, "-m", "console.cli", "measure", "local", "--device", "nvml:7",
                           "--duration", "1", "--logs", str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert proc.returncode == 2
    assert "unknown device 'nvml:7' on host local" in proc.stderr and "Traceback" not in proc.stderr


def test_attach_after_the_console_is_killed_stores_every_sample_once(agent_home, tmp_path):
    env = dict(os.environ, WATTLAB_AGENT_HOME=str(agent_home))
    cmd = [sys.executable, "-m", "console.cli", "measure", "sim:jetson-agx-orin-64gb", "--interval-ms", "20",
           "--duration", "3", "--logs", str(tmp_path)]
    console = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        part = None
        while time.monotonic() < deadline and part is None:  # wait until samples are being stored
            part = next((p for p in tmp_path.rglob("samples.part.jsonl") if p.stat().st_size > 2000), None)
            time.sleep(0.05)
        assert part is not None, "the console never stored samples"
    finally:
        console.kill()  # SIGKILL: no cleanup at all
        console.wait()
    run_dir = part.parent
    assert not load_run(run_dir).complete

    again = [sys.executable, "-m", "console.cli", "measure", "--attach", str(run_dir), "--json"]
    proc = subprocess.run(again, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    run = load_run(run_dir)
    seqs = list(run.total()["seq"])
    assert run.complete and seqs == list(range(len(seqs))) and len(seqs) >= 140  # 3 s at 50 Hz
    assert any(e["kind"] == "attach" for e in run.events)
    assert json.loads(proc.stdout)["samples"] == len(seqs)


def test_idle_subtraction_agrees_with_the_agents_own_totals(cli, agent_home, tmp_path):
    res = CliRunner().invoke(cli, ["measure", "sim:jetson-agx-orin-64gb", "--idle-s", "0.5", "--json",
                                   "--logs", str(tmp_path), "--", "sleep", "1"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    device = s["device_totals"]
    assert s["idle_w"] == pytest.approx(device["idle_w"])
    assert s["energy_j"] == pytest.approx(device["load_energy_j"], rel=1e-6)
    assert s["energy_net_j"] == pytest.approx(device["energy_net_j"], rel=1e-6)
    assert s["energy_net_j"] < s["energy_j"] and s["method"]["idle_subtraction"] is True
