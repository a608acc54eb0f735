"""Shared fixtures for the TUI tests: a fake fleet on a frozen clock, an app factory, no blinking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Input

from console.tui.app import WattlabApp, make_app
from tests.tui.fake_fleet import FakeClock, FakeFleet


@pytest.fixture(autouse=True)
def _no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    # A blinking cursor makes screenshots depend on timing.
    monkeypatch.setattr(Input, "cursor_blink", False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fleet(clock: FakeClock) -> Iterator[FakeFleet]:
    f = FakeFleet(clock=clock)
    f.advance(5.0)  # five seconds of history so plots and sparklines have data
    yield f
    f.close()  # frees any request a test left blocked on a hung host


def build_app(fleet: FakeFleet, logs: Path) -> WattlabApp:
    """The console on the fake fleet; a slow poll so tests drive refreshes with `app.poll()`."""
    return make_app(fleet=fleet, logs=logs, clock=fleet.clock, poll_hz=0.2)


@pytest.fixture
def app(fleet: FakeFleet, tmp_path: Path) -> WattlabApp:
    return build_app(fleet, tmp_path / "logs")


ORIN = "sim-orin/sim:jetson-agx-orin-64gb"
H100 = "sim-h100/sim:h100-sxm5-80gb"
LOCAL = "local/rapl"


async def tick(app: WattlabApp, pilot: object, fleet: FakeFleet, seconds: float = 1.0) -> None:
    """Advance fake time, run one console tick, and let the screen repaint."""
    fleet.advance(seconds)
    app.poll()
    await pilot.pause()  # type: ignore[attr-defined]
