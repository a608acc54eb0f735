"""Run one job end to end: start it on a host's agent, stream rows into a run directory, backfill
what the live stream missed, summarise. Used by `wattlab measure`, `wattlab bench`, campaigns and
the fleet.

    result = run_job(host, JobSpec(duration_s=3), store_root)      # -> RunResult(run_dir, summary)
    result = attach(run_dir)                                        # after the console was killed

Rows flow link -> JobRecorder -> store.RunWriter (idempotent by seq), so live rows, the backfill
after a reconnect and the final backfill at the end can overlap freely. The job id is chosen here
and sent with `start`, so the recorder is tracking before the first row can arrive.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents import AGENT_VERSION
from agents import protocol as P
from agents.energy import RunningEnergy
from console import store
from console.errors import HostError, UsageError, WattlabError
from console.lab import Host, resolve_host
from console.link import Link, LinkTimeouts
from console.metrics import ImpactContext, RunFacts, summarize_run
from console.transport.base import Transport

END_STATES = ("finished", "failed", "stopped", "interrupted")
LOCAL_PREFERENCE = ("nvml:", "jetson", "rapl", "none")  # what `local` measures when no device is named
STATUS_POLL_S = 2.0  # fallback when a job event was missed (e.g. during a reconnect)
DEFAULT_GRID = "FR-ademe"  # ADEME's French mix, the Grenoble study's factor


@dataclass(frozen=True)
class JobSpec:
    """What to run. workload is a protocol WORKLOAD dict (argv or loadgen) or None (sample only)."""

    device: str | None = None
    interval_ms: int = 100
    idle_s: float = 0.0
    duration_s: float | None = None
    workload: dict[str, Any] | None = None
    sampler: str | None = None
    grid: str | None = None  # overrides the host's grid
    pue: float | None = None  # overrides the host's/device's PUE
    meta: dict[str, Any] = field(default_factory=dict)  # recorded in run.json (scenario, cell, ...)

    @classmethod
    def command(cls, argv: list[str], **kw: Any) -> JobSpec:
        """A job running one process (argv, never a shell string)."""
        return cls(workload={"kind": "argv", "argv": list(argv)}, **kw)


@dataclass(frozen=True)
class Progress:
    """Running figures handed to on_progress (about twice a second)."""

    job_id: str
    elapsed_s: float
    samples: int
    power_w: float | None
    energy_j: float
    queries: int
    state: str


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    run_id: str = ""
    job_id: str = ""


class JobRecorder:
    """The link's JobSink for one job: stores rows, keeps running figures, notes the end state."""

    def __init__(self, writer: store.RunWriter, job_id: str) -> None:
        self.writer = writer
        self.job_id = job_id
        self.energy = RunningEnergy()
        self.power_w: float | None = None
        self.last_t: float = 0.0
        self.state = "starting"
        self.error: str | None = None
        self.ended = threading.Event()
        self.device_totals: dict[str, Any] = {}
        self.workload: Any = None
        self._lock = threading.Lock()

    # JobSink
    def last_seq(self, stream: str) -> int:
        return self.writer.last_seq(stream)

    def add_rows(self, stream: str, rows: list) -> int:
        if stream == "samples":
            n = self.writer.add_samples(rows)
            with self._lock:
                for r in rows:
                    if r[1] >= self.last_t:  # live figures follow time; backfilled rows only fill the store
                        self.energy.add(r[1], r[2])
                        self.last_t = r[1]
                        self.power_w = r[2]
            return n
        if stream == "queries":
            return self.writer.add_queries(rows)
        n = self.writer.add_device_events(rows)
        for r in rows:
            fields = r[3] if len(r) > 3 and isinstance(r[3], dict) else {}
            if r[2] == "state" and fields.get("state") in END_STATES:
                self._end(fields["state"], fields.get("error"))
            elif r[2] == "error" and not self.error:
                self.error = fields.get("message")
        return n

    def event(self, kind: str, **fields: Any) -> None:
        self.writer.event(kind, **fields)

    def on_event(self, msg: dict) -> None:
        """Link listener: the job's end state from `job` events."""
        if msg.get("job") != self.job_id or msg.get("event") != "job":
            return
        if msg.get("state") in END_STATES:
            if isinstance(msg.get("summary"), dict):
                self.device_totals = msg["summary"]
            self._end(msg["state"], msg.get("error"))
        elif msg.get("state"):
            self.state = msg["state"]

    def _end(self, state: str, error: str | None) -> None:
        self.state = state
        if error and not self.error:
            self.error = str(error)
        self.ended.set()


