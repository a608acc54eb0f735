"""The real fleet (console.fleet) behind the FleetLike protocol the screens use.

The screens build agent `start` args as plain dicts (ARCHITECTURE.md `start`); console.fleet takes a
runner.JobSpec and the campaign separately. This adapter converts one into the other, and names the
lab for the header. Everything else is delegated unchanged.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from console.state import DeviceView


class LabFleet:
    """A started console.fleet.Fleet, seen through console.tui.fleet_protocol.FleetLike."""

    def __init__(self, fleet: Any, name: str) -> None:
        self.fleet = fleet
        self.name = name

    @property
    def version(self) -> int:
        return int(self.fleet.version)

    def snapshot(self) -> list[DeviceView]:
        return list(self.fleet.snapshot())

    def start_job(self, host: str, device: str, spec: dict[str, Any]) -> str:
        from console.runner import JobSpec

        known = {f.name for f in dataclasses.fields(JobSpec)}
        args = {k: v for k, v in spec.items() if k in known}
        campaign = (spec.get("meta") or {}).get("campaign")
        return str(self.fleet.start_job(host, device, JobSpec(**args), campaign=campaign))

    def stop_job(self, host: str, job_id: str) -> Any:
        return self.fleet.stop_job(host, job_id)

    def mark(self, host: str, job_id: str, label: str) -> Any:
        return self.fleet.mark(host, job_id, label)

    def close(self) -> None:
        self.fleet.close()


def open_lab_fleet(lab: Path | None, logs: Path) -> LabFleet:
    """Load the lab (default: profiles/lab.toml), connect to every host in the background."""
    from console.fleet import open_fleet
    from console.lab import load_lab

    loaded = load_lab(lab)
    name = loaded.path.stem if loaded.path is not None and lab is not None else "default"
    return LabFleet(open_fleet(loaded, logs), name)
