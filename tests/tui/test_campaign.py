"""Campaign progress: the tolerant manifest reader, its ETA, and the campaign screen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from console.tui.app import WattlabApp
from console.tui.campaign_manifest import latest_campaign_dir, read_manifest
from console.tui.screens.campaign import CampaignScreen
from console.tui.screens.fleet import FleetScreen
from tests.tui.fake_fleet import T0

CELLS = [
    {"id": "c1", "device": "orin", "scenario": "ss", "repeat": 0, "state": "done",
     "started": T0 - 300, "ended": T0 - 200, "run_dir": "camp/r1"},
    {"id": "c2", "device": "h100", "scenario": "ss", "repeat": 0, "state": "done",
     "started": "2025-11-24T15:56:40+00:00", "ended": "2025-11-24T15:58:20Z"},
    {"id": "c3", "device": "orin", "scenario": "off", "repeat": 0, "state": "running", "started": T0 - 40},
    {"id": "c4", "device": "h100", "scenario": "off", "repeat": 0, "state": "queued"},
    {"id": "c5", "device": "h100", "scenario": "off", "repeat": 1, "state": "failed", "error": "exit 3"},
]


def write_manifest(directory: Path, cells: list[dict]) -> Path:  # type: ignore[type-arg]
    directory.mkdir(parents=True, exist_ok=True)
    doc = {"name": "bert", "created": T0 - 400, "cells": cells}
    (directory / "manifest.json").write_text(json.dumps(doc))
    return directory


def test_counts_and_eta_come_from_finished_cell_durations(tmp_path: Path) -> None:
    p = read_manifest(write_manifest(tmp_path / "camp", CELLS), now=T0)
    assert p.name == "bert" and p.problem is None
    assert p.counts == {"done": 2, "running": 1, "queued": 1, "failed": 1}
    # mean done = 100 s; left = 1 queued + 1 running = 200 s, minus 40 s already spent, 1 at a time.
    assert p.eta_s == pytest.approx(160.0)
    assert p.cells[1].duration_s == pytest.approx(100.0)  # ISO-8601 times are read too


def test_a_missing_manifest_is_reported_not_raised(tmp_path: Path) -> None:
    p = read_manifest(tmp_path / "nowhere", now=T0)
    assert "not found" in (p.problem or "") and p.cells == ()


def test_a_half_written_manifest_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"cells": [')
    assert read_manifest(tmp_path, now=T0).problem


def test_unknown_keys_and_odd_cells_are_tolerated(tmp_path: Path) -> None:
    p = read_manifest(write_manifest(tmp_path, [{"state": "SKIPPED", "extra": 1}, "junk"]), now=T0)  # type: ignore[list-item]
    assert [(c.id, c.state, c.device) for c in p.cells] == [("cell-0", "skipped", "?")]
    assert p.eta_s is None


def test_latest_campaign_dir_is_the_newest_manifest(tmp_path: Path) -> None:
    write_manifest(tmp_path / "old", CELLS)
    new = write_manifest(tmp_path / "new", CELLS)
    import os

    os.utime(tmp_path / "old" / "manifest.json", (1, 1))
    assert latest_campaign_dir(tmp_path) == new


async def test_p_opens_the_newest_campaign_with_its_counts_and_cells(app: WattlabApp) -> None:
    write_manifest(app.logs_dir / "bert", CELLS)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        await pilot.press("p", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CampaignScreen)
        summary = str(screen.query_one("#campaign-summary", Static).render())
        # The fixture fleet has run 5 s past T0: the running cell has spent 45 s of its 100 s.
        assert "2 done" in summary and "1 failed" in summary and "ETA 2m35s" in summary
        table = screen.query_one(DataTable)
        assert table.row_count == 5
        assert str(table.get_cell("c5", "run dir / error")) == "exit 3"


async def test_r_rereads_the_manifest_and_updates_cells_in_place(app: WattlabApp) -> None:
    camp = write_manifest(app.logs_dir / "bert", CELLS)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        app.push_screen(CampaignScreen(camp))
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CampaignScreen)
        write_manifest(camp, [dict(c, state="done") if c["id"] == "c4" else c for c in CELLS])
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert str(screen.query_one(DataTable).get_cell("c4", "state")) == "done"
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)
