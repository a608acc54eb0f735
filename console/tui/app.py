"""The console app: a thin shell that owns the fleet, the poll tick and navigation.

One timer (`poll_hz`, 4 Hz by default) reads `fleet.snapshot()` only when `fleet.version` moved,
appends to the history book and hands the snapshot to the visible screen inside one batched
repaint. Reader threads in the fleet never touch widgets; requests that may block on a host
(start/stop/mark) run in thread workers, so a hung host never blocks input. With `sample=True`
(`wattlab --sample`) every device gets a sampling job once it is connected and idle, so GWP climbs
from the first seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.worker import Worker, WorkerState

from console.paths import logs_dir as resolve_logs_dir
from console.state import DeviceState, DeviceView
from console.tui.fleet_protocol import FleetLike
from console.tui.history import HistoryBook
from console.tui.screens.confirm import ConfirmScreen
from console.tui.screens.fleet import FleetScreen
from console.tui.screens.live import LiveScreen
from console.tui.widgets.topbar import TopBar

REQUESTS = "requests"


def running_jobs(views: list[DeviceView]) -> list[DeviceView]:
    """Devices with a job in progress."""
    return [v for v in views if v.job_id is not None]


def reattach_hint(views: list[DeviceView]) -> str:
    """What to tell someone leaving while jobs run: they keep running, and how to get back."""
    jobs = running_jobs(views)
    lines = [f"{len(jobs)} job(s) keep running on the devices after you quit:"]
    lines += [f"  {v.host}/{v.device_id}  {v.job_id}" + (f"  (campaign {v.campaign})" if v.campaign else "")
              for v in jobs[:6]]
    if len(jobs) > 6:
        lines.append(f"  … and {len(jobs) - 6} more")
    lines.append("Re-attach: run `wattlab` again (same lab) — the agents stream the gap back.")
    if any(v.campaign for v in jobs):
        lines.append("Campaigns: `wattlab campaign status DIR` or `wattlab campaign resume DIR`.")
    return "\n".join(lines)


class WattlabApp(App[None]):
    """Fleet, device, compare and campaign screens over one fleet."""

    CSS_PATH = "app.tcss"
    TITLE = "wattlab"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("q", "quit_console", "Quit"),
        Binding("ctrl+q", "quit_console", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Keys"),
    ]

    class RequestDone(Message):
        """A start/stop/mark request finished (ok, with its result, or failed with an error)."""

        def __init__(self, description: str, ok: bool, result: Any = None, error: str | None = None) -> None:
            super().__init__()
            self.description, self.ok, self.result, self.error = description, ok, result, error

    def __init__(self, fleet: FleetLike, *, lab_name: str, logs_dir: Path,
                 clock: Callable[[], float] = time.time, poll_hz: float = 4.0, sample: bool = False) -> None:
        super().__init__()
        self.fleet = fleet
        self.lab_name = lab_name
        self.logs_dir = logs_dir
        self.clock = clock
        self.poll_hz = poll_hz
        self.book = HistoryBook()
        self.views: list[DeviceView] = []
        self.polls = 0  # snapshots actually taken (tests and benches read it)
        self.job_scenarios: dict[str, str] = {}  # job id -> scenario name, for jobs started here
        self._start_labels: dict[Worker[Any], str] = {}
        self._seen_version: int | None = None
        self.sample_on_connect = sample
        self._auto_sampled: set[str] = set()  # devices --sample already started (each only once)

    def on_mount(self) -> None:
        self.poll()
        self.push_screen(FleetScreen())
        self.set_interval(1.0 / self.poll_hz, self.poll)

    # -- the tick -------------------------------------------------------------------------------
    def poll(self, force: bool = False) -> bool:
        """Take a snapshot if the fleet changed and hand it to the visible screen; True if it did."""
        version = self.fleet.version
        changed = force or version != self._seen_version
        if changed:
            self._seen_version = version
            self.views = self.fleet.snapshot()
            self.book.ingest(self.views)
            self.polls += 1
            if self.sample_on_connect:
                self._sample_new_idle()
        with self.batch_update():
            self._update_topbar()
            screen = self._live_screen()
            if changed and screen is not None and screen.ready:
                screen.show_views(self.views)
        return changed

    def _live_screen(self) -> LiveScreen | None:
        # The top screen, or the screen under a modal (it stays visible behind the dialog).
        for screen in reversed(self.screen_stack):
            if isinstance(screen, LiveScreen):
                return screen
            if not screen.is_modal:
                return None
        return None

    def topbar_fields(self) -> tuple[str, str, str]:
        """(lab name, fleet counts, clock) for the header."""
        jobs = len(running_jobs(self.views))
        counts = f"{len(self.views)} devices · {jobs} job{'s' if jobs != 1 else ''}"
        return self.lab_name, counts, time.strftime("%H:%M:%S UTC", time.gmtime(self.clock()))

    def _update_topbar(self) -> None:
        try:
            bar = self.screen.query_one(TopBar)
        except Exception:  # a modal or a screen without a bar
            return
        lab, counts, clock = self.topbar_fields()
        bar.show(lab=lab, counts=counts, clock_text=clock)

    def view(self, key: str) -> DeviceView | None:
        """The latest view of one device."""
        return next((v for v in self.views if v.key == key), None)

    # -- navigation -----------------------------------------------------------------------------
    def open_device(self, key: str) -> None:
        """Show one device's screen."""
        from console.tui.screens.device import DeviceScreen

        self.push_screen(DeviceScreen(key))

    def open_compare(self, keys: list[str]) -> None:
        """Compare devices (live) and stored runs side by side."""
        from console.tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(keys))

    def ask_campaign(self) -> None:
        """Ask for a campaign directory (default: the newest one under logs/) and show its progress."""
        from console.tui.campaign_manifest import latest_campaign_dir
        from console.tui.screens.campaign import CampaignScreen
        from console.tui.screens.prompt import PromptScreen

        def opened(path: str | None) -> None:
            if path:
                self.push_screen(CampaignScreen(Path(path).expanduser()))

        default = latest_campaign_dir(self.logs_dir)
        self.push_screen(PromptScreen("Campaign directory (with manifest.json)",
                                      value=str(default) if default else "",
                                      placeholder=str(self.logs_dir / "<campaign>")), opened)

    # -- requests to devices (may block: thread workers) -----------------------------------------
    def sample(self, views: list[DeviceView]) -> None:
        """Start a sampling-only job on each of these devices (power and GWP start moving)."""
        from console.tui.scenarios import sampling_spec

        for view in views:
            self.request(f"start sampling on {view.key}", self.fleet.start_job, view.host, view.device_id,
                         sampling_spec())

    def _sample_new_idle(self) -> None:
        # Once per device: a job the user stops later is not restarted behind their back.
        fresh = [v for v in self.views if v.state is DeviceState.IDLE and v.job_id is None
                 and v.key not in self._auto_sampled]
        self._auto_sampled.update(v.key for v in fresh)
        self.sample(fresh)

    def request(self, description: str, fn: Callable[..., Any], *args: Any,
                scenario: str | None = None) -> Worker[Any]:
        """Run a fleet request off the UI thread; a RequestDone message reports how it ended.

        `scenario` names what a start request runs, remembered by job id for the compare screen."""
        self.notify(f"{description}…", timeout=2)
        worker = self.run_worker(partial(fn, *args), name=description, group=REQUESTS, thread=True,
                                 exit_on_error=False, description=description)
        if scenario:
            self._start_labels[worker] = scenario
        return worker

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != REQUESTS:
            return
        if event.state is WorkerState.SUCCESS:
            scenario = self._start_labels.pop(worker, None)
            if scenario and isinstance(worker.result, str):
                self.job_scenarios[worker.result] = scenario
            self.post_message(self.RequestDone(worker.name, True, result=worker.result))
        elif event.state is WorkerState.ERROR:
            self._start_labels.pop(worker, None)
            self.post_message(self.RequestDone(worker.name, False, error=str(worker.error)))

    def on_wattlab_app_request_done(self, message: RequestDone) -> None:
        if message.ok:
            self.notify(f"{message.description}: done", timeout=3)
        else:
            self.notify(f"{message.description} failed: {message.error}", severity="error", timeout=8)
        self.poll(force=True)

    def action_help(self) -> None:
        """Show every key of the current screen (its BINDINGS, hidden ones too) and the app's."""
        from console.tui.screens.help import HelpScreen, key_rows

        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        name = type(screen).__name__.removesuffix("Screen").lower() or "console"
        sections = [(f"{name} screen", key_rows(type(screen).BINDINGS, self.get_key_display))]
        if not screen.is_modal:
            sections.append(("everywhere", key_rows(self.BINDINGS, self.get_key_display)))
        self.push_screen(HelpScreen(f"Keys · {name}", sections))

    # -- quitting -------------------------------------------------------------------------------
    def action_quit_console(self) -> None:
        """Quit; with jobs running, first say they keep running and how to re-attach."""
        if not running_jobs(self.views):
            self.exit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(ConfirmScreen("Quit the console?", reattach_hint(self.views), yes="Quit"), answered)


