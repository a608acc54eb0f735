"""Console ingest cost: N hosts over real SSH (loopback sshd), each streaming a sim device at F Hz.

Measures, over a steady window after every job has started:
  - console CPU (this process: link readers, paramiko threads, store writers) as % of one core,
    and that per 1000 samples/s ingested;
  - sample-to-store latency p50/p99: wall time at store minus the sample's own time (t0_wall + t_s,
    same machine so the clocks agree);
  - drops: samples missing from the live stream (recovered by backfill) and samples missing at the end.
Every "host" is its own SSH connection and its own agent daemon (its own remote home), like N devices.

    .venv/bin/python bench/bench_fleet_ingest.py                  # 8 hosts x 20 Hz, ~10 s
    .venv/bin/python bench/bench_fleet_ingest.py --hosts 32 --hz 100 --seconds 20
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.link import Link, LinkTimeouts
from console.store import RunWriter
from console.transport.ssh import open_transport
from tests.integration.conftest import SshEnv, kill_agents_under
from tests.integration.sshd import Sshd, keygen

DEVICE = "sim:jetson-agx-orin-64gb"


class TimedSink:
    """JobSink into a RunWriter that records, per live sample, how long it took from the device."""

    def __init__(self, writer: RunWriter) -> None:
        self.writer = writer
        self.t0_wall: float | None = None
        self.latencies: list[float] = []
        self.live = 0
        self.lock = threading.Lock()
        self.recording = False

    def last_seq(self, stream: str) -> int:
        return self.writer.last_seq(stream)

    def add_rows(self, stream: str, rows: list) -> int:
        if stream == "samples":
            new = self.writer.add_samples(rows)
            now = time.time()
            if self.t0_wall is not None and self.recording:
                with self.lock:
                    self.latencies.extend(now - (self.t0_wall + r[1]) for r in rows)
            return new
        if stream == "queries":
            return self.writer.add_queries(rows)
        return self.writer.add_device_events(rows)

    def event(self, kind: str, **fields: Any) -> None:
        self.writer.event(kind, **fields)


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=8)
    ap.add_argument("--hz", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=10.0, help="measured window")
    args = ap.parse_args()
    interval_ms = max(1, round(1000 / args.hz))
    root = Path(tempfile.mkdtemp(prefix="wattlab-bench-"))
    sshd = Sshd(root / "sshd", keygen(root / "id_ed25519"), "bench")
    links: list[Link] = []
    try:
        sshd.start()
        known = root / "known_hosts"
        known.write_text(sshd.known_hosts_line())
        env = SshEnv(root, sshd, sshd, root / "id_ed25519", root / "ssh_config", known, root)
        env.write_config(env.config, known)
        (root / "homes").mkdir()
        sinks: list[TimedSink] = []
        jobs: list[str] = []
        t_setup = time.monotonic()
        for i in range(args.hosts):
            home = env.fresh_home(f"h{i:02d}")
            # the venv's interpreter directly: pyenv's `python3` shim costs ~0.2 s per start on this box
            cfg = env.host(name=f"bench{i}", remote_home=str(home), python=sys.executable, timeout_s=30)
            transport = open_transport("ssh://wl-target", cfg)
            link = Link(f"bench{i}", lambda t=transport: t, timeouts=LinkTimeouts(connect_timeout_s=60))
            links.append(link)
        # connect 8 at a time: deploy + daemon start-up is not what we measure, and 32 Python start-ups
        # at once on a 2-core box would only test the box
        for batch in range(0, len(links), 8):
            threads = [threading.Thread(target=lk.connect) for lk in links[batch:batch + 8]]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        down = [lk.name for lk in links if not lk.connected]
        if down:
            print(f"not connected: {', '.join(down)}")
            return 2
        duration = args.seconds + 4.0  # 2 s warm-up and 2 s of tail around the measured window
        for i, link in enumerate(links):
            writer = RunWriter(root / "logs", "bench", host=f"bench{i}", device=DEVICE)
            sink = TimedSink(writer)
            job = f"bench{i}-{os.getpid()}"
            link.track(job, sink)  # before start, as the runner does: the first live batch is not missed
            res = link.call("start", {"device": DEVICE, "interval_ms": interval_ms, "duration_s": duration,
                                      "job_id": job})
            sink.t0_wall = res["t0_wall"]
            sinks.append(sink)
            jobs.append(job)
        setup_s = time.monotonic() - t_setup
        print(f"setup: {args.hosts} hosts connected, deployed and started in {setup_s:.1f} s")
        time.sleep(2.0)
        for s in sinks:
            s.recording = True
        stored0 = sum(s.writer.count("samples") for s in sinks)
        cpu0, wall0 = _cpu_s(), time.monotonic()
        time.sleep(args.seconds)
        cpu1, wall1 = _cpu_s(), time.monotonic()
        stored1 = sum(s.writer.count("samples") for s in sinks)
        for s in sinks:
            s.recording = False
        time.sleep(3.0)  # let the jobs end
        expected_per_job = duration * 1000 / interval_ms
        backfilled = missing = 0
        for link, job, s in zip(links, jobs, sinks, strict=True):
            deadline = time.monotonic() + 10
            while link.call("status", {"job": job}).get("state") in ("starting", "idle", "running"):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            backfilled += link.backfill(job, s)["samples"]
            total = s.writer.count("samples")
            # a hole in the seqs, or a job that ended short of its duration, is a loss
            missing += total - 1 - s.writer.last_seq("samples")
            missing += max(0, int(expected_per_job * 0.98) - total)
        wall = wall1 - wall0
        rate = (stored1 - stored0) / wall
        cpu_pct = 100.0 * (cpu1 - cpu0) / wall
        lat = [x for s in sinks for x in s.latencies]
        print(f"hosts={args.hosts} hz={1000 / interval_ms:g} window={wall:.1f}s "
              f"python={sys.version.split()[0]} cores={os.cpu_count()}")
        print(f"ingested: {rate:.0f} samples/s (expected {args.hosts * 1000 / interval_ms:.0f})")
        print(f"console CPU: {cpu_pct:.1f} % of one core; {cpu_pct / (rate / 1000):.1f} % per 1000 samples/s")
        print(f"sample->store latency: p50 {1000 * statistics.median(lat):.0f} ms, "
              f"p99 {1000 * _pct(lat, 0.99):.0f} ms (n={len(lat)})")
        print(f"drops: {backfilled} missed live and recovered by backfill, {missing} missing at the end")
        return 0 if missing == 0 else 1
    finally:
        for link in links:
            link.close()
        kill_agents_under(root)
        sshd.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
