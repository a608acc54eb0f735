"""Compare screen: live devices and stored runs side by side, Pareto front, normalized profiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from textual.widgets import DataTable

from console.store import RunWriter
from console.tui.app import WattlabApp
from console.tui.compare_data import entries_from_runs
from console.tui.screens.compare import CompareScreen
from console.tui.screens.fleet import FleetScreen
from console.tui.widgets.powerplot import PowerPlot
from console.tui.widgets.scatter import ScatterPlot
from tests.tui.conftest import H100, ORIN, build_app, tick
from tests.tui.fake_fleet import FakeFleet


def write_run(logs: Path, host: str, name: str, scenario: str, repeat: int, *, p50: float, gwp_g: float,
              watts: float, queries: int = 100) -> None:
    """A finished stored run with a flat power trace and the summary fields the screen reads."""
    w = RunWriter(logs, "camp", f"{host}-{scenario}-{repeat}", host=host, device="sim")
    # As console.runner records it: the start args' meta (with the scenario name) nested under "meta".
    w.write_meta({"host": host, "device_name": name, "hardware_id": None, "meta": {"scenario": scenario}})
    w.add_samples([[i, i * 0.1, watts + repeat, {}, None] for i in range(50)])
    w.finish({"queries": queries, "latency_ms": {"p50": p50, "p99": p50 * 2},
              "gwp_g": {"total": gwp_g, "low": gwp_g * 0.8, "high": gwp_g * 1.2},
              "energy_per_query_j": watts * 5 / queries})


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    for r in range(2):
        write_run(root, "orin", "Jetson AGX Orin", "singlestream-64", r, p50=12.0, gwp_g=0.002, watts=30.0)
        write_run(root, "h100", "H100 SXM5", "singlestream-64", r, p50=2.5, gwp_g=0.004, watts=400.0)
    write_run(root, "orin", "Jetson AGX Orin", "offline-512", 0, p50=50.0, gwp_g=0.01, watts=35.0)
    return root


def test_stored_runs_are_grouped_by_device_and_scenario_and_averaged(logs: Path) -> None:
    entries = entries_from_runs(logs)
    assert [(e.label, e.scenario, e.runs) for e in entries] == [
        ("h100/H100 SXM5", "singlestream-64", 2),
        ("orin/Jetson AGX Orin", "offline-512", 1),
        ("orin/Jetson AGX Orin", "singlestream-64", 2),
    ]
    orin = entries[2]
    assert orin.gwp_per_query_mg == pytest.approx(0.02)
    assert orin.gwp_low_mg == pytest.approx(0.016) and orin.gwp_high_mg == pytest.approx(0.024)
    assert len(orin.traces) == 2


async def test_live_group_compares_the_chosen_devices_with_their_pareto_front(
    fleet: FakeFleet, tmp_path: Path
) -> None:
    app = build_app(fleet, tmp_path / "empty")
    for host, dev in (("sim-orin", "sim:jetson-agx-orin-64gb"), ("sim-h100", "sim:h100-sxm5-80gb")):
        fleet.start_job(host, dev, {"workload": {"kind": "loadgen"}})
    async with app.run_test(size=(160, 48)) as pilot:
        await tick(app, pilot, fleet, 10.0)
        app.open_compare([ORIN, H100])
        await pilot.pause()
        await app.workers.wait_for_complete()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert [e.label.split("/")[0] for e in screen.entries] == ["sim-orin", "sim-h100"]
        table = screen.query_one(DataTable)
        # The Orin is slower but cleaner per query, the H100 faster: both are on the front.
        assert [str(table.get_row_at(i)[-1]) for i in range(2)] == ["◆", "◆"]
        points = screen.query_one(ScatterPlot)._points
        assert {p.tag for p in points} == {"A", "B"} and all(p.front for p in points)
        assert [s.name for s in screen.query_one(PowerPlot).series] == ["A", "B"]


async def test_n_cycles_through_stored_scenarios(fleet: FakeFleet, logs: Path) -> None:
    app = build_app(fleet, logs)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("c")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert screen.scenarios() == ["live", "offline-512", "singlestream-64"]
        await pilot.press("n", "n")
        assert screen.scenario == "singlestream-64"
        assert [e.label for e in screen.entries] == ["h100/H100 SXM5", "orin/Jetson AGX Orin"]
        profiles = screen.query_one(PowerPlot).series
        # Two repeats at different power: a mean line plus a ±std band for each device.
        assert [s.name for s in profiles] == ["A", "A+σ", "A-σ", "B", "B+σ", "B-σ"]
        assert float(np.nanmean(profiles[0].y)) == pytest.approx(400.5)
        await pilot.press("n")
        assert screen.scenario == "live"


async def test_capital_r_reloads_stored_runs(app: WattlabApp, tmp_path: Path) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("c")
        await app.workers.wait_for_complete()
        screen = app.screen
        assert isinstance(screen, CompareScreen) and screen.scenarios() == ["live"]
        write_run(app.logs_dir, "orin", "Orin", "gaps", 0, p50=1.0, gwp_g=0.001, watts=20.0)
        await pilot.press("R")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.scenarios() == ["live", "gaps"]


async def test_escape_leaves_compare(app: WattlabApp) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("c")
        await app.workers.wait_for_complete()
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)