def _lab_name(fleet: FleetLike, lab: Path | None) -> str:
    name = getattr(fleet, "name", None) or getattr(getattr(fleet, "lab", None), "name", None)
    if name:
        return str(name)
    return lab.stem if lab else "default"


def make_app(fleet: FleetLike | None = None, lab: Path | None = None, logs: Path | None = None,
             clock: Callable[[], float] | None = None, *, poll_hz: float = 4.0,
             sample: bool = False) -> WattlabApp:
    """Build the console; the CLI and the tests both use this (no fleet: the real one on `lab`).
    `sample`: start sampling on every device as soon as it is connected and idle."""
    logs_dir = resolve_logs_dir(logs)
    if fleet is None:
        from console.tui.live_fleet import open_lab_fleet

        fleet = open_lab_fleet(lab, logs_dir)
    return WattlabApp(fleet, lab_name=_lab_name(fleet, lab), logs_dir=logs_dir,
                      clock=clock or time.time, poll_hz=poll_hz, sample=sample)


def run_app(lab: Path | None = None, logs: Path | None = None, sample: bool = False) -> None:
    """`wattlab` with no command: run the console, then leave jobs running and say so."""
    app = make_app(lab=lab, logs=logs, sample=sample)
    try:
        app.run()
    finally:
        views = app.views
        app.fleet.close()  # drops links only; jobs live in the device daemons
    if running_jobs(views):
        print(reattach_hint(views))
