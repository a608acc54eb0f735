"""Fault schedule: cells on 3 real SSH hosts run through partitions, stalls, a lossy link and resets.

    sudo .venv/bin/python bench/fault_schedule.py [--cells 2] [--cell-s 6] [--interval-ms 20]

Hosts (tests/integration/field_lab.py), each with its own agent daemon measuring a sim device:
  wl-part   sshd in a network namespace over a veth pair   cell 0: partition (link down, up)
                                                           cell 1: reset (SIGKILL the sshd session)
  wl-stall  sshd on loopback                               cell 0: stall (SIGSTOP/SIGCONT the session)
                                                           cell 1: reset (SIGKILL the sshd session)
  wl-slow   sshd behind a TcpRelay: delay + jitter and     cell 0: byte drop (SSH stream corrupted)
            loss stalls on every chunk, the whole run      cell 1: TCP reset of the relayed connection
A fault is injected once the cell's job has stored its first samples, and healed while it still runs.
Every cell must end complete with every device sample stored exactly once (seq contiguous from 0,
same t and watts as the device spool) and none lost. Needs root (namespaces); 127.0.0.1 and the
namespace's 10.213.k.0/30 only. tests/integration/test_fault_schedule.py runs this same schedule.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.errors import WattlabError
from console.lab import Host
from console.link import Link
from console.runner import JobSpec, Progress, RunResult, attach, open_link, run_job
from console.store import load_run
from tests.integration.field_lab import FieldHost, FieldLab, with_timeouts
from tests.integration.netns_sshd import kill_sessions, sessions_stopped

HOLD_S = 3.0  # how long a partition or a stall lasts: longer than reconnect_on_stall_s
FAULT_AFTER_SAMPLES = 40  # inject once the cell has stored this many samples (live data flowed)
LAB_TIMEOUTS = {"connect_timeout_s": 20, "request_timeout_s": 15, "stall_after_s": 0.6, "lost_after_s": 60}
# Not lab keys (yet): how soon a silent link is dropped and redialled, and the backoff.
LINK_TIMEOUTS = {"reconnect_on_stall_s": 1.5, "backoff_initial_s": 0.2, "backoff_max_s": 1.0}
RELAY = {"delay_ms": 15.0, "jitter_ms": 10.0, "loss_rate": 0.03, "rto_s": 0.2, "seed": 9}
HOSTS = (  # name, kind, device
    ("wl-part", "netns", "sim:jetson-agx-orin-64gb"),
    ("wl-stall", "loopback", "sim:h100-sxm5-80gb"),
    ("wl-slow", "relayed", "sim:jetson-orin-nano-8gb"),
)


# --- faults -----------------------------------------------------------------------------------


def partition(h: FieldHost) -> str:
    assert h.ns is not None
    h.ns.down()
    try:
        time.sleep(HOLD_S)
    finally:
        h.ns.up()
    return f"veth {h.ns.veth_ns} down {HOLD_S:g} s"


def stall(h: FieldHost) -> str:
    with sessions_stopped(h.sshd) as pids:
        time.sleep(HOLD_S)
    return f"SIGSTOP {len(pids)} session processes {HOLD_S:g} s"


def reset(h: FieldHost) -> str:
    return f"SIGKILL {kill_sessions(h.sshd)} sshd sessions"


def byte_drop(h: FieldHost) -> str:
    relay = h.relay
    assert relay is not None
    before = relay.stats["dropped_chunks"]
    relay.drop_rate = 1.0
    deadline = time.monotonic() + 10
    while relay.stats["dropped_chunks"] == before and time.monotonic() < deadline:
        time.sleep(0.005)
    relay.drop_rate = 0.0  # one chunk lost mid-stream: SSH sees a corrupt packet and drops
    return f"dropped {relay.stats['dropped_chunks'] - before} chunk(s)"


def tcp_reset(h: FieldHost) -> str:
    assert h.relay is not None
    return f"RST {h.relay.reset_all()} relayed connection(s)"


PLAN: dict[str, tuple[Callable[[FieldHost], str], ...]] = {
    "wl-part": (partition, reset),
    "wl-stall": (stall, reset),
    "wl-slow": (byte_drop, tcp_reset),
}


# --- results ----------------------------------------------------------------------------------


@dataclass
class FaultRecord:
    host: str
    cell: int
    kind: str
    detail: str
    at_s: float  # since the schedule started


@dataclass
class CellRecord:
    """One cell's outcome, checked against the device's own spool."""

    host: str
    cell: int
    run_dir: Path
    job: str
    state: str
    complete: bool
    device_samples: int  # rows in the device spool
    stored: int  # unique seqs in the run directory
    stored_rows: int  # device-total rows in samples.parquet (== stored unless a seq is duplicated)
    contiguous: bool  # stored seqs are exactly 0..device_samples-1
    matches_device: bool  # every stored (seq, t, watts) equals the spool's row
    backfilled: int  # samples that came back through fetch after a reconnect or at the end
    reconnect_events: int

    @property
    def lost(self) -> int:
        return self.device_samples - self.stored

    @property
    def duplicates(self) -> int:
        return self.stored_rows - self.stored


@dataclass
class ScheduleResult:
    faults: list[FaultRecord] = field(default_factory=list)
    cells: list[CellRecord] = field(default_factory=list)
    reconnects: dict[str, int] = field(default_factory=dict)
    states_seen: dict[str, list[str]] = field(default_factory=dict)
    relay_stats: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    made: dict[str, list] = field(default_factory=dict)  # namespaces, veths, sshd pids: gone after the run
    sessions: dict[str, int] = field(default_factory=dict)  # sshd sessions per host once all cells ended

    @property
    def samples_lost(self) -> int:
        return sum(c.lost for c in self.cells)

    @property
    def samples_backfilled(self) -> int:
        return sum(c.backfilled for c in self.cells)

    def lines(self) -> list[str]:
        """The numbers, one per line (what bench/RESULTS.md records)."""
        out = [f"{f.at_s:6.1f} s  {f.host:9} cell {f.cell}  {f.kind:10} {f.detail}" for f in self.faults]
        out += [f"{c.host:9} cell {c.cell}  {c.state:8} complete={c.complete}"
                f"  samples device={c.device_samples} stored={c.stored} dup={c.duplicates} lost={c.lost}"
                f" backfilled={c.backfilled} same_as_device={c.contiguous and c.matches_device}"
                f" reconnect_events={c.reconnect_events}" for c in self.cells]
        out += [f"{h:9} link states seen: {', '.join(s)}" for h, s in self.states_seen.items()]
        out += [
            f"faults injected:    {len(self.faults)}",
            f"reconnects:         {sum(self.reconnects.values())} "
            f"({', '.join(f'{h} {n}' for h, n in self.reconnects.items())})",
            f"cells complete:     {sum(c.complete for c in self.cells)}/{len(self.cells)}",
            f"samples stored:     {sum(c.stored for c in self.cells)} (device spools: "
            f"{sum(c.device_samples for c in self.cells)})",
            f"samples backfilled: {self.samples_backfilled}",
            f"samples duplicated: {sum(c.duplicates for c in self.cells)}",
            f"samples lost:       {self.samples_lost}",
            f"sshd sessions left: {self.sessions} (one live link each)",
            f"relay: {self.relay_stats}",
            f"elapsed:            {self.elapsed_s:.1f} s",
        ]
        return out + [f"error: {e}" for e in self.errors]


# --- the schedule -----------------------------------------------------------------------------


class _HostRun:
    """One host's cells, in order, on one long-lived link; its fault fires mid-cell from a second thread."""

    def __init__(self, fh: FieldHost, host: Host, link: Link, store: Path, spec: JobSpec,
                 result: ScheduleResult, t0: float) -> None:
        self.fh, self.host, self.link, self.store, self.spec = fh, host, link, store, spec
        self.result, self.t0 = result, t0
        self.lock = threading.Lock()
        self.states: list[str] = []

    def run(self, cells: int) -> None:
        for k in range(cells):
            ready = threading.Event()

            def progress(p: Progress, ready: threading.Event = ready) -> None:
                if p.samples >= FAULT_AFTER_SAMPLES:
                    ready.set()

            fault = PLAN[self.fh.name][k % len(PLAN[self.fh.name])]
            injector = threading.Thread(target=self._inject, args=(k, fault, ready), daemon=True)
            injector.start()
            try:
                res = self._run_cell(k, progress)
            except WattlabError as exc:
                ready.set()
                with self.lock:
                    self.result.errors.append(f"{self.fh.name} cell {k}: {exc}")
                injector.join()
                continue
            injector.join()
            self._check(k, res)

    def _run_cell(self, k: int, progress: Callable[[Progress], None]) -> RunResult:
        """run_job; if it gives up mid-job (link down at the final backfill), re-attach as resume does."""
        spec = dataclasses.replace(self.spec, meta={"cell": k})
        self._wait_connected(60)  # the previous cell's fault may still be healing
        seen = set(p.name for p in (self.store / "faults").glob("*"))
        try:
            return run_job(self.host, spec, self.store, campaign="faults", on_progress=progress,
                           link=self.link)
        except WattlabError:
            fresh = [p for p in (self.store / "faults").glob("*") if p.name not in seen]
            if len(fresh) != 1:
                raise
            self._wait_connected(60)
            return attach(fresh[0], link=self.link)

    def _wait_connected(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.link.connected and time.monotonic() < deadline:
            time.sleep(0.1)

    def _inject(self, k: int, fault: Callable[[FieldHost], str], ready: threading.Event) -> None:
        if not ready.wait(60):
            return
        at = time.monotonic() - self.t0
        detail = fault(self.fh)
        with self.lock:
            self.result.faults.append(FaultRecord(self.fh.name, k, fault.__name__, detail, at))

    def _check(self, k: int, res: RunResult) -> None:
        run = load_run(res.run_dir)
        total = run.total()
        seqs = sorted(int(s) for s in total["seq"])
        device = _device_rows(self.link, res.job_id)
        stored = {int(s): (float(t), w) for s, t, w in zip(total["seq"], total["t"], total["watts"],
                                                           strict=True)}
        matches = all(_same(r, stored.get(r[0])) for r in device)
        backfilled = sum(_backfilled(e) for e in run.events)
        rec = CellRecord(
            host=self.fh.name, cell=k, run_dir=res.run_dir, job=res.job_id,
            state=str(res.summary.get("state")),
            complete=run.complete, device_samples=len(device), stored=len(set(seqs)), stored_rows=len(seqs),
            contiguous=sorted(set(seqs)) == list(range(len(device))), matches_device=matches,
            backfilled=backfilled, reconnect_events=sum(e.get("kind") == "reconnect" for e in run.events))
        with self.lock:
            self.result.cells.append(rec)

    def watch(self, stop: threading.Event) -> None:
        """Record every distinct link state line kind (what the fleet and TUI show)."""
        while not stop.wait(0.05):
            kind = self.link.state().kind
            if not self.states or self.states[-1] != kind:
                self.states.append(kind)


def _backfilled(event: dict) -> int:
    """Samples a run event says came back through `fetch` (after a reconnect, an attach, or at the end)."""
    kind = event.get("kind")
    if kind in ("reconnect", "attach"):
        return int(event.get("samples_backfilled") or 0)
    return int(event.get("samples") or 0) if kind == "backfill" else 0


def _same(device_row: list, stored: tuple[float, float | None] | None) -> bool:
    """The stored (t, watts) is the device row's, at the store's precision (t to 0.1 ms, watts to 1 mW
    in float32); neighbouring samples differ by a whole interval, so a shifted seq cannot pass."""
    if stored is None:
        return False
    t, w = stored
    dev_w = device_row[2]
    if dev_w is None or w is None or w != w:
        return dev_w is None and (w is None or w != w)
    return abs(t - float(device_row[1])) <= 1.01e-4 and abs(float(w) - float(dev_w)) <= 1.01e-3


def _device_rows(link: Link, job: str) -> list[list]:
    """Every sample row of the job as the device spool holds it (the reference for lost/duplicated)."""
    rows: list[list] = []
    after = -1
    while True:
        res = link.call("fetch", {"job": job, "stream": "samples", "after_seq": after, "limit": 5000})
        rows += res.get("rows") or []
        if res.get("done", True) or not res.get("rows"):
            return rows
        after = rows[-1][0]


def run_schedule(root: Path, *, cells: int = 2, cell_s: float = 6.0, interval_ms: int = 20,
                 log: Callable[[str], None] = lambda s: None) -> ScheduleResult:
    """Build the 3-host field lab under root, run `cells` cells per host through the fault plan, tear down."""
    result = ScheduleResult()
    with FieldLab(root / "lab") as field_lab:
        for name, kind, device in HOSTS:
            if kind == "relayed":
                field_lab.add_relayed(name, device, **RELAY)
            else:
                getattr(field_lab, f"add_{kind}")(name, device)
        lab = with_timeouts(field_lab.lab(**LAB_TIMEOUTS), **LINK_TIMEOUTS)
        log(f"lab ready: {', '.join(lab.hosts)}")
        links: dict[str, Link] = {}
        try:
            for name in lab.hosts:  # first connect deploys the agent (slow on a loaded box): done before t0
                links[name] = open_link(lab.hosts[name])
            log("agents deployed, links up")
            spec = JobSpec(interval_ms=interval_ms, duration_s=cell_s)
            t0 = time.monotonic()
            runs = [_HostRun(field_lab.hosts[n], lab.hosts[n], links[n], root / "logs", spec, result, t0)
                    for n in lab.hosts]
            stop = threading.Event()
            watchers = [threading.Thread(target=r.watch, args=(stop,), daemon=True) for r in runs]
            workers = [threading.Thread(target=r.run, args=(cells,)) for r in runs]
            for t in watchers + workers:
                t.start()
            for t in workers:
                t.join()
            stop.set()
            result.elapsed_s = time.monotonic() - t0
            result.reconnects = {n: lk.reconnects for n, lk in links.items()}
            result.sessions = {n: len(h.sshd.session_pids()) for n, h in field_lab.hosts.items()}
            result.states_seen = {r.fh.name: r.states for r in runs}
            result.made = {
                "netns": [h.ns.name for h in field_lab.hosts.values() if h.ns],
                "veths": [h.ns.veth_host for h in field_lab.hosts.values() if h.ns],
                "sshd_pids": [h.sshd.proc.pid for h in field_lab.hosts.values() if h.sshd.proc],
            }
            relay = field_lab.hosts["wl-slow"].relay
            result.relay_stats = dict(relay.stats) if relay else {}
        finally:
            for lk in links.values():
                lk.close()
    result.faults.sort(key=lambda f: f.at_s)
    result.cells.sort(key=lambda c: (c.host, c.cell))
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=2, help="cells per host (default 2)")
    ap.add_argument("--cell-s", type=float, default=6.0, help="seconds per cell (default 6)")
    ap.add_argument("--interval-ms", type=int, default=20, help="sampling interval (default 20 = 50 Hz)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wattlab-faults-") as tmp:
        res = run_schedule(Path(tmp), cells=args.cells, cell_s=args.cell_s, interval_ms=args.interval_ms,
                           log=lambda s: print(s, flush=True))
    for line in res.lines():
        print(line)
    ok = (not res.errors and res.samples_lost == 0 and all(c.complete and c.contiguous and c.matches_device
                                                           and c.duplicates == 0 for c in res.cells))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