# --- transports and links ---------------------------------------------------------------------


def transport_factory(host: Host) -> Callable[[], Transport]:
    """How to reach host: the local agent subprocess, or SSH (console.transport.ssh)."""
    if host.kind == "local":
        from console.transport.local import LocalTransport

        return lambda: LocalTransport(name=host.name)
    try:
        from console.transport import ssh
    except ImportError as exc:
        raise HostError(host.name, f"ssh transport not available ({exc})") from None
    opener = getattr(ssh, "open_transport", None)
    if opener is None:
        raise HostError(host.name, "ssh transport not available (no console.transport.ssh.open_transport)")
    return lambda: opener(host.target, host)


def open_link(host: Host, factory: Callable[[], Transport] | None = None) -> Link:
    """A connected Link to host (HostError when it cannot connect within its connect timeout)."""
    link = Link(host.name, factory or transport_factory(host), timeouts=host.timeouts)
    try:
        link.connect()
    except WattlabError:
        link.close()
        raise
    return link


def choose_device(probe: dict[str, Any], host: Host, requested: str | None) -> dict[str, Any]:
    """The device entry to measure: the requested id, else the host's default, else the best local one.

    `sim:<hardware-id>` is always accepted (the agent simulates any hardware id). UsageError (exit 2)
    lists the devices the agent reported when the id is unknown.
    """
    devices = [d for d in probe.get("devices", []) if isinstance(d, dict) and "id" in d]
    wanted = requested or host.device
    if wanted and wanted.startswith("sim:"):
        from console.profiles import get_device

        get_device(wanted[4:])  # simulating hardware we know nothing about would be made-up numbers
    if wanted:
        for dev in devices:
            if dev["id"] == wanted:
                return dev
        if wanted.startswith("sim:") and len(wanted) > 4:
            return {"id": wanted, "sampler": "sim", "name": f"{wanted[4:]} (sim)", "hardware_id": wanted[4:]}
        known = ", ".join(d["id"] for d in devices) or "none"
        raise UsageError(f"unknown device {wanted!r} on host {host.name}", fix=f"devices there: {known}")
    for prefix in LOCAL_PREFERENCE:
        for dev in devices:
            if dev["id"].startswith(prefix):
                return dev
    return {"id": "none", "sampler": "none", "name": "time only", "hardware_id": None}


def _new_job_id(run_id: str) -> str:
    """Agent job ids are <= 64 chars of [A-Za-z0-9._-]: the run id's time and random suffix."""
    return f"{run_id[:15]}-{run_id[-4:]}"


# --- running ----------------------------------------------------------------------------------


@dataclass
class ActiveRun:
    """A job started on a host and the run directory recording it."""

    host: Host
    writer: store.RunWriter
    recorder: JobRecorder
    spec: JobSpec | None = None

    @property
    def job_id(self) -> str:
        return self.recorder.job_id

    @property
    def run_dir(self) -> Path:
        return self.writer.path


def run_job(host: Host | str, spec: JobSpec, store_root: str | Path, campaign: str | None = None,
            on_progress: Callable[[Progress], None] | None = None, *, link: Link | None = None,
            stop: threading.Event | None = None) -> RunResult:
    """Start spec on host, record it into a new run directory under store_root, return its summary.

    A failing workload still gives a summary (with `error`) and keeps every sample. KeyboardInterrupt
    or `stop` stops the job on the device and still finishes the run. Pass `link` to reuse a connection.
    """
    host = resolve_host(host) if isinstance(host, str) else host
    own_link = link is None
    link = link or open_link(host)
    try:
        active = begin_job(link, host, spec, store_root, campaign)
        return follow(link, active, on_progress, stop)
    finally:
        if own_link:
            link.close()


