"""All hosts of a lab, one Link each, and the live state the TUI and CLI draw.

Every host connects and probes on its own threads, so a slow or dead host never delays another.
Link reader threads update per-device live figures under one lock; `snapshot()` copies them into
immutable console.state.DeviceView objects (no I/O, no waiting on a host) and `version` grows on
every change so a UI redraws only when something moved. Jobs started here are recorded exactly
like `wattlab measure` does (runner.begin_job/follow into store.RunWriter). `close()` leaves jobs
running on the devices; their runs stay resumable with runner.attach().
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents import protocol as P
from console import runner, store
from console.errors import UsageError, WattlabError
from console.lab import Host, Lab
from console.link import Link, LinkState
from console.metrics import latency_percentiles
from console.state import DeviceState, DeviceView, GwpView
from console.transport.base import Transport

HISTORY_S = 60.0
MONITOR_INTERVAL_MS = 500  # idle power readings (agent `monitor` op): light, yet visibly live
TransportFactoryFor = Callable[[Host], Callable[[], Transport]]


@dataclass
class _Live:
    """Mutable live figures of one device (guarded by Fleet._lock)."""

    power_w: float | None = None
    rails_w: dict[str, float | None] = field(default_factory=dict)
    history: collections.deque = field(default_factory=lambda: collections.deque(maxlen=6000))
    rail_history: collections.deque = field(default_factory=lambda: collections.deque(maxlen=6000))
    last_sample_wall: float | None = None
    source: str | None = None  # "job" (ours), "monitor" or "other" (a job started elsewhere): who set power_w
    other_job: str | None = None  # a job another console or the CLI runs here; its samples are followed
    monitor_error: str | None = None  # why the agent cannot read this idle device, one line

    def add(self, t: float, total_w: float | None, rails: dict[str, float | None]) -> None:
        """One reading at wall time t (the rails dict is kept as is: callers never mutate it)."""
        if total_w is not None:
            self.history.append((t, float(total_w)))
        if rails:
            self.rail_history.append((t, rails))

    def prune(self, now: float) -> None:
        """Keep the last HISTORY_S seconds."""
        for points in (self.history, self.rail_history):
            while points and points[0][0] < now - HISTORY_S:
                points.popleft()


@dataclass
class _Job:
    active: runner.ActiveRun
    device_id: str
    campaign: str | None
    started_mono: float
    t0_wall: float | None = None  # device t0 on the wall clock: history times are t0_wall + t_s
    impact: Any = None  # metrics.ImpactContext, resolved once
    latencies_ms: list[float] = field(default_factory=list)
    latency: dict[str, float] | None = None
    latency_dirty: bool = False
    thread: threading.Thread | None = None
    result: runner.RunResult | None = None
    error: str | None = None


@dataclass
class _HostEntry:
    host: Host
    link: Link
    devices: list[dict[str, Any]] = field(default_factory=list)
    live: dict[str, _Live] = field(default_factory=dict)
    probe_error: str | None = None
    probing: bool = False
    state_kind: str = "connecting"


class Fleet:
    """Thread-safe view and control of every host of a lab."""

    def __init__(self, lab: Lab, store_root: str | Path, *, factory_for: TransportFactoryFor | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 tick_s: float = 1.0) -> None:
        self.lab = lab
        self.store_root = Path(store_root)
        self._factory_for = factory_for or runner.transport_factory
        self._clock = clock
        self._wall = wall
        self._tick_s = tick_s
        self._lock = threading.RLock()
        self._hosts: dict[str, _HostEntry] = {}
        self._jobs: dict[str, _Job] = {}  # job id -> job started through this fleet
        self._detach = threading.Event()
        self._version = 0
        self._snapshot: tuple[int, float, list[DeviceView]] | None = None
        for host in lab.hosts.values():
            self._hosts[host.name] = self._entry(host)

    def _entry(self, host: Host) -> _HostEntry:
        try:
            factory = self._factory_for(host)
            link = Link(host.name, factory, timeouts=host.timeouts, clock=self._clock, wall=self._wall)
            entry = _HostEntry(host, link)
        except WattlabError as exc:  # e.g. no ssh transport: the host shows as an error, others work
            entry = _HostEntry(host, Link(host.name, _unavailable(exc), timeouts=host.timeouts))
            entry.probe_error = exc.what
        entry.link.add_listener(lambda msg, e=entry: self._on_event(e, msg))
        entry.link.add_state_listener(lambda e=entry: self._on_state(e))
        return entry

    # -- lifecycle --
    def start(self) -> Fleet:
        """Connect to every host in the background; returns at once."""
        for entry in self._hosts.values():
            if entry.probe_error is None:
                entry.link.start()
        threading.Thread(target=self._tick, name="fleet ticker", daemon=True).start()
        return self

    def _tick(self) -> None:
        """States that change with time alone (stalled after N s, "reconnecting in N s", lost) bump
        the version too, so a UI that redraws on version changes shows them."""
        while not self._detach.wait(self._tick_s):
            for entry in list(self._hosts.values()):
                if entry.link.state().kind in ("reconnecting", "stalled", "lost"):
                    self._bump()  # their countdowns and "no data for N s" move every tick
                self._on_state(entry)

    def close(self) -> None:
        """Disconnect from every host; jobs keep running on the devices (runs stay resumable)."""
        self._detach.set()
        with self._lock:
            threads = [j.thread for j in self._jobs.values() if j.thread is not None]
        for t in threads:
            t.join(timeout=2)
        closers = [threading.Thread(target=e.link.close, daemon=True) for e in self._hosts.values()]
        for t in closers:
            t.start()
        for t in closers:
            t.join(timeout=5)  # a hung host must not hang the console's exit

    @property
    def version(self) -> int:
        """Grows on every change of what snapshot() would show."""
        return self._version

    def _bump(self) -> None:
        with self._lock:
            self._version += 1

    def host(self, name: str) -> Host:
        return self._host_entry(name).host

    def link(self, name: str) -> Link:
        return self._host_entry(name).link

    def _host_entry(self, name: str) -> _HostEntry:
        entry = self._hosts.get(name)
        if entry is None:
            raise UsageError(f"unknown host {name!r}", fix="hosts: " + ", ".join(self._hosts))
        return entry

    # -- connection and probing --
    def _on_state(self, entry: _HostEntry) -> None:
        kind = entry.link.state().kind
        if kind == entry.state_kind:
            return
        entry.state_kind = kind
        self._bump()
        if kind == "connected" and not entry.probing:
            entry.probing = True
            threading.Thread(target=self._probe, args=(entry,), name=f"probe {entry.host.name}",
                             daemon=True).start()

    def _probe(self, entry: _HostEntry) -> None:
        try:
            probe = entry.link.call("probe")
            devices = _devices_of(entry.host, probe)
            with self._lock:
                entry.devices = devices
                entry.probe_error = None
                for d in devices:
                    entry.live.setdefault(d["id"], _Live())
        except WattlabError as exc:
            with self._lock:
                entry.probe_error = exc.what
        finally:
            entry.probing = False
            self._bump()
        if entry.probe_error is None:
            self._monitor(entry)
            self._adopt(entry)

    def _monitor(self, entry: _HostEntry) -> None:
        """Ask the agent for idle power readings of this host's devices (again after each reconnect:
        a monitor lives as long as its connection). An agent without `monitor` shows idle power as —."""
        ids = [d["id"] for d in entry.devices if d["id"] != "none"]
        if not ids:
            return
        try:
            entry.link.call("monitor", {"devices": ids, "interval_ms": MONITOR_INTERVAL_MS})
        except WattlabError:
            pass  # an older agent (unknown_op) or a drop: the next connect asks again

    def _adopt(self, entry: _HostEntry) -> None:
        """Pick up runs this lab left unfinished (console closed or killed) whose job the host still
        has: backfill them and keep recording, so closing the laptop loses nothing."""
        candidates = []
        for run_dir in store.unfinished_runs(self.store_root):
            try:
                meta = store.read_meta(run_dir)
            except WattlabError:
                continue
            if meta.get("host") == entry.host.name and meta.get("target") == entry.host.target:
                candidates.append((run_dir, meta))
        if not candidates:
            return
        try:
            known = {j.get("job") for j in entry.link.call("jobs").get("jobs", [])}
        except WattlabError:
            return
        for run_dir, meta in candidates:
            with self._lock:
                mine = self._jobs.get(meta.get("job_id"))
                # a job we gave up on when its host was lost is picked up again when the host is back
                if meta.get("job_id") not in known or (mine is not None and mine.result is None
                                                       and mine.error is None):
                    continue
            try:
                active = runner.reattach(entry.link, run_dir, entry.host)
            except WattlabError:
                continue  # another console records it (locked), or the job vanished meanwhile
            self._register(entry, active, meta.get("campaign") if meta.get("campaign") != "adhoc" else None,
                           None)

    # -- live events --
    def _on_event(self, entry: _HostEntry, msg: dict) -> None:
        if msg.get("event") == "monitor":
            self._on_monitor(entry, msg)
            return
        job = self._jobs.get(msg.get("job") or "")
        if job is None:
            if msg.get("event") == "samples":
                self._on_other_samples(entry, msg)
            return
        if job.active.host.name != entry.host.name:
            return  # the daemon is shared (local + sim hosts): only our host's jobs count here
        name = msg.get("event")
        if name == "samples":
            rows = msg.get("rows") or []
            if not rows:
                return
            now = self._wall()
            with self._lock:
                live = entry.live.setdefault(job.device_id, _Live())
                for r in rows:
                    live.add(job.t0_wall + r[1] if job.t0_wall else now, r[2], r[3])
                last = rows[-1]
                live.power_w = last[2]
                live.rails_w = dict(last[3] or {})
                live.last_sample_wall = now
                live.source = "job"
                live.prune(now)
        elif name == "queries":
            with self._lock:
                for q in msg.get("rows") or []:
                    if q[3] is not None and q[4]:
                        job.latencies_ms.append((float(q[3]) - float(q[2])) * 1000.0)
                job.latency_dirty = True
        self._bump()

    def _on_monitor(self, entry: _HostEntry, msg: dict) -> None:
        """An idle device's reading: moves its power, rails and sparkline until a job takes over."""
        device = msg.get("device")
        total, rails, t = msg.get("total_w"), msg.get("rails"), msg.get("t_wall")
        if (total is not None and not _is_num(total)) or not isinstance(rails, dict):
            return  # malformed: never let the wire put a non-number on screen
        rails = {str(k): v for k, v in rails.items() if v is None or _is_num(v)}
        now = self._wall()
        with self._lock:
            live = entry.live.get(device) if isinstance(device, str) else None
            if live is None or any(j.device_id == device and j.active.host.name == entry.host.name
                                   and j.result is None and j.error is None for j in self._jobs.values()):
                return  # not a device we show, or its job's samples are the live source
            other = msg.get("busy_job")
            live.other_job = other if isinstance(other, str) and other not in self._jobs else None
            live.monitor_error = msg["error"] if isinstance(msg.get("error"), str) else None
            if live.other_job is not None:
                live.power_w, live.rails_w, live.source = None, {}, None  # until its samples come
            elif live.monitor_error is None:
                live.add(float(t) if _is_num(t) else now, total, rails)
                live.power_w, live.rails_w, live.last_sample_wall = total, rails, now
                live.source = "monitor"
                live.prune(now)
        self._bump()

    def _on_other_samples(self, entry: _HostEntry, msg: dict) -> None:
        """Samples of a job this console did not start (CLI, another console) on a device we show:
        its power moves like an idle device's (the agent's monitor said which job that is)."""
        rows = []
        for r in msg.get("rows") or []:
            try:
                rows.append(P.parse_sample_row(r))
            except P.ProtocolError:
                continue
        if not rows:
            return
        now = self._wall()
        with self._lock:
            live = next((v for v in entry.live.values()
                         if v.other_job is not None and v.other_job == msg.get("job")), None)
            if live is None:
                return
            last_t = rows[-1][1]
            for _seq, t_s, total, rails, _e in rows:
                live.add(now - (last_t - t_s), total, rails)  # its t0 is unknown here: place rows by now
            live.power_w, live.rails_w, live.last_sample_wall = rows[-1][2], dict(rows[-1][3]), now
            live.source = "other"
            live.prune(now)
        self._bump()

    # -- jobs --
    def start_job(self, host: str, device: str | None, spec: runner.JobSpec, campaign: str | None = None,
                  on_done: Callable[[runner.RunResult], None] | None = None) -> str:
        """Start a job on host/device, recorded into a run directory; returns the job id at once
        (blocks only for the host's start reply)."""
        entry = self._host_entry(host)
        if device is not None:
            spec = runner.JobSpec(**{**spec.__dict__, "device": device})
        active = runner.begin_job(entry.link, entry.host, spec, self.store_root, campaign)
        self._register(entry, active, campaign, on_done)
        return active.job_id

    def _register(self, entry: _HostEntry, active: runner.ActiveRun, campaign: str | None,
                  on_done: Callable[[runner.RunResult], None] | None) -> None:
        """Show a recorded job in the snapshots and follow it to its end on a thread of its own."""
        meta = active.writer.read_meta()
        try:
            impact = runner.impact_context(meta.get("hardware_id"), meta.get("grid"), meta.get("pue"))
        except WattlabError:
            impact = None
        started = self._clock()
        if meta.get("t0_wall"):  # a re-attached job has been running for a while
            started -= max(0.0, self._wall() - float(meta["t0_wall"]))
        job = _Job(active, meta["device"], campaign, started, meta.get("t0_wall"), impact)
        with self._lock:
            self._jobs[active.job_id] = job
        job.thread = threading.Thread(target=self._follow, args=(entry, job, on_done),
                                      name=f"job {active.job_id}", daemon=True)
        job.thread.start()
        self._bump()

    def _follow(self, entry: _HostEntry, job: _Job,
                on_done: Callable[[runner.RunResult], None] | None) -> None:
        try:
            job.result = runner.follow(entry.link, job.active, detach=self._detach)
            if on_done is not None and job.result.summary:
                on_done(job.result)
        except Exception as exc:  # the run stays on disk, incomplete; show why
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._bump()

    def stop_job(self, host: str, job_id: str) -> dict[str, Any]:
        """Ask the device to stop the job (the run is still finished and stored)."""
        return self._host_entry(host).link.call("stop", {"job": job_id})

    def mark(self, host: str, job_id: str, label: str) -> int:
        """Record an operator mark in the job's event stream; returns its seq."""
        return int(self._host_entry(host).link.call("mark", {"job": job_id, "label": label})["seq"])

    def wait_job(self, job_id: str, timeout_s: float | None = None) -> runner.RunResult | None:
        """Block until a job started here is stored (tests, CLI); None on timeout."""
        job = self._jobs.get(job_id)
        if job is None or job.thread is None:
            raise UsageError(f"no job {job_id!r} started by this console")
        job.thread.join(timeout_s)
        return job.result

    # -- snapshot --
    def snapshot(self) -> list[DeviceView]:
        """One immutable DeviceView per device of every host (no I/O, never waits on a host)."""
        now_mono = self._clock()
        with self._lock:
            cached = self._snapshot
            if cached is not None and cached[0] == self._version and now_mono - cached[1] < 0.5:
                return cached[2]
            views = [v for entry in self._hosts.values() for v in self._host_views(entry, now_mono)]
            self._snapshot = (self._version, now_mono, views)
            return views

    def _host_views(self, entry: _HostEntry, now: float) -> list[DeviceView]:
        state = entry.link.state()
        devices = entry.devices or [_placeholder_device(entry.host)]
        running = {j.device_id: j for j in self._jobs.values()
                   if j.active.host.name == entry.host.name and j.result is None and j.error is None}
        return [self._view(entry, dev, state, running.get(dev["id"]), now) for dev in devices]

    def _view(self, entry: _HostEntry, dev: dict[str, Any], link_state: LinkState, job: _Job | None,
              now: float) -> DeviceView:
        live = entry.live.get(dev["id"]) or _Live()
        fields: dict[str, Any] = {}
        if job is not None:
            rec = job.active.recorder
            elapsed = now - job.started_mono
            # A time-only sampler (or one whose rails all failed) has measured nothing: show
            # "no value", never 0 J and 0 mg, which would read as a measurement.
            energy = rec.energy.energy_j if rec.energy.count else None
            fields.update(job_id=job.active.job_id, campaign=job.campaign, job_elapsed_s=elapsed,
                          energy_j=energy, queries_done=rec.writer.count("queries"))
            gwp = _running_gwp(job, energy, elapsed) if energy is not None else None
            if gwp is not None:
                fields["gwp"] = gwp
                if fields["queries_done"]:
                    fields["gwp_per_query_mg"] = gwp.total_g * 1000.0 / fields["queries_done"]
            if job.latency_dirty:
                job.latency, job.latency_dirty = latency_percentiles(job.latencies_ms), False
            if job.latency:
                fields.update(latency_p50_ms=job.latency["p50"], latency_p99_ms=job.latency["p99"])
        probed = bool(entry.devices)
        message = entry.probe_error or link_state.message
        if job is None and message is None:
            other = live.other_job if live.other_job not in self._jobs else None
            message = live.monitor_error or (f"job {other} started elsewhere runs here" if other else None)
        if link_state.kind == "connected" and not probed and message is None:
            message = "connected; asking the agent what it can measure"
        # Idle: the monitor's readings; after a job ends, nothing until the monitor speaks again.
        shown = job is not None or live.source in ("monitor", "other")
        return DeviceView(
            host=entry.host.name, device_id=dev["id"], hardware_id=dev.get("hardware_id"),
            name=dev.get("name") or dev["id"], category=_category(dev.get("hardware_id")),
            state=_device_state(link_state, job, entry.probe_error, probed), sampler=dev.get("sampler"),
            power_w=live.power_w if shown else None, rails_w=dict(live.rails_w) if shown else {},
            history=tuple(live.history), rail_history=tuple(live.rail_history),
            last_sample_wall=live.last_sample_wall or link_state.last_sample_wall,
            reconnect_in_s=link_state.reconnect_in_s, attempt=link_state.attempt,
            stalled_for_s=link_state.stalled_for_s, message=message,
            link_status=link_state.describe() if link_state.kind in _AWAY else None,
            **fields,
        )


