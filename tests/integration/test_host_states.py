"""Slow and dead hosts as the fleet shows them, against real sshd hosts and real faults.

- wl-away (network namespace): its link goes down mid-job -> "stalled", then the silent channel is
  dropped -> "reconnecting in N s (attempt K)" -> past its lost_after_s "lost" -> heals, reconnects.
- wl-hung (loopback): its SSH session is SIGSTOPped mid-job -> "stalled: no data for N s (last sample
  HH:MM:SS UTC)" -> "lost" while still stalled -> SIGCONT, data flows again on the same channel.
- wl-dark (network namespace, link down from the start): never answers; connecting to it fails within
  its connect_timeout_s and the fleet marks it lost after its lost_after_s.
Every limit comes from the lab file, per host.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from console.errors import HostError
from console.fleet import Fleet, open_fleet
from console.lab import Lab
from console.link import LinkState
from console.runner import JobSpec, open_link
from console.state import DeviceState, DeviceView
from tests.integration.field_lab import FieldLab, with_timeouts
from tests.integration.netns_sshd import sessions_stopped

pytestmark = [pytest.mark.sshd, pytest.mark.netns, pytest.mark.slow]

HOST_KEYS = {  # lab keys, per host: what this file tests is that each host gets its own
    # wl-away drops a silent channel after 1 s and redials; wl-hung rides a stall out on the same channel
    # (connect_timeout_s bounds the first connect, which deploys the agent: generous for a loaded CI box)
    "wl-away": {"connect_timeout_s": 15, "stall_after_s": 0.5, "lost_after_s": 8, "reconnect_on_stall_s": 1},
    "wl-hung": {"connect_timeout_s": 15, "stall_after_s": 0.5, "lost_after_s": 2.5,
                "reconnect_on_stall_s": 30},
    "wl-dark": {"connect_timeout_s": 2, "stall_after_s": 0.5, "lost_after_s": 2},
}
RECONNECT_RE = re.compile(r"^reconnecting in (\d+) s \(attempt (\d+)\)$")
STALLED_RE = re.compile(r"^stalled: no data for (\d+) s \(last sample (\d\d:\d\d:\d\d) UTC\)$")
LOST_RE = re.compile(r"^lost: away for (\d+) s( \(last sample \d\d:\d\d:\d\d UTC\))?$")


@dataclass
class Field:
    lab: FieldLab
    hosts: Lab
    fleet: Fleet


@pytest.fixture(scope="module")
def field(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Field]:
    root = tmp_path_factory.mktemp("states")
    with FieldLab(root / "lab") as fl:
        fl.add_netns("wl-away", "sim:jetson-agx-orin-64gb")
        fl.add_loopback("wl-hung", "sim:h100-sxm5-80gb")
        fl.add_netns("wl-dark", "sim:jetson-nano").ns.down()
        # the backoff is not a lab key: slow enough here to see "reconnecting in N s" with N >= 1
        lab = with_timeouts(fl.lab(hosts=HOST_KEYS), only=("wl-away",), backoff_initial_s=1.0,
                            backoff_max_s=2.0)
        fleet = open_fleet(lab, root / "logs")
        try:
            _until(lambda: _view(fleet, "wl-away").state is DeviceState.IDLE
                   and _view(fleet, "wl-hung").state is DeviceState.IDLE, 90, "both live hosts to connect")
            yield Field(fl, lab, fleet)
        finally:
            fleet.close()


def _view(fleet: Fleet, host: str) -> DeviceView:
    """The row of the host's sim device (a host also lists what its agent found, e.g. rapl)."""
    device = fleet.host(host).device
    return next(v for v in fleet.snapshot() if v.host == host and v.device_id == device)


def _until(pred: Callable[[], bool], timeout_s: float, what: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for "
                                 f"{what if isinstance(what, str) else what()}")
        time.sleep(0.05)


def _record(field: Field, host: str, until: Callable[[DeviceView, LinkState], bool],
            timeout_s: float) -> list[tuple[float, DeviceView, LinkState]]:
    """Poll the fleet view and the link state of host (as the TUI would) until `until` holds."""
    seen: list[tuple[float, DeviceView, LinkState]] = []
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    while time.monotonic() < deadline:
        view, state = _view(field.fleet, host), field.fleet.link(host).state()
        seen.append((time.monotonic() - t0, view, state))
        if until(view, state):
            return seen
        time.sleep(0.05)
    lines = sorted({s.describe() for _, _, s in seen})
    raise AssertionError(f"{host}: condition not reached in {timeout_s} s; states seen: {lines}")


def _sampling(field: Field, host: str) -> None:
    field.fleet.start_job(host, None, JobSpec(interval_ms=50, duration_s=120))
    _until(lambda: _view(field.fleet, host).state is DeviceState.SAMPLING
           and _view(field.fleet, host).last_sample_wall is not None, 30, f"{host} to sample")


def test_each_host_gets_its_own_limits_from_the_lab_file(field: Field) -> None:
    for name, keys in HOST_KEYS.items():
        timeouts = field.fleet.link(name).timeouts
        for key, value in keys.items():
            assert getattr(timeouts, key) == value, (name, key)


