"""Campaigns end to end on the local agent's simulated devices: run, SIGKILL, resume, report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from console.campaign import Manifest, load_for_run, run_campaign
from console.report import build_report

ROOT = Path(__file__).resolve().parents[2]
WATTLAB = [sys.executable, "-m", "console.cli"]

MEASURE_CAMPAIGN = """\
name = "{name}"
devices = ["orin-sim", "h100-sim"]
repeats = 3
order = "interleaved"
shuffle = true
seed = 11
idle_s = 0.2
cooldown_s = 0.1
interval_ms = 50

[scenarios.hold]
scenario = "measure"
duration_s = 1.2
"""


@pytest.fixture
def agent_env(tmp_path, monkeypatch):
    """An isolated agent home (its own daemon) and logs dir; the daemon is stopped afterwards."""
    home = tmp_path / "agent-home"
    monkeypatch.setenv("WATTLAB_AGENT_HOME", str(home))
    monkeypatch.setenv("WATTLAB_LOGS", str(tmp_path / "logs"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    yield env
    subprocess.run([sys.executable, "-m", "agents", "stop"], env=env, capture_output=True, timeout=30)


def _write(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(MEASURE_CAMPAIGN.format(name=name))
    return path


def _assert_runs_are_whole(out: Path) -> int:
    """Every done cell has a complete run whose sample seqs are 0..n-1 exactly once; returns #cells."""
    manifest = Manifest.load(out)
    assert [c.state for c in manifest.cells] == ["done"] * len(manifest.cells), manifest.counts()
    for cell in manifest.cells:
        run_dir = Path(cell.run_dir)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["complete"] is True, cell.id
        table = pq.read_table(run_dir / "samples.parquet", columns=["seq"])
        seqs = sorted(set(table.column("seq").to_pylist()))
        assert seqs == list(range(len(seqs))), f"{cell.id}: seq gaps"
        assert len(seqs) >= 10, cell.id
        assert not list(run_dir.glob("*.part.jsonl"))
    return len(manifest.cells)


def test_a_campaign_runs_every_cell_once_and_reports_them(tmp_path, agent_env):
    spec, lab = load_for_run(_write(tmp_path, "plain"))
    manifest = run_campaign(spec, tmp_path / "out" / "plain", lab=lab)
    assert manifest.counts()["done"] == 6
    assert _assert_runs_are_whole(tmp_path / "out" / "plain") == 6
    rep = build_report(tmp_path / "out" / "plain")
    assert len(rep.runs) == 6
    assert sorted(rep.cells["n"].tolist()) == [3, 3]


def test_sigkilled_console_resumes_to_the_same_report_as_an_uninterrupted_run(tmp_path, agent_env):
    file = _write(tmp_path, "k")
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen([*WATTLAB, "campaign", "run", str(file), "--out", str(killed)], env=agent_env,
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill while one cell is done and another is mid-job
        try:
            cells = json.loads((killed / "manifest.json").read_text())["cells"]
        except (OSError, ValueError):
            cells = []
        states = [c["state"] for c in cells]
        # a running cell whose job already stored samples: the kill then leaves a job to re-attach to
        # (a cell marked running whose run dir does not exist yet would simply be run again)
        recording = any(p.stat().st_size > 0 for p in killed.glob("*/samples.part.jsonl"))
        if states.count("done") >= 1 and "running" in states and recording:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    before = Manifest.load(killed).counts()
    assert before["done"] < 6, "the kill came too late to test anything"

    res = subprocess.run([*WATTLAB, "campaign", "resume", str(killed)], env=agent_env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert _assert_runs_are_whole(killed) == 6

    spec, lab = load_for_run(file)
    run_campaign(spec, clean, lab=lab)
    a, b = build_report(killed), build_report(clean)
    # Same cells, same repeats, same order of execution (same seed); measured values differ only by
    # the sim's timing, so they are compared loosely and the structure exactly.
    assert [c.id for c in Manifest.load(killed).cells] == [c.id for c in Manifest.load(clean).cells]
    cols = ["device", "scenario", "queries_param", "n"]
    assert a.cells[cols].to_dict("records") == b.cells[cols].to_dict("records")
    assert a.cells["mean_w_mean"].tolist() == pytest.approx(b.cells["mean_w_mean"].tolist(), rel=0.1)
    # the cell that was running at the kill was re-attached (its job kept sampling on the device)
    events = [json.loads(line) for d in killed.iterdir() if (d / "events.jsonl").exists()
              for line in (d / "events.jsonl").read_text().splitlines()]
    assert any(e.get("kind") == "attach" for e in events)


def test_quick_campaign_gives_a_complete_report_table(tmp_path, agent_env):
    from console.paths import PROFILES_DIR
    from console.report import render

    spec, lab = load_for_run(PROFILES_DIR / "campaigns" / "quick.toml")
    t0 = time.monotonic()
    manifest = run_campaign(spec, tmp_path / "quick", lab=lab)
    assert time.monotonic() - t0 < 60, "quick.toml must finish in under a minute"
    assert manifest.counts()["done"] == len(manifest.cells) == 8
    rep = build_report(tmp_path / "quick")
    assert len(rep.cells) == 4 and set(rep.cells["n"]) == {2}
    for col in ("energy_per_query_j_mean", "lat_p50_ms_mean", "lat_p90_ms_mean", "lat_max_ms_mean",
                "gwp_per_query_mg_mean", "gwp_per_query_low_mg_mean", "gwp_per_query_high_mg_mean",
                "gwp_per_query_operational_mg_mean", "gwp_per_query_embodied_mg_mean"):
        assert rep.cells[col].notna().all(), col
    assert (rep.cells["gwp_per_query_low_mg_mean"] <= rep.cells["gwp_per_query_mg_mean"]).all()
    assert (rep.cells["gwp_per_query_mg_mean"] <= rep.cells["gwp_per_query_high_mg_mean"]).all()
    text = render(rep, "md")
    assert "| orin-sim | singlestream | 16 | 2 |" in text and "| h100-sim | singlestream | 32 | 2 |" in text
    assert "–" not in text.split("## GWP per query")[1].split("## What if")[0]  # the pivot is full
