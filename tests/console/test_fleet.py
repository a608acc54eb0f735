"""The fleet: concurrent hosts, cheap snapshots, jobs recorded like measure, close leaves jobs running."""

from __future__ import annotations

import threading
import time

import pytest

from console import runner
from console.fleet import Fleet
from console.lab import Host, Lab, load_lab
from console.link import Link, LinkTimeouts
from console.state import DeviceState
from console.store import load_run
from console.transport.local import stop_local_daemon
from tests.console.fake_agent import FakeAgent, HangingTransport

FAST = LinkTimeouts(connect_timeout_s=30, request_timeout_s=5, backoff_initial_s=0.05, backoff_max_s=0.2)


def _wait(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def _by_host(fleet):
    return {v.host: v for v in fleet.snapshot()}


@pytest.fixture
def two_hosts():
    agent = FakeAgent()
    hang = HangingTransport()
    lab = Lab(None, {
        "good": Host("good", "sim:jetson-agx-orin-64gb", grid="FR-ademe", timeouts=FAST),
        "dead": Host("dead", "sim:h100-sxm5-80gb", timeouts=FAST),
    })
    factories = {"good": agent.transport, "dead": lambda: hang}
    yield agent, hang, lab, (lambda host: factories[host.name])
    hang.release.set()
    agent.close()


def test_a_hanging_host_never_blocks_the_others_snapshots(two_hosts, tmp_path):
    _agent, _hang, lab, factory_for = two_hosts
    fleet = Fleet(lab, tmp_path, factory_for=factory_for).start()
    try:
        assert _wait(lambda: _by_host(fleet)["good"].state == DeviceState.IDLE)
        t0 = time.perf_counter()
        for _ in range(100):
            views = _by_host(fleet)
        per_call_ms = (time.perf_counter() - t0) * 10
        assert per_call_ms < 5
        assert views["dead"].state == DeviceState.CONNECTING
        assert views["good"].hardware_id == "jetson-agx-orin-64gb" and views["good"].category == "edge"

        v0 = fleet.version
        spec = runner.JobSpec(interval_ms=10, duration_s=1.0)
        job_id = fleet.start_job("good", None, spec)
        assert _wait(lambda: (_by_host(fleet)["good"].energy_j or 0) > 1)
        live = _by_host(fleet)["good"]
        assert live.state == DeviceState.SAMPLING and live.job_id == job_id and live.power_w >= 10
        assert live.gwp is not None and live.gwp.low_g <= live.gwp.total_g <= live.gwp.high_g
        assert len(live.history) > 5 and fleet.version > v0
        assert _by_host(fleet)["dead"].state == DeviceState.CONNECTING  # still waiting, unharmed

        result = fleet.wait_job(job_id, timeout_s=10)
        run = load_run(result.run_dir)
        assert run.complete and list(run.total()["seq"]) == list(range(len(run.total())))
        assert _wait(lambda: _by_host(fleet)["good"].state == DeviceState.IDLE)
    finally:
        t0 = time.monotonic()
        fleet.close()
        assert time.monotonic() - t0 < 8  # closing does not wait for the dead host's connect


def test_close_leaves_the_job_running_and_its_run_resumable(two_hosts, tmp_path):
    agent, _hang, lab, factory_for = two_hosts
    fleet = Fleet(lab, tmp_path, factory_for=factory_for).start()
    assert _wait(lambda: _by_host(fleet)["good"].state == DeviceState.IDLE)
    job_id = fleet.start_job("good", None, runner.JobSpec(interval_ms=20, duration_s=30))
    time.sleep(0.3)
    fleet.close()
    assert agent.jobs[job_id].state == "running"
    run_dir = next(tmp_path.rglob("run.json")).parent
    run = load_run(run_dir)
    assert not run.complete and run.meta["job_id"] == job_id and len(run.total()) > 3
    assert any(e["kind"] == "detached" for e in run.events)


def test_marks_and_stop_reach_the_device(two_hosts, tmp_path):
    _agent, _hang, lab, factory_for = two_hosts
    fleet = Fleet(lab, tmp_path, factory_for=factory_for).start()
    try:
        assert _wait(lambda: _by_host(fleet)["good"].state == DeviceState.IDLE)
        job_id = fleet.start_job("good", None, runner.JobSpec(interval_ms=20, duration_s=30))
        assert fleet.mark("good", job_id, "warm") == 0
        fleet.stop_job("good", job_id)
        result = fleet.wait_job(job_id, timeout_s=10)
        assert result.summary["state"] == "stopped"
    finally:
        fleet.close()


def test_the_default_lab_runs_local_and_both_simulated_devices_on_the_real_agent(tmp_path, monkeypatch):
    home = tmp_path / "agent"
    monkeypatch.setenv("WATTLAB_AGENT_HOME", str(home))
    fleet = Fleet(load_lab(), tmp_path / "logs").start()
    try:
        assert _wait(lambda: all(v.state == DeviceState.IDLE for v in fleet.snapshot()), 20)
        views = _by_host(fleet)
        assert views["orin-sim"].device_id == "sim:jetson-agx-orin-64gb"
        assert views["h100-sim"].category == "datacenter"
        job_id = fleet.start_job("h100-sim", None, runner.JobSpec(interval_ms=50, duration_s=1.0))
        result = fleet.wait_job(job_id, timeout_s=20)
        assert result.summary["complete"] and result.summary["mean_w"] > 50  # a simulated H100 idles high
        assert result.summary["method"]["pue"] == 1.5  # datacenter default
    finally:
        fleet.close()
        stop_local_daemon(home)


def test_a_time_only_job_shows_no_energy_or_gwp_rather_than_zero(tmp_path, monkeypatch):
    home = tmp_path / "agent"
    monkeypatch.setenv("WATTLAB_AGENT_HOME", str(home))
    lab = Lab(None, {"local": Host("local", "local", device="none", grid="FR-ademe")})
    fleet = Fleet(lab, tmp_path / "logs").start()
    try:
        assert _wait(lambda: all(v.state == DeviceState.IDLE for v in fleet.snapshot()), 20)
        job_id = fleet.start_job("local", "none", runner.JobSpec(device="none", interval_ms=50, duration_s=5))
        assert _wait(lambda: (_by_host(fleet)["local"].job_elapsed_s or 0) > 0.5, 10)
        view = _by_host(fleet)["local"]
        assert view.job_id == job_id
        assert view.energy_j is None and view.gwp is None  # nothing measured is not 0 J / 0 mg
        fleet.stop_job("local", job_id)
        fleet.wait_job(job_id, timeout_s=20)
    finally:
        fleet.close()
        stop_local_daemon(home)


def test_a_new_fleet_picks_up_the_run_a_closed_one_left_and_completes_it(two_hosts, tmp_path):
    agent, _hang, lab, factory_for = two_hosts
    fleet = Fleet(lab, tmp_path, factory_for=factory_for).start()
    assert _wait(lambda: _by_host(fleet)["good"].state == DeviceState.IDLE)
    job_id = fleet.start_job("good", None, runner.JobSpec(interval_ms=10, duration_s=1.5))
    time.sleep(0.3)
    fleet.close()  # the laptop closes; the job goes on
    time.sleep(0.3)

    again = Fleet(lab, tmp_path, factory_for=factory_for).start()
    try:
        assert _wait(lambda: _by_host(again)["good"].job_id == job_id)
        assert _by_host(again)["good"].energy_j > 5  # includes what was stored before the close
        result = again.wait_job(job_id, timeout_s=10)
        run = load_run(result.run_dir)
        spooled = [r[0] for r in agent.jobs[job_id].spool["samples"]]
        assert run.complete and list(run.total()["seq"]) == spooled == list(range(len(spooled)))
    finally:
        again.close()


def test_a_host_going_silent_shows_as_stalled_without_any_other_event(tmp_path):
    agent = FakeAgent()
    quiet = LinkTimeouts(connect_timeout_s=5, request_timeout_s=5, stall_after_s=0.3, lost_after_s=60,
                         reconnect_on_stall_s=600)
    lab = Lab(None, {"good": Host("good", "sim:jetson-agx-orin-64gb", timeouts=quiet)})
    fleet = Fleet(lab, tmp_path, factory_for=lambda host: agent.transport, tick_s=0.1).start()
    try:
        assert _wait(lambda: _by_host(fleet)["good"].state == DeviceState.IDLE)
        agent.freeze()
        seen = fleet.version
        assert _wait(lambda: fleet.version > seen and _by_host(fleet)["good"].state == DeviceState.STALLED, 3)
        assert _by_host(fleet)["good"].stalled_for_s >= 0.3
    finally:
        fleet.close()
        agent.close()


class _SlowProbeAgent(FakeAgent):
    """Connects at once but answers `probe` only once released (a slow NVML init, a busy board)."""

    def __init__(self) -> None:
        super().__init__()
        self.probe_release = threading.Event()

    def handle(self, conn, msg):  # type: ignore[no-untyped-def]
        if msg["op"] == "probe":
            self.probe_release.wait(10)
        return super().handle(conn, msg)


def test_a_host_connected_but_not_yet_probed_shows_connecting_with_a_message_never_idle(tmp_path):
    agent = _SlowProbeAgent()
    lab = Lab(None, {"good": Host("good", "local", device="sim:jetson-agx-orin-64gb", timeouts=FAST)})
    fleet = Fleet(lab, tmp_path, factory_for=lambda host: agent.transport).start()
    try:
        assert _wait(lambda: fleet.link("good").state().kind == "connected")
        time.sleep(0.2)
        view = _by_host(fleet)["good"]
        assert view.state == DeviceState.CONNECTING and "asking the agent" in (view.message or "")
        agent.probe_release.set()
        assert _wait(lambda: _by_host(fleet)["good"].state == DeviceState.IDLE)
        assert _by_host(fleet)["good"].message is None
    finally:
        agent.probe_release.set()
        fleet.close()
        agent.close()


def test_an_idle_sim_device_shows_moving_power_and_rails_without_any_job(tmp_path, monkeypatch):
    home = tmp_path / "agent"
    monkeypatch.setenv("WATTLAB_AGENT_HOME", str(home))
    lab = Lab(None, {"orin": Host("orin", "sim:jetson-agx-orin-64gb", timeouts=FAST)})
    fleet = Fleet(lab, tmp_path / "logs").start()
    try:
        assert _wait(lambda: _by_host(fleet)["orin"].power_w is not None, 20)
        seen = set()
        assert _wait(lambda: seen.add(_by_host(fleet)["orin"].power_w) or len(seen) >= 3, 5)
        view = _by_host(fleet)["orin"]
        assert view.state == DeviceState.IDLE and view.job_id is None and view.gwp is None
        assert all(5 < w < 40 for w in seen)  # an idle Orin draws a few watts, not its 60 W TDP
        assert len(view.history) >= 3 and view.rails_w and len(view.rail_history) >= 3
        assert set(view.rail_history[-1][1]) == set(view.rails_w)
        assert not list((tmp_path / "logs").rglob("run.json"))  # monitoring records nothing
    finally:
        fleet.close()
        stop_local_daemon(home)


def test_a_job_started_elsewhere_on_an_idle_device_moves_its_power_and_is_named(tmp_path, monkeypatch):
    home = tmp_path / "agent"
    monkeypatch.setenv("WATTLAB_AGENT_HOME", str(home))
    host = Host("orin", "sim:jetson-agx-orin-64gb", timeouts=FAST)
    fleet = Fleet(Lab(None, {"orin": host}), tmp_path / "logs").start()
    cli = Link("cli", runner.transport_factory(host), timeouts=FAST)  # another console, or `measure`
    try:
        assert _wait(lambda: _by_host(fleet)["orin"].power_w is not None, 20)
        cli.connect()
        job = cli.call("start", {"device": "sim:jetson-agx-orin-64gb", "interval_ms": 50, "duration_s": 4,
                                 "sampler_opts": {"load_w": 50.0, "idle_w": 45.0}})["job"]
        assert _wait(lambda: job in (_by_host(fleet)["orin"].message or ""), 5)
        assert _wait(lambda: (_by_host(fleet)["orin"].power_w or 0) > 40, 5)  # its samples, not the monitor's
        view = _by_host(fleet)["orin"]
        assert view.job_id is None and view.rails_w
        assert _wait(lambda: (_by_host(fleet)["orin"].power_w or 99) < 40, 10)  # it ended: monitor again
        assert _by_host(fleet)["orin"].message is None
    finally:
        cli.close()
        fleet.close()
        stop_local_daemon(home)