def begin_job(link: Link, host: Host, spec: JobSpec, store_root: str | Path,
              campaign: str | None = None) -> ActiveRun:
    """Probe, pick the device, create the run directory and start the job (tracked before it starts)."""
    grid = spec.grid or host.grid
    if grid:
        from console.profiles import get_grid

        get_grid(grid)  # a typo in --grid fails now, not after the measurement
    probe = link.call("probe")
    device = choose_device(probe, host, spec.device)
    writer = store.RunWriter(store_root, campaign, host=host.name, device=device["id"])
    job_id = _new_job_id(writer.run_id)
    recorder = JobRecorder(writer, job_id)
    writer.write_meta(_run_meta(host, spec, device, probe, link, job_id))
    link.track(job_id, recorder)
    link.add_listener(recorder.on_event)
    args = {"device": device["id"], "interval_ms": spec.interval_ms, "idle_s": spec.idle_s,
            "duration_s": spec.duration_s, "workload": spec.workload, "job_id": job_id,
            "meta": {"run_id": writer.run_id, **spec.meta}}
    if spec.sampler:
        args["sampler"] = spec.sampler
    try:
        started = link.call("start", args)
    except WattlabError as exc:
        writer.event("error", message=str(exc))
        writer.finish(_summary(writer, recorder, error=str(exc)), complete=False)
        link.untrack(job_id)
        link.remove_listener(recorder.on_event)
        raise
    now = time.time()
    writer.write_meta({"t0_wall": started.get("t0_wall"), "t0_mono": started.get("t0_mono"),
                       "t0_utc": _utc(started.get("t0_wall")), "sampler": started.get("sampler"),
                       "started_wall": now, "started_utc": _utc(now)})
    writer.event("started", job=job_id, host=host.name, device=device["id"])
    return ActiveRun(host, writer, recorder, spec)


def attach(run_dir: str | Path, on_progress: Callable[[Progress], None] | None = None, *,
           link: Link | None = None, stop: threading.Event | None = None) -> RunResult:
    """Re-attach to the job of an unfinished run (the console was killed): backfill from the stored
    last seq, keep recording until the job ends, then finish the run."""
    meta = _read_run_meta(run_dir)
    host = _host_from_meta(meta)
    own_link = link is None
    link = link or open_link(host)
    try:
        active = reattach(link, run_dir, host)
        return follow(link, active, on_progress, stop)
    finally:
        if own_link:
            link.close()


def reattach(link: Link, run_dir: str | Path, host: Host | None = None) -> ActiveRun:
    """Reopen an unfinished run, track its job on link and backfill what is missing (then follow())."""
    meta = _read_run_meta(run_dir)
    host = host or _host_from_meta(meta)
    writer = store.RunWriter.reopen(run_dir)
    recorder = JobRecorder(writer, meta["job_id"])
    # the running figures continue from what is already stored
    for r in writer.rows("samples"):
        recorder.energy.add(r[1], r[2])
        recorder.last_t, recorder.power_w = r[1], r[2]
    link.track(recorder.job_id, recorder)
    link.add_listener(recorder.on_event)
    try:
        stored = link.backfill(recorder.job_id, recorder)
    except BaseException as exc:
        link.untrack(recorder.job_id)
        link.remove_listener(recorder.on_event)
        writer.event("error", message=f"cannot re-attach: {exc}")
        writer.close()
        raise
    writer.event("attach", host=host.name, samples_backfilled=stored["samples"],
                 queries_backfilled=stored["queries"])
    spec = JobSpec(device=meta.get("device"), interval_ms=meta.get("interval_ms") or 100,
                   idle_s=meta.get("idle_s") or 0.0, duration_s=meta.get("duration_s"),
                   workload=meta.get("workload"))
    return ActiveRun(host, writer, recorder, spec)


def _read_run_meta(run_dir: str | Path) -> dict[str, Any]:
    meta = store.read_meta(run_dir)
    if not meta.get("job_id") or not meta.get("target"):
        raise UsageError("run.json has no job_id/target to attach to", where=str(run_dir))
    if (Path(run_dir) / "summary.json").exists() and not any(Path(run_dir).glob("*.part.jsonl")):
        raise UsageError("run is already finished; nothing to attach to", where=str(run_dir))
    return meta


