"""The console on the real fleet and the built-in sim lab: the same agent, protocol and store as hardware.

Slow (starts an agent daemon in an isolated WATTLAB_AGENT_HOME, stopped at the end).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.state import DeviceState, DeviceView
from console.tui.app import WattlabApp, make_app

pytestmark = pytest.mark.slow


@pytest.fixture
def agent_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "agent"
    monkeypatch.setenv("WATTLAB_AGENT_HOME", str(home))
    yield home
    env = {**os.environ, "WATTLAB_AGENT_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "agents", "stop"], env=env, capture_output=True, timeout=30,
                   check=False)


async def _until(pilot, app: WattlabApp, cond, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, [(v.key, v.state, v.message) for v in app.views]
        await pilot.pause(0.2)  # real devices: wait on their data, polling the console's own state


async def test_sample_all_on_the_sim_lab_shows_power_and_growing_gwp(
    agent_home: Path, tmp_path: Path
) -> None:
    app = make_app(logs=tmp_path / "logs")
    try:
        async with app.run_test(size=(160, 30)) as pilot:
            def sims() -> list[DeviceView]:
                return [v for v in app.views if v.device_id.startswith("sim:")]

            def connected() -> bool:
                return len(sims()) == 2 and all(v.state is DeviceState.IDLE for v in sims())

            await _until(pilot, app, connected)
            await pilot.press("a")
            await _until(pilot, app, lambda: all(v.gwp and v.gwp.total_g > 0 and v.power_w for v in sims()))
            first = {v.key: v.gwp.total_g for v in sims()}  # type: ignore[union-attr]
            await _until(pilot, app, lambda: all(v.gwp.total_g > first[v.key] for v in sims()))  # type: ignore[union-attr]
            assert all(v.state is DeviceState.SAMPLING for v in sims())
    finally:
        app.fleet.close()


async def test_sample_makes_every_device_sample_and_gwp_grow_without_a_key(
    agent_home: Path, tmp_path: Path
) -> None:
    app = make_app(logs=tmp_path / "logs", sample=True)
    try:
        async with app.run_test(size=(160, 30)) as pilot:
            def orin() -> DeviceView | None:
                return next((v for v in app.views if v.device_id == "sim:jetson-agx-orin-64gb"), None)

            assert all(v.state is not DeviceState.IDLE or v.job_id for v in app.views)  # never idle unprobed
            def gwp_g() -> float:
                view = orin()
                return view.gwp.total_g if view is not None and view.gwp is not None else 0.0

            await _until(pilot, app, lambda: gwp_g() > 0)
            first = gwp_g()
            await _until(pilot, app, lambda: gwp_g() > first)
            assert orin().state is DeviceState.SAMPLING and orin().power_w  # type: ignore[union-attr]
            assert sum(1 for v in app.views if v.job_id) == len(app.views)
    finally:
        app.fleet.close()
