"""The fault schedule (bench/fault_schedule.py): a campaign of 3 real SSH hosts x 2 cells at 50 Hz runs
through a partition, a stall, a lossy link with a corrupting byte drop, and resets; every cell is done
and every sample is stored exactly once.

One run of the schedule (~15-30 s) is shared by the tests below; its numbers are printed (pytest -s)
and recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from bench.fault_schedule import PLAN, ScheduleResult, run_schedule
from tests.integration.faults import IP

pytestmark = [pytest.mark.sshd, pytest.mark.netns, pytest.mark.slow]

CELLS = 2
CELL_S = 6.0
INTERVAL_MS = 20  # 50 Hz


@pytest.fixture(scope="module")
def schedule(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScheduleResult]:
    result = run_schedule(tmp_path_factory.mktemp("faults"), cells=CELLS, cell_s=CELL_S,
                          interval_ms=INTERVAL_MS)
    print("\nfault schedule:\n  " + "\n  ".join(result.lines()))
    yield result


def test_every_planned_fault_was_injected_mid_cell(schedule: ScheduleResult) -> None:
    planned = {(host, k, plan[k % len(plan)].__name__) for host, plan in PLAN.items() for k in range(CELLS)}
    assert {(f.host, f.cell, f.kind) for f in schedule.faults} == planned
    assert schedule.relay_stats["dropped_chunks"] >= 1 and schedule.relay_stats["resets"] >= 1
    assert schedule.relay_stats["stalls"] >= 1, "the lossy link never stalled a chunk"


def test_every_cell_completes_despite_the_faults(schedule: ScheduleResult) -> None:
    assert not schedule.errors
    assert len(schedule.cell_states) == len(PLAN) * CELLS
    assert set(schedule.cell_states.values()) == {"done"}, schedule.cell_states
    assert [(c.host, c.cell) for c in schedule.cells] == sorted((h, k) for h in PLAN for k in range(CELLS))
    for c in schedule.cells:
        assert c.complete and c.state == "done", c


def test_every_sample_is_stored_exactly_once(schedule: ScheduleResult) -> None:
    expected = round(CELL_S * 1000 / INTERVAL_MS) + 1  # samples at t = 0, 20 ms, ..., 6 s
    for c in schedule.cells:
        # a starved agent skips (and counts) a deadline rather than read late: that is not a lost sample
        assert c.device_samples + c.skipped_ticks == expected, c
        assert c.contiguous, f"{c.host} cell {c.cell}: stored seqs are not 0..{c.device_samples - 1}"
        assert c.duplicates == 0 and c.lost == 0, c
        assert c.matches_device, f"{c.host} cell {c.cell}: a stored sample differs from the device spool"
    assert schedule.samples_lost == 0


def test_each_fault_forced_a_reconnect_and_the_gap_came_back_by_backfill(schedule: ScheduleResult) -> None:
    for host, plan in PLAN.items():
        assert schedule.reconnects[host] >= min(CELLS, len(plan)), (host, schedule.reconnects)
    for c in schedule.cells:
        assert c.reconnect_events >= 1, f"{c.host} cell {c.cell}: its fault did not cut the link"
    assert schedule.samples_backfilled > 0


def test_redialled_links_leave_no_ssh_session_behind(schedule: ScheduleResult) -> None:
    # each host was redialled twice; once the campaign closed its links no sshd session may remain
    assert schedule.sessions == {host: 0 for host in PLAN}, schedule.sessions


def test_the_schedule_stays_short(schedule: ScheduleResult) -> None:
    assert schedule.elapsed_s < 60, schedule.elapsed_s


def test_the_lab_leaves_no_namespace_veth_or_sshd_behind(schedule: ScheduleResult) -> None:
    netns = subprocess.run([IP, "netns", "list"], capture_output=True, text=True, check=True).stdout
    links = subprocess.run([IP, "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert schedule.made["netns"] and schedule.made["sshd_pids"]
    for name in schedule.made["netns"]:
        assert name not in netns
    for veth in schedule.made["veths"]:
        assert f" {veth}@" not in links and f" {veth}:" not in links
    for pid in schedule.made["sshd_pids"]:
        assert not os.path.exists(f"/proc/{pid}"), f"sshd {pid} still running"
