"""Device screen: live plot controls and job controls, each key, and no freeze on a hung host."""

from __future__ import annotations

import time

import pytest
from textual.message import Message
from textual.widgets import Input, OptionList

from console.tui.app import WattlabApp
from console.tui.screens.confirm import ConfirmScreen
from console.tui.screens.device import DeviceScreen
from console.tui.screens.fleet import FleetScreen
from console.tui.screens.prompt import PromptScreen
from console.tui.screens.start_job import StartJobScreen
from console.tui.widgets.powerplot import PowerPlot
from tests.tui.conftest import ORIN, build_app, tick
from tests.tui.fake_fleet import FakeFleet

ORIN_HOST, ORIN_DEV = ORIN.split("/", 1)


async def _open_orin(app: WattlabApp, pilot) -> DeviceScreen:  # type: ignore[no-untyped-def]
    await pilot.pause()
    app.open_device(ORIN)
    await pilot.pause()
    assert isinstance(app.screen, DeviceScreen)
    return app.screen


def _requests(messages: list[Message]) -> list[WattlabApp.RequestDone]:
    return [m for m in messages if isinstance(m, WattlabApp.RequestDone)]


async def test_the_plot_shows_total_and_rails_and_r_toggles_rails(app: WattlabApp, fleet: FakeFleet) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _open_orin(app, pilot)
        await tick(app, pilot, fleet)
        plot = screen.query_one(PowerPlot)
        assert plot.series[0].name == "total"
        assert len(plot.series) == 4  # total + 3 Orin rails
        await pilot.press("r")
        assert [s.name for s in plot.series] == ["total"]
        await pilot.press("r")
        assert len(plot.series) == 4


async def test_window_keys_set_30_s_5_min_and_whole_job(app: WattlabApp, fleet: FakeFleet) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _open_orin(app, pilot)
        plot = screen.query_one(PowerPlot)
        now = fleet.clock()
        await pilot.press("2")
        assert plot._x_range == (now - 300.0, now)
        await pilot.press("1")
        assert plot._x_range == (now - 30.0, now)
        await pilot.press("3")  # no job: everything kept
        assert plot._x_range[0] == app.book.get(ORIN).total()[0][0]
        await pilot.press("w")  # wraps to 30 s
        assert screen.window == 0


async def test_whole_job_window_starts_at_the_job_start(app: WattlabApp, fleet: FakeFleet) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _open_orin(app, pilot)
        start = fleet.clock()
        fleet.start_job(ORIN_HOST, ORIN_DEV, {"workload": {"kind": "loadgen"}})
        await tick(app, pilot, fleet, 3.0)
        await pilot.press("3")
        x0, _ = screen.query_one(PowerPlot)._x_range
        assert abs(x0 - start) < 0.2


async def test_space_pauses_the_plot_and_arrows_scroll_back_in_time(
    app: WattlabApp, fleet: FakeFleet
) -> None:
    fleet.advance(120.0)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _open_orin(app, pilot)
        plot = screen.query_one(PowerPlot)
        paused_at = fleet.clock()
        await pilot.press("space")
        await tick(app, pilot, fleet, 5.0)
        assert plot._x_range[1] == paused_at  # time moves, the paused window does not
        await pilot.press("left")
        assert plot._x_range[1] == pytest.approx(paused_at - 7.5)  # a quarter of 30 s
        await pilot.press("right")
        assert plot._x_range[1] == pytest.approx(paused_at)
        await pilot.press("right")  # past now: back to live
        assert screen.paused_at is None and plot._x_range[1] == fleet.clock()
        await pilot.press("left", "end")
        assert screen.paused_at is None and plot._x_range[1] == fleet.clock()


async def test_the_plot_is_not_redrawn_when_nothing_changed(app: WattlabApp, fleet: FakeFleet) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _open_orin(app, pilot)
        plot = screen.query_one(PowerPlot)
        renders = plot.renders
        app.poll()  # fleet version unchanged: no snapshot, no redraw
        await pilot.pause()
        assert plot.renders == renders
        await tick(app, pilot, fleet)
        assert plot.renders == renders + 1


