"""Console ingest cost: a Fleet of N hosts over real SSH (loopback sshd), each streaming a sim device.

Every "host" is its own SSH connection and its own agent daemon (its own remote home), like N
devices; the console side is the real path: console.fleet.Fleet -> link -> runner recorder -> store.
Measured over a steady window after every job has started:
  - console CPU (this process: link readers, paramiko threads, fleet, store writers) as % of one
    core, and that per 1000 samples/s ingested;
  - sample-to-store latency p50/p99: wall time when RunWriter.add_samples stores a row minus the
    sample's own time (t0_wall + t_s; same machine, so the clocks agree);
  - drops: samples the live stream missed (recovered by backfill) and samples missing from the runs.

    .venv/bin/python bench/bench_fleet_ingest.py                  # 8 hosts x 20 Hz, ~10 s window
    .venv/bin/python bench/bench_fleet_ingest.py --hosts 32 --hz 100 --seconds 10
Target (DESIGN.md): 32 x 100 Hz under 25 % of one core, no drops.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console import store
from console.fleet import Fleet
from console.lab import Host, Lab
from console.link import LinkTimeouts
from console.runner import JobSpec
from tests.integration.conftest import SshEnv, kill_agents_under
from tests.integration.sshd import Sshd, keygen

DEVICE = "sim:jetson-agx-orin-64gb"


class StoreTimer:
    """Wraps RunWriter.add_samples to record each row's sample-to-store latency while `recording`."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.recording = False
        self._t0: dict[int, float | None] = {}
        self._lock = threading.Lock()
        self._orig = store.RunWriter.add_samples

    def install(self) -> None:
        timer = self

        def add_samples(writer: store.RunWriter, rows: list) -> int:
            new = timer._orig(writer, rows)
            if timer.recording:
                now = time.time()
                t0 = timer._t0.get(id(writer)) or writer.read_meta().get("t0_wall")
                timer._t0[id(writer)] = t0
                if t0:
                    with timer._lock:
                        timer.latencies.extend(now - (t0 + r[1]) for r in rows)
            return new

        store.RunWriter.add_samples = add_samples  # type: ignore[method-assign]

    def uninstall(self) -> None:
        store.RunWriter.add_samples = self._orig  # type: ignore[method-assign]


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def _wait(pred, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=8)
    ap.add_argument("--hz", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=10.0, help="measured window")
    args = ap.parse_args()
    interval_ms = max(1, round(1000 / args.hz))
    root = Path(tempfile.mkdtemp(prefix="wattlab-bench-"))
    os.environ["WATTLAB_CACHE"] = str(root / "console-cache")  # built zipapps stay out of ~/.cache
    sshd = Sshd(root / "sshd", keygen(root / "id_ed25519"), "bench")
    timer = StoreTimer()
    fleet: Fleet | None = None
    try:
        sshd.start()
        known = root / "known_hosts"
        known.write_text(sshd.known_hosts_line())
        env = SshEnv(root, sshd, sshd, root / "id_ed25519", root / "ssh_config", known, root)
        env.write_config(env.config, known)
        (root / "homes").mkdir()
        timeouts = LinkTimeouts(connect_timeout_s=120)  # 32 deploys + daemon starts share 2 cores
        hosts = {f"bench{i:02d}": Host(
            name=f"bench{i:02d}", target="ssh://wl-target", ssh_config=str(env.config),
            remote_home=str(env.fresh_home(f"h{i:02d}")),
            # the venv's interpreter directly: pyenv's `python3` shim costs ~0.2 s per start on this box
            python=sys.executable, timeouts=timeouts) for i in range(args.hosts)}
        t_setup = time.monotonic()
        fleet = Fleet(Lab(None, hosts), root / "logs").start()
        if not _wait(lambda: all(fleet.link(n).connected for n in hosts), 180):
            print("not connected: " + ", ".join(n for n in hosts if not fleet.link(n).connected))
            return 2
        duration = args.seconds + 4.0  # 2 s warm-up and 2 s of tail around the measured window
        timer.install()
        jobs = {n: fleet.start_job(n, DEVICE, JobSpec(interval_ms=interval_ms, duration_s=duration))
                for n in hosts}
        setup_s = time.monotonic() - t_setup
        print(f"setup: {args.hosts} hosts connected, deployed and started in {setup_s:.1f} s")
        time.sleep(2.0)
        timer.recording = True
        cpu0, wall0 = _cpu_s(), time.monotonic()
        time.sleep(args.seconds)
        cpu1, wall1 = _cpu_s(), time.monotonic()
        timer.recording = False
        stored_in_window = len(timer.latencies)
        expected = duration * 1000 / interval_ms
        backfilled = missing = 0
        for job in jobs.values():
            result = fleet.wait_job(job, timeout_s=60)
            if result is None:
                print(f"job {job} did not finish")
                return 2
            run = store.load_run(result.run_dir)
            seqs = sorted(r[0] for r in store.sample_rows(run))
            missing += (seqs[-1] + 1 - len(seqs) if seqs else 0) + max(0, int(expected * 0.98) - len(seqs))
            backfilled += sum(int(e.get("samples", 0)) for e in run.events if e.get("kind") == "backfill")
        wall = wall1 - wall0
        rate = stored_in_window / wall
        cpu_pct = 100.0 * (cpu1 - cpu0) / wall
        lat = timer.latencies
        print(f"hosts={args.hosts} hz={1000 / interval_ms:g} window={wall:.1f}s "
              f"python={sys.version.split()[0]} cores={os.cpu_count()}")
        print(f"ingested: {rate:.0f} samples/s (expected {args.hosts * 1000 / interval_ms:.0f})")
        print(f"console CPU: {cpu_pct:.1f} % of one core; {cpu_pct / (rate / 1000):.1f} % per 1000 samples/s")
        print(f"sample->store latency: p50 {1000 * statistics.median(lat):.0f} ms, "
              f"p99 {1000 * _pct(lat, 0.99):.0f} ms (n={len(lat)})")
        print(f"drops: {backfilled} missed live and recovered by backfill, {missing} missing from the runs")
        return 0 if missing == 0 else 1
    finally:
        timer.uninstall()
        if fleet is not None:
            fleet.close()
        kill_agents_under(root)
        sshd.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
