"""SVG snapshots of the fleet, device and compare screens at 80x24 and 160x48.

Frozen: the fake fleet's clock (header time, plot axes) and its power (deterministic ripple); the
console shows no hostname or version. Update with `pytest tests/tui --snapshot-update` after
looking at the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from console.tui.app import WattlabApp
from tests.tui.conftest import H100, ORIN, build_app
from tests.tui.fake_fleet import FakeClock, FakeFleet

SIZES = [(80, 24), (160, 48)]


def _busy_fleet() -> FakeFleet:
    """Orin and H100 running a scenario for 25 s, local idle: numbers, sparklines and plots all filled."""
    fleet = FakeFleet(clock=FakeClock())
    fleet.advance(20.0)
    fleet.start_job("sim-orin", "sim:jetson-agx-orin-64gb", {"workload": {"kind": "loadgen"}})
    fleet.start_job("sim-h100", "sim:h100-sxm5-80gb", {"workload": {"kind": "loadgen"}})
    fleet.advance(25.0)
    return fleet


def _app(tmp_path: Path) -> WattlabApp:
    return build_app(_busy_fleet(), tmp_path / "logs")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_fleet_screen_snapshot(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(_app(tmp_path), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_device_screen_snapshot(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    app = _app(tmp_path)

    async def open_orin(pilot: Any) -> None:
        app.open_device(ORIN)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=open_orin)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_compare_screen_snapshot(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    app = _app(tmp_path)

    async def open_compare(pilot: Any) -> None:
        app.open_compare([ORIN, H100])
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=open_compare)
