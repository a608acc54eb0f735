"""Fault schedule: a campaign on 3 real SSH hosts runs through partitions, stalls, a lossy link and resets.

    sudo .venv/bin/python bench/fault_schedule.py [--cells 2] [--cell-s 6] [--interval-ms 20]

Hosts (tests/integration/field_lab.py), each with its own agent daemon measuring a sim device:
  wl-part   sshd in a network namespace over a veth pair   cell 0: partition (link down, up)
                                                           cell 1: reset (SIGKILL the sshd session)
  wl-stall  sshd on loopback                               cell 0: stall (SIGSTOP/SIGCONT the session)
                                                           cell 1: reset (SIGKILL the sshd session)
  wl-slow   sshd behind a TcpRelay: delay + jitter and     cell 0: byte drop (SSH stream corrupted)
            loss stalls on every chunk, the whole run      cell 1: TCP reset of the relayed connection
The cells run through the campaign executor (console.campaign.run_campaign, `cells` repeats of a
sampling cell per host); a fault is injected once a cell's run has stored live samples, and healed
while the cell still runs.
Every cell must end complete with every device sample stored exactly once (seq contiguous from 0,
same t and watts as the device spool) and none lost. Needs root (namespaces); 127.0.0.1 and the
namespace's 10.213.k.0/30 only. tests/integration/test_fault_schedule.py runs this same schedule.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.campaign import Cell, Manifest, load_campaign, run_campaign, unfinished_run
from console.link import Link
from console.runner import open_link
from console.store import load_run
from tests.integration.field_lab import FieldHost, FieldLab, with_timeouts
from tests.integration.netns_sshd import kill_sessions, sessions_stopped

HOLD_S = 3.0  # how long a partition or a stall lasts: longer than reconnect_on_stall_s
FAULT_AFTER_SAMPLES = 40  # inject once the cell has stored this many samples (live data flowed)
# lab keys: a silent link (partition, stopped session) is "stalled" after 0.6 s and redialled after 1.5 s
LAB_TIMEOUTS = {"connect_timeout_s": 20, "request_timeout_s": 15, "stall_after_s": 0.6, "lost_after_s": 60,
                "reconnect_on_stall_s": 1.5}
LINK_TIMEOUTS = {"backoff_initial_s": 0.2, "backoff_max_s": 1.0}  # not lab keys
RELAY = {"delay_ms": 15.0, "jitter_ms": 10.0, "loss_rate": 0.03, "rto_s": 0.2, "seed": 9}
HOSTS = (  # name, kind, device
    ("wl-part", "netns", "sim:jetson-agx-orin-64gb"),
    ("wl-stall", "loopback", "sim:h100-sxm5-80gb"),
    ("wl-slow", "relayed", "sim:jetson-orin-nano-8gb"),
)


# --- faults -----------------------------------------------------------------------------------


def partition(h: FieldHost) -> str:
    """The namespace end of the host's veth goes down for HOLD_S: packets vanish, nobody is told."""
    assert h.ns is not None
    h.ns.down()
    try:
        time.sleep(HOLD_S)
    finally:
        h.ns.up()
    return f"veth {h.ns.veth_ns} down {HOLD_S:g} s"


def stall(h: FieldHost) -> str:
    """The sshd session (and the bridge under it) is SIGSTOPped for HOLD_S: TCP stays up, nothing moves."""
    with sessions_stopped(h.sshd) as pids:
        time.sleep(HOLD_S)
    return f"SIGSTOP {len(pids)} session processes {HOLD_S:g} s"


def reset(h: FieldHost) -> str:
    """The sshd session serving our channel is SIGKILLed: the connection ends at once."""
    return f"SIGKILL {kill_sessions(h.sshd)} sshd sessions"


def byte_drop(h: FieldHost) -> str:
    """The relay discards one chunk of the SSH stream: a corrupt packet, the connection is dropped."""
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
    """The relay resets its connections (RST both ways)."""
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
    """One injected fault: where, which cell, what, and when."""

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
    skipped_ticks: int = 0  # deadlines the device skipped (a starved agent), counted, never read late

    @property
    def lost(self) -> int:
        return self.device_samples - self.stored

    @property
    def duplicates(self) -> int:
        return self.stored_rows - self.stored


