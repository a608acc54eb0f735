"""`?` lists every key of the current screen from its BINDINGS; `--sample` starts sampling on each
device once, as soon as it is connected and idle."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from textual.binding import Binding

from console.state import DeviceState
from console.tui.app import WattlabApp, make_app
from console.tui.screens.device import DeviceScreen
from console.tui.screens.fleet import FleetScreen
from console.tui.screens.help import HelpScreen, key_rows
from tests.tui.conftest import H100, LOCAL, ORIN, tick
from tests.tui.fake_fleet import FakeFleet


def _help_text(app: WattlabApp) -> str:
    assert isinstance(app.screen, HelpScreen)
    console = Console(width=100, file=io.StringIO(), record=True)
    console.print(app.screen.keys_table())
    return console.export_text()


def _descriptions(screen_cls: type) -> set[str]:
    return {b.description for b in Binding.make_bindings(screen_cls.BINDINGS)}


async def test_question_mark_lists_every_fleet_key_hidden_ones_too_and_closes_with_escape(
    app: WattlabApp,
) -> None:
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        text = _help_text(app)
        for what in _descriptions(FleetScreen) | {"Quit", "Keys"}:
            assert what in text, what
        rows = [line.split(maxsplit=1) for line in text.rstrip().splitlines()]
        rows = [[cell.strip() for cell in row] for row in rows]
        assert ["S", "Reverse"] in rows and ["esc", "Clear"] in rows  # in no footer, listed here
        assert ["a", "Sample all"] in rows and ["?", "Keys"] in rows
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def test_help_on_the_device_screen_lists_its_own_keys_not_the_fleets(app: WattlabApp) -> None:
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        app.open_device(ORIN)
        await pilot.pause()
        await pilot.press("question_mark")
        text = _help_text(app)
        assert {"Rails", "Back in time", "Forward", "Live", "Window"} <= _descriptions(DeviceScreen)
        for what in _descriptions(DeviceScreen):
            assert what in text, what
        assert "Sample all" not in text
        await pilot.press("question_mark")  # ? toggles it closed again
        assert isinstance(app.screen, DeviceScreen)


def test_keys_sharing_an_action_share_one_row() -> None:
    rows = key_rows([Binding("n,escape", "answer(False)", "No"), ("y", "answer(True)", "Yes")],
                    lambda b: {"escape": "esc"}.get(b.key, b.key))
    assert rows == [("n esc", "No"), ("y", "Yes")]


async def test_sample_starts_each_idle_device_once_and_a_connecting_one_when_it_is_ready(
    fleet: FakeFleet, tmp_path: Path
) -> None:
    h100 = next(d for d in fleet.devices if d.key == H100)
    h100.state = DeviceState.CONNECTING  # its probe has not answered yet
    app = make_app(fleet=fleet, logs=tmp_path / "logs", clock=fleet.clock, poll_hz=0.2, sample=True)
    async with app.run_test(size=(160, 30)) as pilot:
        await app.workers.wait_for_complete()
        await tick(app, pilot, fleet)
        started = sorted(c[1] for c in fleet.calls if c[0] == "start")
        assert started == ["local", "sim-orin"]
        assert app.view(ORIN).state is DeviceState.SAMPLING  # type: ignore[union-attr]

        h100.state = DeviceState.IDLE
        await tick(app, pilot, fleet)
        await app.workers.wait_for_complete()
        await tick(app, pilot, fleet, 5.0)
        gwp = app.view(H100).gwp  # type: ignore[union-attr]
        assert gwp is not None and gwp.total_g > 0

        orin_job = app.view(ORIN).job_id  # type: ignore[union-attr]
        fleet.stop_job("sim-orin", orin_job)  # type: ignore[arg-type]
        await tick(app, pilot, fleet)
        await app.workers.wait_for_complete()
        await tick(app, pilot, fleet)
        assert sorted(c[1] for c in fleet.calls if c[0] == "start") == ["local", "sim-h100", "sim-orin"]
        assert app.view(ORIN).job_id is None and app.view(LOCAL).job_id is not None  # type: ignore[union-attr]


async def test_without_sample_nothing_starts_by_itself(app: WattlabApp, fleet: FakeFleet) -> None:
    async with app.run_test(size=(160, 30)) as pilot:
        await tick(app, pilot, fleet)
        await app.workers.wait_for_complete()
        assert not [c for c in fleet.calls if c[0] == "start"]