def test_a_host_that_never_answers_fails_within_its_connect_timeout(field: Field) -> None:
    t0 = time.monotonic()
    with pytest.raises(HostError, match=r"wl-dark.*cannot connect within 2 s"):
        open_link(field.hosts.hosts["wl-dark"])
    assert time.monotonic() - t0 < 2 + 3  # its limit, not the 15 s default (+ slack for a busy box)


def test_a_host_that_never_answers_is_marked_lost_after_its_limit(field: Field) -> None:
    seen = _record(field, "wl-dark", lambda v, s: v.state is DeviceState.LOST, 30)
    assert LOST_RE.match(seen[-1][2].describe()), seen[-1][2].describe()
    assert seen[-1][2].away_for_s >= HOST_KEYS["wl-dark"]["lost_after_s"]


def test_a_partitioned_host_shows_reconnecting_with_its_attempt_then_lost_then_recovers(field: Field) -> None:
    _sampling(field, "wl-away")
    ns = field.lab.hosts["wl-away"].ns
    assert ns is not None
    link = field.fleet.link("wl-away")
    reconnects = link.reconnects
    ns.down()
    try:
        seen = _record(field, "wl-away", lambda v, s: v.state is DeviceState.LOST, 40)
    finally:
        ns.up()
    lines = [s.describe() for _, _, s in seen]
    assert any(v.state is DeviceState.STALLED for _, v, _ in seen), "silence is shown as a stall first"
    reconnecting = [(m, v) for (_, v, s), m in zip(seen, (RECONNECT_RE.match(x) for x in lines), strict=True)
                    if m and v.state is DeviceState.RECONNECTING]
    assert reconnecting, sorted(set(lines))
    assert max(int(m.group(2)) for m, _ in reconnecting) >= 2, "attempts are counted"
    assert any(int(m.group(1)) >= 1 for m, _ in reconnecting), "the wait before the next attempt is shown"
    # the fleet row carries the same figures and line for the TUI (its snapshot may lag the link a tick)
    assert all(v.attempt >= 1 and v.reconnect_in_s is not None for _, v in reconnecting)
    assert all(RECONNECT_RE.match(v.link_status or "") for _, v in reconnecting)
    t_lost, view, state = seen[-1]
    assert LOST_RE.match(state.describe()) and "last sample" in state.describe()
    assert LOST_RE.match(view.link_status or ""), view.link_status
    # lost counts from when the link went away (the dropped channel), never before lost_after_s
    assert t_lost >= HOST_KEYS["wl-away"]["lost_after_s"], t_lost
    assert view.last_sample_wall is not None and time.time() - view.last_sample_wall >= t_lost - 1
    _until(lambda: _view(field.fleet, "wl-away").state is DeviceState.SAMPLING, 40,
           lambda: f"wl-away to come back: {_view(field.fleet, 'wl-away')} {link.state().describe()}")
    assert link.reconnects > reconnects


def test_a_stopped_session_shows_stalled_with_the_last_sample_time_then_lost(field: Field) -> None:
    _sampling(field, "wl-hung")
    link = field.fleet.link("wl-hung")
    reconnects = link.reconnects
    with sessions_stopped(field.lab.hosts["wl-hung"].sshd):
        stopped_wall = time.time()
        seen = _record(field, "wl-hung", lambda v, s: v.state is DeviceState.LOST, 20)
    views = [v for _, v, _ in seen if v.state is DeviceState.STALLED]
    states = [s for _, _, s in seen if s.kind == "stalled"]
    assert views and states, sorted({s.describe() for _, _, s in seen})
    assert all(STALLED_RE.match(v.link_status or "") for v in views), [v.link_status for v in views]
    view, state = views[-1], states[-1]
    m = STALLED_RE.match(state.describe())
    assert m, state.describe()
    assert view.stalled_for_s is not None and view.stalled_for_s >= HOST_KEYS["wl-hung"]["stall_after_s"]
    # the last good sample is from just before the stop, and the line shows it
    assert view.last_sample_wall is not None and abs(view.last_sample_wall - stopped_wall) < 1.5
    assert m.group(2) == time.strftime("%H:%M:%S", time.gmtime(state.last_sample_wall))
    t_lost, _, lost_state = seen[-1]
    assert lost_state.stalled_for_s >= HOST_KEYS["wl-hung"]["lost_after_s"]
    assert t_lost < HOST_KEYS["wl-hung"]["lost_after_s"] + 3
    assert LOST_RE.match(lost_state.describe())
    # SIGCONT: the same channel carries data again; a stall shorter than reconnect_on_stall_s needs no redial
    _until(lambda: _view(field.fleet, "wl-hung").state is DeviceState.SAMPLING
           and (_view(field.fleet, "wl-hung").last_sample_wall or 0) > stopped_wall + 1, 20, "wl-hung data")
    assert link.reconnects == reconnects


def test_hosts_fail_independently(field: Field, tmp_path: Path) -> None:
    # after all of the above, the healthy hosts are fine while wl-dark is still lost
    states = {v.host: v.state for v in field.fleet.snapshot()}
    assert states["wl-dark"] is DeviceState.LOST
    assert states["wl-away"] is DeviceState.SAMPLING and states["wl-hung"] is DeviceState.SAMPLING