async def test_s_starts_sampling_through_a_worker(fleet: FakeFleet, tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = build_app(fleet, tmp_path)
    messages: list[Message] = []
    async with app.run_test(size=(120, 36), message_hook=messages.append) as pilot:
        await _open_orin(app, pilot)
        await pilot.press("s")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert fleet.calls == [("start", ORIN_HOST, ORIN_DEV, "job-0001")]
        assert fleet.devices[1].job_spec["workload"] is None  # type: ignore[index]
        assert [m.ok for m in _requests(messages)] == [True]


async def test_j_starts_a_named_scenario_from_scenarios_toml(app: WattlabApp, fleet: FakeFleet) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        await _open_orin(app, pilot)
        await pilot.press("j")
        assert isinstance(app.screen, StartJobScreen)
        assert app.screen.query_one(OptionList).highlighted == 0  # singlestream-64 first
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        spec = fleet.devices[1].job_spec
        assert spec is not None and spec["workload"]["scenario"] == "singlestream"
        assert spec["meta"]["scenario"] == "singlestream-64"
        assert app.job_scenarios == {"job-0001": "singlestream-64"}  # compare labels the live job


async def test_j_runs_a_typed_command_as_argv_without_a_shell(app: WattlabApp, fleet: FakeFleet) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        await _open_orin(app, pilot)
        await pilot.press("j", "tab")
        assert app.screen.query_one("#command", Input).has_focus
        app.screen.query_one("#command", Input).value = "python3 infer.py --prompt 'a b'"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        spec = fleet.devices[1].job_spec
        assert spec is not None
        assert spec["workload"] == {"kind": "argv", "argv": ["python3", "infer.py", "--prompt", "a b"]}


async def test_escape_in_the_start_dialog_starts_nothing(app: WattlabApp, fleet: FakeFleet) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        await _open_orin(app, pilot)
        await pilot.press("j", "escape")
        assert isinstance(app.screen, DeviceScreen)
        await app.workers.wait_for_complete()
        assert fleet.calls == []


async def test_x_stops_an_adhoc_job_without_asking(app: WattlabApp, fleet: FakeFleet) -> None:
    job = fleet.start_job(ORIN_HOST, ORIN_DEV, {"workload": {"kind": "loadgen"}})
    async with app.run_test(size=(120, 36)) as pilot:
        await _open_orin(app, pilot)
        await pilot.press("x")
        await app.workers.wait_for_complete()
        assert ("stop", ORIN_HOST, job) in fleet.calls


async def test_x_asks_before_stopping_a_campaign_job(app: WattlabApp, fleet: FakeFleet) -> None:
    spec = {"workload": {"kind": "loadgen"}, "meta": {"campaign": "bert"}}
    job = fleet.start_job(ORIN_HOST, ORIN_DEV, spec)
    async with app.run_test(size=(120, 36)) as pilot:
        await _open_orin(app, pilot)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await app.workers.wait_for_complete()
        assert not any(c[0] == "stop" for c in fleet.calls)
        await pilot.press("x", "y")
        await app.workers.wait_for_complete()
        assert ("stop", ORIN_HOST, job) in fleet.calls


async def test_m_marks_an_event_with_the_typed_label(app: WattlabApp, fleet: FakeFleet) -> None:
    job = fleet.start_job(ORIN_HOST, ORIN_DEV, {"workload": {"kind": "loadgen"}})
    async with app.run_test(size=(120, 36)) as pilot:
        await _open_orin(app, pilot)
        await pilot.press("m")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"warm", "enter")
        await app.workers.wait_for_complete()
        assert ("mark", ORIN_HOST, job, "warm") in fleet.calls


async def test_stop_and_mark_without_a_job_only_warn(app: WattlabApp, fleet: FakeFleet) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        await _open_orin(app, pilot)
        await pilot.press("x", "m")
        assert isinstance(app.screen, DeviceScreen)
        assert fleet.calls == []


async def test_escape_goes_back_to_the_fleet(app: WattlabApp) -> None:
    async with app.run_test(size=(120, 36)) as pilot:
        await _open_orin(app, pilot)
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def test_a_hung_host_never_blocks_input(app: WattlabApp, fleet: FakeFleet) -> None:
    job = fleet.start_job(ORIN_HOST, ORIN_DEV, {"workload": {"kind": "loadgen"}})
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _open_orin(app, pilot)
        fleet.hang(ORIN_HOST)
        await tick(app, pilot, fleet, 3.0)
        assert "stalled" in str(screen.query_one("#device-title").render())
        await pilot.press("x")  # the stop request blocks in its worker thread
        started = time.perf_counter()
        await pilot.press("r")
        assert not screen.show_rails  # the key was handled while the request hangs
        assert time.perf_counter() - started < 1.0
        assert ("stop", ORIN_HOST, job) not in fleet.calls
        fleet.release(ORIN_HOST)
        await app.workers.wait_for_complete()
        assert ("stop", ORIN_HOST, job) in fleet.calls