# --- helpers -------------------------------------------------------------------------------------

_AWAY = ("reconnecting", "stalled", "lost")  # link states whose own line the fleet row carries


def _unavailable(exc: WattlabError) -> Callable[[], Transport]:
    def factory() -> Transport:
        raise exc

    return factory


def _devices_of(host: Host, probe: dict[str, Any]) -> list[dict[str, Any]]:
    """The devices a host shows: a sim: host its simulated device; others what the agent found."""
    if host.target.startswith("sim:"):
        hw = host.target[4:]
        return [{"id": host.target, "sampler": "sim", "hardware_id": hw, "name": _hw_name(hw) + " (sim)"}]
    found = [d for d in probe.get("devices", []) if isinstance(d, dict) and "<" not in str(d.get("id"))]
    real = [d for d in found if d["id"] != "none"]
    devices = real or [d for d in found if d["id"] == "none"] or [
        {"id": "none", "sampler": "none", "name": "time only", "hardware_id": None}]
    if host.device and host.device.startswith("sim:") and all(d["id"] != host.device for d in devices):
        devices.append({"id": host.device, "sampler": "sim", "hardware_id": host.device[4:],
                        "name": _hw_name(host.device[4:]) + " (sim)"})
    return devices


def _placeholder_device(host: Host) -> dict[str, Any]:
    """What a host shows before its probe answered."""
    device = host.device or (host.target if host.target.startswith("sim:") else "?")
    hw = device[4:] if device.startswith("sim:") else None
    return {"id": device, "hardware_id": hw, "name": (_hw_name(hw) + " (sim)") if hw else host.name}


