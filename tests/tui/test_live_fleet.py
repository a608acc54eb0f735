"""The adapter between the screens' dict specs and console.fleet's JobSpec, and the FleetLike contract."""

from __future__ import annotations

from typing import Any

from console.runner import JobSpec
from console.tui.fleet_protocol import FleetLike
from console.tui.live_fleet import LabFleet
from console.tui.scenarios import command_spec, load_scenarios, scenario_spec
from tests.tui.fake_fleet import FakeFleet


class _RecordingFleet:
    version = 7

    def __init__(self) -> None:
        self.started: list[tuple[str, str, JobSpec, str | None]] = []

    def snapshot(self) -> list[Any]:
        return []

    def start_job(self, host: str, device: str, spec: JobSpec, campaign: str | None = None) -> str:
        self.started.append((host, device, spec, campaign))
        return "job-1"


def test_fake_and_real_adapters_both_satisfy_fleetlike() -> None:
    assert isinstance(FakeFleet(), FleetLike)
    assert isinstance(LabFleet(_RecordingFleet(), "default"), FleetLike)


def test_a_scenario_spec_becomes_a_jobspec_with_its_workload_and_meta() -> None:
    inner = _RecordingFleet()
    scenario = load_scenarios()[0]
    assert LabFleet(inner, "lab").start_job("orin", "sim:x", scenario_spec(scenario)) == "job-1"
    host, device, spec, campaign = inner.started[0]
    assert (host, device, campaign) == ("orin", "sim:x", None)
    assert spec.workload == scenario.workload and spec.meta == {"scenario": scenario.name}
    assert spec.interval_ms == 100


def test_a_campaign_named_in_meta_is_passed_to_the_fleet_and_unknown_keys_are_dropped() -> None:
    inner = _RecordingFleet()
    spec = dict(command_spec("python3 run.py"), meta={"campaign": "bert"}, colour="blue")
    LabFleet(inner, "lab").start_job("h", "d", spec)
    _, _, job, campaign = inner.started[0]
    assert campaign == "bert"
    assert job.workload == {"kind": "argv", "argv": ["python3", "run.py"]}