def follow(link: Link, active: ActiveRun, on_progress: Callable[[Progress], None] | None = None,
           stop: threading.Event | None = None, detach: threading.Event | None = None) -> RunResult:
    """Wait for the job to end (events, with a status poll as fallback), backfill, summarise, finish.

    `stop` stops the job on the device (the run is still finished); `detach` leaves it running and the
    run directory unfinished (resumable with attach()), as when the console closes.
    """
    host, writer, recorder = active.host, active.writer, active.recorder
    job_id = recorder.job_id
    t_start = time.monotonic()
    next_poll = t_start + STATUS_POLL_S
    stopping = False
    try:
        while not recorder.ended.wait(0.5):
            if detach is not None and detach.is_set():
                _detach(link, recorder, "console closed")
                return RunResult(writer.path, {}, writer.run_id, job_id)
            if on_progress is not None:
                on_progress(_progress(recorder, t_start))
            if stop is not None and stop.is_set() and not stopping:
                stopping = True
                _stop_job(link, job_id, writer, "stop requested")
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + STATUS_POLL_S
                _poll_status(link, recorder)
            _give_up_if_lost(link, writer)
    except KeyboardInterrupt:
        _stop_job(link, job_id, writer, "interrupted by the operator")
        recorder.ended.wait(host.timeouts.request_timeout_s)
    except BaseException as exc:  # e.g. a campaign giving up on a lost host: leave the run resumable
        _detach(link, recorder, f"{type(exc).__name__}: {exc}")
        raise
    try:
        stored = _final_backfill(link, recorder)
    except BaseException as exc:
        _detach(link, recorder, f"{type(exc).__name__}: {exc}")
        raise
    if any(stored.values()):
        writer.event("backfill", samples=stored["samples"], queries=stored["queries"])
    link.untrack(job_id)
    link.remove_listener(recorder.on_event)
    writer.event("ended", job=job_id, state=recorder.state, error=recorder.error)
    now = time.time()
    writer.write_meta({"ended_wall": now, "ended_utc": _utc(now), "state": recorder.state,
                       "device_totals": recorder.device_totals})
    summary = _summary(writer, recorder, error=recorder.error)
    complete = recorder.state in END_STATES
    run_dir = writer.finish(summary, complete=complete)
    summary = dict(summary, complete=complete)  # as stored in summary.json
    for stream in ("samples", "queries", "events"):  # the spool may prune what we stored
        try:
            link.call("ack", {"job": job_id, "stream": stream, "upto_seq": writer.last_seq(stream)})
        except WattlabError:
            pass  # pruning is an optimisation; the run is already safe on disk
    if on_progress is not None:
        on_progress(_progress(recorder, t_start))
    return RunResult(run_dir, summary, writer.run_id, job_id)


def _give_up_if_lost(link: Link, writer: store.RunWriter) -> None:
    """A host away past its lost_after_s (or refusing us) ends the wait; the run stays resumable."""
    state = link.state()
    if state.kind in ("lost", "error", "closed"):
        raise HostError(link.name, f"{state.describe()}; the job may still be running there",
                        fix=f"wattlab measure --attach {writer.path}")


def _final_backfill(link: Link, recorder: JobRecorder) -> dict[str, int]:
    """Everything the live stream missed, every stream; waits out a reconnect (not a lost host)."""
    while True:
        try:
            _poll_status(link, recorder)
            return link.backfill(recorder.job_id, recorder)
        except HostError:
            _give_up_if_lost(link, recorder.writer)
            time.sleep(0.5)


def _detach(link: Link, recorder: JobRecorder, why: str) -> None:
    """Stop recording without stopping the job: the run stays unfinished, resumable with attach()."""
    link.untrack(recorder.job_id)
    link.remove_listener(recorder.on_event)
    recorder.writer.event("detached", job=recorder.job_id, reason=why)
    recorder.writer.close()


def _stop_job(link: Link, job_id: str, writer: store.RunWriter, why: str) -> None:
    writer.event("stop", reason=why)
    try:
        link.call("stop", {"job": job_id})
    except WattlabError as exc:
        writer.event("error", message=f"cannot stop job: {exc}")


def _poll_status(link: Link, recorder: JobRecorder) -> None:
    try:
        status = link.call("status", {"job": recorder.job_id}, timeout_s=10)
    except WattlabError:
        return  # disconnected: the link reconnects and backfills; the next poll asks again
    if isinstance(status.get("totals"), dict) and status["totals"]:
        recorder.device_totals = status["totals"]
    if status.get("workload"):
        recorder.workload = status["workload"]  # e.g. the load generator's own summary
    if status.get("state") in END_STATES:
        recorder._end(status["state"], status.get("error"))


def _progress(recorder: JobRecorder, t_start: float) -> Progress:
    writer = recorder.writer
    return Progress(recorder.job_id, time.monotonic() - t_start, writer.count("samples"), recorder.power_w,
                    recorder.energy.energy_j, writer.count("queries"), recorder.state)


# --- metadata and summary ---------------------------------------------------------------------