def _hw_name(hardware_id: str) -> str:
    try:
        from console.profiles import get_device

        return get_device(hardware_id).name
    except WattlabError:
        return hardware_id


def _category(hardware_id: str | None) -> str | None:
    if not hardware_id:
        return None
    try:
        from console.profiles import get_device

        return get_device(hardware_id).category
    except WattlabError:
        return None


def _device_state(link_state: LinkState, job: _Job | None, probe_error: str | None,
                  probed: bool = True) -> DeviceState:
    kind = link_state.kind
    if kind == "error" or (probe_error and (kind in ("connecting", "closed") or not probed)):
        return DeviceState.ERROR
    mapping = {"connecting": DeviceState.CONNECTING, "reconnecting": DeviceState.RECONNECTING,
               "stalled": DeviceState.STALLED, "lost": DeviceState.LOST, "closed": DeviceState.LOST}
    if kind in mapping:
        return mapping[kind]
    if not probed:
        return DeviceState.CONNECTING  # a placeholder row: nothing can start on it yet
    if job is None:
        return DeviceState.IDLE
    return DeviceState.RUNNING if job.active.spec and job.active.spec.workload else DeviceState.SAMPLING


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _running_gwp(job: _Job, energy_j: float, elapsed_s: float) -> GwpView | None:
    ctx = job.impact
    if ctx is None or ctx.grid_g_per_kwh is None:
        return None
    from console.impact import gwp

    try:
        r = gwp(energy_j, max(0.0, elapsed_s), ctx.hardware, ctx.grid_g_per_kwh, pue=ctx.pue,
                lifetime_years=ctx.lifetime_years, embodied=ctx.embodied)
    except WattlabError:
        return None
    return GwpView(operational_g=r.operational, embodied_g=r.embodied, total_g=r.total, low_g=r.low,
                   high_g=r.high)


def open_fleet(lab: Lab, store_root: str | Path, **kw: Any) -> Fleet:
    """Build and start a fleet (the TUI's and `wattlab hosts`' entry point)."""
    return Fleet(lab, store_root, **kw).start()