@dataclass
class ScheduleResult:
    """Everything the schedule measured; lines() prints it."""

    faults: list[FaultRecord] = field(default_factory=list)
    cells: list[CellRecord] = field(default_factory=list)
    reconnects: dict[str, int] = field(default_factory=dict)  # "reconnect" events in the runs, per host
    cell_states: dict[str, str] = field(default_factory=dict)  # manifest.json state per cell id
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
                f" skipped_ticks={c.skipped_ticks}"
                f" reconnect_events={c.reconnect_events}" for c in self.cells]
        out += [
            f"faults injected:    {len(self.faults)}",
            f"reconnects:         {sum(self.reconnects.values())} "
            f"({', '.join(f'{h} {n}' for h, n in self.reconnects.items())})",
            f"cells done:         {list(self.cell_states.values()).count('done')}/{len(self.cell_states)}"
            f" (manifest.json), runs complete: {sum(c.complete for c in self.cells)}",
            f"samples stored:     {sum(c.stored for c in self.cells)} (device spools: "
            f"{sum(c.device_samples for c in self.cells)})",
            f"samples backfilled: {self.samples_backfilled}",
            f"samples duplicated: {sum(c.duplicates for c in self.cells)}",
            f"samples lost:       {self.samples_lost}",
            f"sshd sessions left: {self.sessions} (after the campaign closed its links)",
            f"relay: {self.relay_stats}",
            f"elapsed:            {self.elapsed_s:.1f} s",
        ]
        return out + [f"error: {e}" for e in self.errors]


# --- the schedule -----------------------------------------------------------------------------


def campaign_text(hosts: list[str], cells: int, cell_s: float, interval_ms: int) -> str:
    """The campaign: every host runs `cells` sampling cells of cell_s, one after another."""
    devices = ", ".join(f'"{h}"' for h in hosts)
    return (f'name = "faults"\ndevices = [{devices}]\nrepeats = {cells}\norder = "grouped"\n'
            f"interval_ms = {interval_ms}\n\n[scenarios.sample]\nscenario = \"measure\"\n"
            f"duration_s = {cell_s}\n")


class Injector:
    """Campaign on_progress hook: once a cell runs and its run directory holds live samples, inject that
    host's planned fault for that cell (on a thread of its own: the executor must not wait for it)."""

    def __init__(self, field_lab: FieldLab, out: Path, result: ScheduleResult, t0: float) -> None:
        self.field_lab, self.out, self.result, self.t0 = field_lab, out, result, t0
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def __call__(self, _manifest: Manifest, cell: Cell) -> None:
        if cell.state != "running":
            return
        plan = PLAN[cell.device]
        fault = plan[cell.repeat % len(plan)]
        t = threading.Thread(target=self._inject, args=(cell.device, cell.id, cell.repeat, fault),
                             daemon=True)
        with self.lock:
            self.threads.append(t)
        t.start()

    def _inject(self, host: str, cell_id: str, k: int, fault: Callable[[FieldHost], str]) -> None:
        deadline = time.monotonic() + 60
        while _live_samples(self.out, cell_id) < FAULT_AFTER_SAMPLES:
            if time.monotonic() > deadline:
                with self.lock:
                    self.result.errors.append(f"{cell_id}: no live samples to inject {fault.__name__} into")
                return
            time.sleep(0.02)
        at = time.monotonic() - self.t0
        detail = fault(self.field_lab.hosts[host])
        with self.lock:
            self.result.faults.append(FaultRecord(host, k, fault.__name__, detail, at))

    def join(self) -> None:
        for t in list(self.threads):
            t.join()