def _run_meta(host: Host, spec: JobSpec, device: dict[str, Any], probe: dict[str, Any], link: Link,
              job_id: str) -> dict[str, Any]:
    hello = link.hello or {}
    return {
        "host": host.name, "target": host.target, "job_id": job_id,
        "device": device["id"], "device_name": device.get("name"), "hardware_id": device.get("hardware_id"),
        "grid": spec.grid or host.grid, "pue": spec.pue if spec.pue is not None else host.pue,
        "power_mode": host.power_mode, "interval_ms": spec.interval_ms, "idle_s": spec.idle_s,
        "duration_s": spec.duration_s, "workload": spec.workload,
        "command": (spec.workload or {}).get("argv"), "scenario": (spec.workload or {}).get("scenario"),
        "meta": spec.meta, "sampler_requested": spec.sampler,
        "agent_version": hello.get("agent_version") or probe.get("agent_version"),
        "console_version": AGENT_VERSION, "agent_python": probe.get("python"),
        "agent_host": probe.get("host"),
        "host_settings": {"python": host.python, "timeouts": dataclasses.asdict(host.timeouts),
                          "ssh_config": host.ssh_config, "remote_home": host.remote_home},
        "created_wall": time.time(),
        "unavailable_samplers": {k: v for k, v in (probe.get("samplers") or {}).items() if v},
    }


def _host_from_meta(meta: dict[str, Any]) -> Host:
    settings = meta.get("host_settings") or {}
    timeouts = LinkTimeouts(**(settings.get("timeouts") or {}))
    return Host(name=meta.get("host") or meta["target"], target=meta["target"], device=meta.get("device"),
                grid=meta.get("grid"), pue=meta.get("pue"), power_mode=meta.get("power_mode"),
                python=settings.get("python"), ssh_config=settings.get("ssh_config"),
                remote_home=settings.get("remote_home"), timeouts=timeouts)


def impact_context(hardware_id: str | None, grid: str | None, pue: float | None) -> ImpactContext:
    """Resolve hardware profile, grid factor, PUE and lifetime for the summary (notes say what is missing)."""
    from console import impact, profiles

    notes: list[str] = []
    hw = None
    if hardware_id:
        try:
            hw = profiles.get_device(hardware_id)
        except UsageError:
            notes.append(f"no hardware profile {hardware_id!r}: embodied share not counted")
    embodied = profiles.load_embodied()
    grid_value = grid_source = None
    if not grid:
        grid = DEFAULT_GRID
        notes.append(f"no grid given: {DEFAULT_GRID} (the study's factor); use --grid or the lab's grid")
    if grid:
        factor = profiles.get_grid(grid)  # UsageError (exit 2) names close matches
        grid_value = impact.grid_interval(factor)
        grid_source = f"{factor.id}: {factor.dataset} {factor.source}".strip()
        grid = factor.id
    resolved_pue = pue if pue is not None else impact.default_pue(hw, embodied)
    return ImpactContext(hardware=hw, hardware_id=hw.id if hw else hardware_id,
                         grid_g_per_kwh=grid_value, grid_region=grid, grid_source=grid_source,
                         pue=resolved_pue, lifetime_years=embodied.lifetime_years_default,
                         embodied=embodied, notes=tuple(notes))


def _summary(writer: store.RunWriter, recorder: JobRecorder, error: str | None) -> dict[str, Any]:
    meta = writer.read_meta()
    sampler = meta.get("sampler") or {}
    facts = RunFacts(sampler=sampler.get("name"), interval_ms=meta.get("interval_ms"),
                     idle_s=float(meta.get("idle_s") or 0.0), load_t_s=_load_start(writer),
                     device=meta.get("device"),
                     total_rule=sampler.get("total_rule"), error=error,
                     extra_method={"agent_version": meta.get("agent_version")})
    context = impact_context(meta.get("hardware_id"), meta.get("grid"), meta.get("pue"))
    rows = writer.rows("samples")
    duration = None
    started, ended = meta.get("started_wall"), meta.get("ended_wall")
    if not rows and started and ended:
        duration = max(0.0, float(ended) - float(started))  # nothing sampled: still record the time
    summary = summarize_run(rows, writer.rows("queries"), facts, context, duration_s=duration)
    if meta.get("device") == "none":  # say what could not be measured, and why
        reasons = meta.get("unavailable_samplers") or {}
        summary["method"]["notes"] += [f"{name}: {why}" for name, why in sorted(reasons.items())]
    summary["state"] = recorder.state
    summary["device_totals"] = recorder.device_totals or None
    summary["workload"] = recorder.workload
    summary["protocol"] = P.PROTOCOL_VERSION
    return summary


def _load_start(writer: store.RunWriter) -> float | None:
    """When the device began the load phase (its load_start event), device clock seconds."""
    for ev in store.read_events(writer.path):
        if ev.get("kind") == "load_start" and isinstance(ev.get("t_load_s"), int | float):
            return float(ev["t_load_s"])
    return None


def _utc(wall: float | None) -> str | None:
    """ISO 8601 UTC for run.json readers ("2026-11-24T21:58:19.123Z")."""
    if wall is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{int(wall % 1 * 1000):03d}Z"
