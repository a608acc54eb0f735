"""Fleet screen (home): one row per device, updated in place; sort, filter, mark, navigate, quit."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import DataTable, Input

from console.tui.app import WattlabApp
from console.tui.screens.compare import CompareScreen
from console.tui.screens.confirm import ConfirmScreen
from console.tui.screens.device import DeviceScreen
from console.tui.screens.fleet import FleetScreen
from console.tui.screens.prompt import PromptScreen
from tests.tui.conftest import H100, LOCAL, ORIN, tick
from tests.tui.fake_fleet import FakeFleet


def _table(app: WattlabApp) -> DataTable[Any]:
    return app.screen.query_one("#fleet", DataTable)


def _keys(app: WattlabApp) -> list[str]:
    table = _table(app)
    return [table.coordinate_to_cell_key((r, 0)).row_key.value for r in range(table.row_count)]  # type: ignore[misc]


def _cell(app: WattlabApp, key: str, column: str) -> str:
    return str(_table(app).get_cell(key, column))


async def test_every_device_of_every_host_has_one_row(app: WattlabApp) -> None:
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen)
        assert sorted(_keys(app)) == sorted([LOCAL, ORIN, H100])
        assert _cell(app, ORIN, "state") == "idle"
        assert _cell(app, ORIN, "power").endswith(" W")


async def test_ticks_update_cells_in_place_without_rebuilding_the_table(
    app: WattlabApp, fleet: FakeFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        table = _table(app)
        monkeypatch.setattr(table, "clear", lambda *a, **k: pytest.fail("table rebuilt on a tick"))
        fleet.start_job("sim-orin", "sim:jetson-agx-orin-64gb", {"workload": {"kind": "loadgen"}})
        await tick(app, pilot, fleet, 10.0)
        first_gwp = _cell(app, ORIN, "gwp")
        await tick(app, pilot, fleet, 10.0)
        assert _cell(app, ORIN, "state") == "running"
        assert _cell(app, ORIN, "gwp") != first_gwp
        assert _cell(app, ORIN, "queries") != "—"


async def test_no_snapshot_is_taken_when_the_fleet_version_did_not_move(app: WattlabApp) -> None:
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        polls = app.polls
        assert app.poll() is False
        assert app.polls == polls


async def test_s_cycles_the_sort_column_and_capital_s_reverses(app: WattlabApp, fleet: FakeFleet) -> None:
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        assert _keys(app) == [LOCAL, H100, ORIN]  # by host
        await pilot.press("s", "s", "s")  # device, state, power
        assert app.screen.sort_key == "power"  # type: ignore[attr-defined]
        assert _keys(app) == [LOCAL, ORIN, H100]  # 8 W, 9 W, 70 W
        await pilot.press("S")
        assert _keys(app) == [H100, ORIN, LOCAL]


async def test_clicking_a_column_header_sorts_by_it(app: WattlabApp) -> None:
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        table = _table(app)
        x = sum(col.get_render_width(table) for col in table.ordered_columns[:4]) + 2  # the power header
        await pilot.click("#fleet", offset=(x, 0))
        await pilot.pause()
        assert app.screen.sort_key == "power"  # type: ignore[attr-defined]


async def test_slash_filters_rows_by_words_and_escape_clears(app: WattlabApp) -> None:
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        await pilot.press("slash")
        assert app.screen.query_one("#filter", Input).has_focus
        await pilot.press(*"orin", "enter")
        assert _keys(app) == [ORIN]
        await pilot.press("escape")
        assert len(_keys(app)) == 3


async def test_h_cycles_the_host_filter_through_each_host(app: WattlabApp) -> None:
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        await pilot.press("h")
        assert _keys(app) == [LOCAL]
        await pilot.press("h")
        assert _keys(app) == [H100]
        await pilot.press("h", "h")
        assert len(_keys(app)) == 3


async def test_g_filters_by_category(app: WattlabApp) -> None:
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        await pilot.press("g")  # datacenter, desktop, edge
        assert _keys(app) == [H100]
        await pilot.press("g", "g")
        assert _keys(app) == [ORIN]


async def test_enter_opens_the_device_under_the_cursor(app: WattlabApp) -> None:
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        await pilot.press("down", "enter")
        assert isinstance(app.screen, DeviceScreen)
        assert app.screen.key == H100


async def test_a_click_selects_a_row_and_a_second_click_opens_it(app: WattlabApp) -> None:
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        await pilot.click("#fleet", offset=(10, 2))
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen) and app.screen.selected_key() == H100
        await pilot.click("#fleet", offset=(10, 2))
        await pilot.pause()
        assert isinstance(app.screen, DeviceScreen)
        assert app.screen.key == H100


async def test_space_marks_devices_and_c_compares_the_marked_ones(app: WattlabApp) -> None:
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        await pilot.press("down", "space", "space")  # the cursor moves down after a mark
        assert app.screen.marked == {H100, ORIN}  # type: ignore[attr-defined]
        assert _cell(app, H100, "mark") == "●"
        await pilot.press("c")
        assert isinstance(app.screen, CompareScreen)
        assert app.screen.keys == [H100, ORIN]


async def test_c_without_marks_compares_every_shown_device(app: WattlabApp) -> None:
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        await pilot.press("c")
        assert isinstance(app.screen, CompareScreen)
        assert len(app.screen.keys) == 3


async def test_p_asks_for_a_campaign_directory(app: WattlabApp) -> None:
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        await pilot.press("p")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def test_q_quits_at_once_when_no_job_runs(app: WattlabApp) -> None:
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        await pilot.press("q")
        await pilot.pause()
        assert app.return_code == 0
        assert not app.is_running


async def test_q_with_jobs_running_explains_they_keep_running_and_how_to_reattach(
    app: WattlabApp, fleet: FakeFleet
) -> None:
    fleet.start_job("sim-orin", "sim:jetson-agx-orin-64gb", {"workload": {"kind": "loadgen"}})
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        body = str(app.screen.query_one("#confirm-body").render())
        assert "keep running" in body and "job-0001" in body and "wattlab" in body
        await pilot.press("n")
        assert isinstance(app.screen, FleetScreen)
        await pilot.press("q", "y")
        await pilot.pause()
        assert not app.is_running
    assert not fleet.closed  # the app leaves closing (not stopping jobs) to run_app


async def test_a_starts_sampling_on_every_device_without_a_job(app: WattlabApp, fleet: FakeFleet) -> None:
    fleet.start_job("sim-orin", "sim:jetson-agx-orin-64gb", {"workload": {"kind": "loadgen"}})
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        await pilot.press("a")
        await app.workers.wait_for_complete()
        await tick(app, pilot, fleet)
        started = sorted(c[1] for c in fleet.calls if c[0] == "start")
        assert started == ["local", "sim-h100", "sim-orin"]  # orin's own job + two sampling jobs
        assert _cell(app, H100, "state") == "sampling"


async def test_the_status_line_shows_the_selected_devices_last_notice(
    app: WattlabApp, fleet: FakeFleet
) -> None:
    fleet.hang("local")
    async with app.run_test(size=(160, 30)) as pilot:
        await tick(app, pilot, fleet, 2.0)
        status = str(app.screen.query_one("#fleet-status").render())
        assert "local/rapl: no data from host" in status
        assert _cell(app, LOCAL, "state") == "stalled 2s"


async def test_a_narrow_terminal_puts_gwp_before_the_other_numbers(app: WattlabApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FleetScreen) and screen.compact
        await pilot.resize_terminal(160, 30)
        await pilot.pause()
        assert not screen.compact
        assert len(_keys(app)) == 3


async def test_ctrl_q_quits_like_q(app: WattlabApp) -> None:
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert not app.is_running


async def test_escape_in_the_quit_dialog_keeps_the_console_open(app: WattlabApp, fleet: FakeFleet) -> None:
    fleet.start_job("sim-orin", "sim:jetson-agx-orin-64gb", {"workload": {"kind": "loadgen"}})
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        await pilot.press("q", "escape")
        assert isinstance(app.screen, FleetScreen) and app.is_running


async def test_the_quit_dialog_answers_to_the_mouse(app: WattlabApp, fleet: FakeFleet) -> None:
    fleet.start_job("sim-orin", "sim:jetson-agx-orin-64gb", {"workload": {"kind": "loadgen"}})
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        await pilot.press("q")
        await pilot.click("#no")
        assert isinstance(app.screen, FleetScreen)
        await pilot.press("q")
        await pilot.click("#yes")
        await pilot.pause()
        assert not app.is_running
