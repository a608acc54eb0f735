"""One job end to end against a fake agent: store, backfill, summary, attach after a console kill."""

from __future__ import annotations

import threading
import time

import pytest

from console import runner
from console.lab import Host
from console.link import Link, LinkTimeouts
from console.store import load_run
from tests.console.fake_agent import FakeAgent

FAST = LinkTimeouts(connect_timeout_s=3, request_timeout_s=3, backoff_initial_s=0.05, backoff_max_s=0.2)
HOST = Host(name="fake", target="sim:jetson-agx-orin-64gb", grid="FR-ademe", timeouts=FAST)


@pytest.fixture
def agent():
    a = FakeAgent()
    yield a
    a.close()


def _link(agent):
    link = Link("fake", agent.transport, timeouts=FAST)
    link.connect()
    return link


def test_a_run_stores_every_sample_once_even_when_the_connection_drops(agent, tmp_path):
    link = _link(agent)
    seen = []
    def drop_for_a_while():
        agent.mute.set()
        agent.drop()
        time.sleep(0.2)
        agent.mute.clear()

    dropper = threading.Timer(0.4, drop_for_a_while)
    dropper.start()
    try:
        spec = runner.JobSpec(device="sim:jetson-agx-orin-64gb", interval_ms=10, duration_s=1.2)
        result = runner.run_job(HOST, spec, tmp_path, campaign="c", on_progress=seen.append, link=link)
    finally:
        dropper.cancel()
        link.close()
    run = load_run(result.run_dir)
    assert run.complete and result.run_dir.parent.name == "c"
    seqs = list(run.total()["seq"])
    spooled = [r[0] for r in agent.jobs[result.job_id].spool["samples"]]
    assert seqs == spooled == list(range(len(spooled)))
    s = result.summary
    assert s["state"] == "finished" and s["samples"] == len(seqs)
    assert s["energy_j"] > 0 and s["gwp_g"]["low"] <= s["gwp_g"]["total"] <= s["gwp_g"]["high"]
    assert s["method"]["grid_region"] == "FR-ademe" and s["method"]["hardware"] == "jetson-agx-orin-64gb"
    assert s["queries"] == 1
    assert run.meta["job_id"] == result.job_id and run.meta["device"] == "sim:jetson-agx-orin-64gb"
    assert seen and seen[-1].samples == len(seqs)


def test_an_unknown_device_is_a_usage_error_listing_the_devices(agent, tmp_path):
    link = _link(agent)
    try:
        with pytest.raises(runner.UsageError, match="unknown device 'nvml:9'") as err:
            runner.run_job(HOST, runner.JobSpec(device="nvml:9", duration_s=1), tmp_path, link=link)
    finally:
        link.close()
    assert err.value.exit_code == 2 and "sim:jetson-agx-orin-64gb" in err.value.fix
    assert not list(tmp_path.rglob("run.json"))  # nothing half-written for a refused request


def test_attach_after_a_console_kill_completes_the_run_without_gaps(agent, tmp_path, monkeypatch):
    class Killed(BaseException):
        pass

    def killed(_link, active, *_a, **_k):
        active.writer.close()  # what the OS does to a killed process's files and locks
        raise Killed()

    link = _link(agent)
    monkeypatch.setattr(runner, "follow", killed)
    spec = runner.JobSpec(device="sim:jetson-agx-orin-64gb", interval_ms=10, duration_s=1.0)
    with pytest.raises(Killed):
        runner.run_job(HOST, spec, tmp_path, link=link)
    link.close()
    monkeypatch.undo()
    run_dir = next(tmp_path.rglob("run.json")).parent
    assert not load_run(run_dir).complete
    time.sleep(0.3)  # the job keeps sampling on the device while no console is attached

    link2 = _link(agent)
    try:
        result = runner.attach(run_dir, link=link2)
    finally:
        link2.close()
    run = load_run(run_dir)
    spooled = [r[0] for r in agent.jobs[result.job_id].spool["samples"]]
    assert run.complete and list(run.total()["seq"]) == spooled == list(range(len(spooled)))
    assert any(e["kind"] == "attach" and e["samples_backfilled"] > 0 for e in run.events)


def test_choose_device_prefers_gpu_then_jetson_then_rapl_then_none_for_local():
    host = Host(name="local", target="local")
    devs = {"devices": [{"id": "none"}, {"id": "rapl"}, {"id": "sim:<hardware-id>"}]}
    assert runner.choose_device(devs, host, None)["id"] == "rapl"
    devs["devices"].append({"id": "nvml:0"})
    assert runner.choose_device(devs, host, None)["id"] == "nvml:0"
    assert runner.choose_device({"devices": []}, host, None)["id"] == "none"
    sim = runner.choose_device({"devices": []}, host, "sim:a100-sxm4-40gb")
    assert sim["hardware_id"] == "a100-sxm4-40gb"


def test_an_abort_from_on_progress_leaves_the_run_resumable_and_the_job_running(agent, tmp_path):
    class GiveUp(Exception):
        pass

    def give_up(_progress):
        raise GiveUp("host lost")

    link = _link(agent)
    try:
        spec = runner.JobSpec(device="sim:jetson-agx-orin-64gb", interval_ms=10, duration_s=5)
        with pytest.raises(GiveUp):
            runner.run_job(HOST, spec, tmp_path, on_progress=give_up, link=link)
    finally:
        link.close()
    run = load_run(next(tmp_path.rglob("run.json")).parent)
    assert not run.complete and agent.jobs[run.meta["job_id"]].state == "running"
    assert any(e["kind"] == "detached" and "host lost" in e["reason"] for e in run.events)


def test_a_host_lost_mid_run_ends_the_wait_and_attach_later_completes_the_run(agent, tmp_path):
    reachable = threading.Event()
    reachable.set()

    def factory():
        if not reachable.is_set():
            raise OSError("no route to host")
        return agent.transport()

    quick = LinkTimeouts(connect_timeout_s=2, request_timeout_s=2, stall_after_s=0.2, lost_after_s=0.6,
                         backoff_initial_s=0.05, backoff_max_s=0.1)
    host = Host(name="fake", target="sim:jetson-agx-orin-64gb", grid="FR-ademe", timeouts=quick)
    link = Link("fake", factory, timeouts=quick)
    link.connect()
    threading.Timer(0.5, lambda: (reachable.clear(), agent.drop())).start()
    spec = runner.JobSpec(device="sim:jetson-agx-orin-64gb", interval_ms=10, duration_s=2.0)
    try:
        with pytest.raises(runner.HostError, match="lost") as err:
            runner.run_job(host, spec, tmp_path, link=link)
    finally:
        link.close()
    run_dir = next(tmp_path.rglob("run.json")).parent
    assert "--attach" in err.value.fix and not load_run(run_dir).complete

    reachable.set()
    link2 = Link("fake", factory, timeouts=FAST)
    link2.connect()
    try:
        result = runner.attach(run_dir, link=link2)
    finally:
        link2.close()
    run = load_run(run_dir)
    spooled = [r[0] for r in agent.jobs[result.job_id].spool["samples"]]
    assert run.complete and list(run.total()["seq"]) == spooled == list(range(len(spooled)))


def test_simulating_hardware_without_a_profile_is_refused_with_close_matches():
    with pytest.raises(runner.UsageError, match="unknown device 'jetson-agx-orin-64'") as err:
        runner.choose_device({"devices": []}, Host(name="local", target="local"), "sim:jetson-agx-orin-64")
    assert err.value.exit_code == 2 and "jetson-agx-orin-64gb" in err.value.fix