def _live_samples(out: Path, cell_id: str) -> int:
    """Samples the console has stored so far for the cell's unfinished run (lines of its part file)."""
    run_dir = unfinished_run(out, cell_id)
    part = run_dir / "samples.part.jsonl" if run_dir is not None else None
    if part is None or not part.exists():
        return 0
    with open(part, "rb") as fh:
        return sum(1 for _ in fh)


def _check_cell(cell: Cell, link: Link) -> CellRecord:
    """One cell against the device's own spool: every sample once, the same values."""
    run = load_run(cell.run_dir or "")
    total = run.total()
    seqs = sorted(int(s) for s in total["seq"])
    device = _device_rows(link, cell.job or "")
    stored = {int(s): (float(t), w) for s, t, w in zip(total["seq"], total["t"], total["watts"], strict=True)}
    return CellRecord(
        host=cell.device, cell=cell.repeat, run_dir=Path(cell.run_dir or ""), job=cell.job or "",
        state=cell.state, complete=run.complete, device_samples=len(device), stored=len(set(seqs)),
        stored_rows=len(seqs), contiguous=sorted(set(seqs)) == list(range(len(device))),
        matches_device=all(_same(r, stored.get(r[0])) for r in device),
        backfilled=sum(_backfilled(e) for e in run.events),
        reconnect_events=sum(e.get("kind") == "reconnect" for e in run.events),
        skipped_ticks=int((run.summary.get("device_totals") or {}).get("skipped_ticks") or 0))


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
    """Build the 3-host field lab under root, run the campaign through the fault plan, check, tear down."""
    result = ScheduleResult()
    with FieldLab(root / "lab") as field_lab:
        for name, kind, device in HOSTS:
            if kind == "relayed":
                field_lab.add_relayed(name, device, **RELAY)
            else:
                getattr(field_lab, f"add_{kind}")(name, device)
        lab = with_timeouts(field_lab.lab(**LAB_TIMEOUTS), **LINK_TIMEOUTS)
        spec_file = root / "faults.toml"
        spec_file.write_text(campaign_text(list(lab.hosts), cells, cell_s, interval_ms))
        spec = load_campaign(spec_file, known_hosts=list(lab.hosts))
        log(f"lab ready: {', '.join(lab.hosts)}; campaign of {len(lab.hosts) * cells} cells")
        t0 = time.monotonic()
        injector = Injector(field_lab, root / "campaign", result, t0)
        manifest = run_campaign(spec, root / "campaign", lab=lab, on_progress=injector)
        injector.join()
        result.elapsed_s = time.monotonic() - t0
        result.sessions = _sessions_after_close(field_lab)
        result.made = {
            "netns": [h.ns.name for h in field_lab.hosts.values() if h.ns],
            "veths": [h.ns.veth_host for h in field_lab.hosts.values() if h.ns],
            "sshd_pids": [h.sshd.proc.pid for h in field_lab.hosts.values() if h.sshd.proc],
        }
        relay = field_lab.hosts["wl-slow"].relay
        result.relay_stats = dict(relay.stats) if relay else {}
        result.cell_states = {c.id: c.state for c in manifest.cells}
        for name in lab.hosts:
            cells_here = [c for c in manifest.cells if c.device == name and c.state == "done"]
            link = open_link(lab.hosts[name])
            try:
                result.cells += [_check_cell(c, link) for c in cells_here]
            finally:
                link.close()
        result.reconnects = {n: sum(c.reconnect_events for c in result.cells if c.host == n)
                             for n in lab.hosts}
    result.faults.sort(key=lambda f: f.at_s)
    result.cells.sort(key=lambda c: (c.host, c.cell))
    return result


def _sessions_after_close(field_lab: FieldLab, wait_s: float = 5.0) -> dict[str, int]:
    """sshd sessions per host once the campaign closed its links (a leaked connection stays here)."""
    deadline = time.monotonic() + wait_s
    while True:
        sessions = {n: len(h.sshd.session_pids()) for n, h in field_lab.hosts.items()}
        if not any(sessions.values()) or time.monotonic() > deadline:
            return sessions
        time.sleep(0.1)


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
