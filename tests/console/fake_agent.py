"""A fake agent daemon speaking agents/protocol.py over socketpairs, for link/fleet/runner tests.

Jobs sample a known signal (total = 10 W + seq % 5, rail "gpu" = total - 4 W) on a real timer,
spool every row with contiguous seqs, and push batches to subscribed connections. Tests drop
connections (`drop()`), hide rows from the live stream (`mute`) so only a backfill can deliver
them, or make new connections hang (`hang`), like a stalled SSH session.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from typing import Any

from agents import AGENT_VERSION
from agents import protocol as P
from console.transport.base import Channel, SocketChannel, Transport


class FakeJob:
    def __init__(self, job_id: str, args: dict[str, Any]) -> None:
        self.id = job_id
        self.args = args
        self.interval_s = args.get("interval_ms", 100) / 1000.0
        self.duration_s = args.get("duration_s")
        self.state = "running"
        self.spool: dict[str, list] = {s: [] for s in P.STREAMS}
        self.t0 = time.monotonic()
        self.t0_wall = time.time()
        self.stop_flag = threading.Event()


class FakeAgent:
    """The daemon side: jobs and spools outlive connections, like agents/daemon.py."""

    def __init__(self, *, batch_s: float = 0.05, devices: list[dict] | None = None,
                 protocol_v: int = 1) -> None:
        self.batch_s = batch_s
        self.devices = devices or [{"id": "sim:jetson-agx-orin-64gb", "sampler": "sim",
                                    "name": "Jetson AGX Orin 64GB (sim)",
                                    "hardware_id": "jetson-agx-orin-64gb"}]
        self.protocol_v = protocol_v
        self.jobs: dict[str, FakeJob] = {}
        self.conns: list[_Conn] = []
        self.mute = threading.Event()  # rows still spooled, not pushed live
        self.hang = threading.Event()  # new bridges never say hello
        self.lock = threading.Lock()
        self.connects = 0
        self._ids = itertools.count(1)
        self._closed = threading.Event()

    # transport factory for Link
    def transport(self) -> FakeTransport:
        return FakeTransport(self)

    def open(self) -> Channel:
        ours, theirs = socket.socketpair()
        conn = _Conn(self, theirs)
        with self.lock:
            self.conns.append(conn)
            self.connects += 1
        conn.start()
        return SocketChannel(ours, "fake agent")

    def drop(self) -> None:
        """Kill every bridge connection (jobs keep running), like a killed SSH session."""
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            c.close()

    def freeze(self) -> None:
        """Current connections go silent but stay open (SIGSTOP of the sshd session); new ones work."""
        with self.lock:
            for c in self.conns:
                c.frozen = True

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are to every connection (garbage, oversized lines)."""
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            with c.send_lock:
                c.sock.sendall(data)

    def close(self) -> None:
        self._closed.set()
        for job in self.jobs.values():
            job.stop_flag.set()
        self.drop()

    # ops
    def start_job(self, args: dict[str, Any]) -> FakeJob:
        if not any(d["id"] == args.get("device") for d in self.devices):
            raise KeyError(args.get("device"))
        job = FakeJob(args.get("job_id") or f"j{next(self._ids)}", args)
        with self.lock:
            self.jobs[job.id] = job
        threading.Thread(target=self._run_job, args=(job,), daemon=True).start()
        return job

    def _run_job(self, job: FakeJob) -> None:
        seq = 0
        pending: list = []
        last_push = time.monotonic()
        deadline = None if job.duration_s is None else job.t0 + float(job.duration_s)
        while not job.stop_flag.is_set() and not self._closed.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            total = 10.0 + seq % 5
            row = P.sample_row(seq, round(now - job.t0, 4), total, {"gpu": total - 4.0}, None)
            job.spool["samples"].append(row)
            pending.append(row)
            seq += 1
            if now - last_push >= self.batch_s:
                self._push(job, pending)
                pending, last_push = [], now
            job.stop_flag.wait(max(0.0, job.t0 + seq * job.interval_s - time.monotonic()))
        self._push(job, pending)
        job.spool["queries"].append(P.query_row(0, 0, 0.0, 0.01, True, {}))
        self.broadcast(P.event("queries", job.id, rows=job.spool["queries"][-1:]))
        job.state = "stopped" if job.stop_flag.is_set() else "finished"
        self.broadcast(P.event("job", job.id, state=job.state))

    def _push(self, job: FakeJob, rows: list) -> None:
        if rows and not self.mute.is_set():
            self.broadcast(P.event("samples", job.id, rows=list(rows)))

    def broadcast(self, msg: dict) -> None:
        with self.lock:
            conns = [c for c in self.conns if c.subscribed]
        for c in conns:
            c.send(msg)

    def handle(self, conn: _Conn, msg: dict) -> dict:
        op, args = msg["op"], msg["args"]
        if op == "subscribe":
            conn.subscribed = True
            return {}
        if op == "ping":
            return {"t_mono": time.monotonic(), "t_wall": time.time()}
        if op == "probe":
            return {"agent_version": AGENT_VERSION, "python": "3.x", "host": "fake",
                    "samplers": {"sim": None}, "devices": self.devices}
        if op == "start":
            job = self.start_job(args)
            return {"job": job.id, "t0_wall": job.t0_wall,
                    "sampler": {"name": "sim", "device": args["device"], "total_rule": "sum of rails"}}
        if op == "jobs":
            return {"jobs": [{"job": j.id, "state": j.state} for j in self.jobs.values()]}
        job = self.jobs[args["job"]]
        if op == "stop":
            job.stop_flag.set()
            return {"job": job.id, "state": "stopping"}
        if op == "mark":
            seq = len(job.spool["events"])
            t_s = time.monotonic() - job.t0
            job.spool["events"].append(P.event_row(seq, t_s, "mark", {"label": args["label"]}))
            return {"seq": seq}
        if op == "status":
            return {"job": job.id, "state": job.state}
        if op == "fetch":
            spool = job.spool[args["stream"]]
            rows = [r for r in spool if r[0] > args["after_seq"]][: args.get("limit", 1000)]
            last = spool[-1][0] if spool else -1
            done = not rows or rows[-1][0] == last  # caught up with the spool as it is now
            return {"job": job.id, "stream": args["stream"], "rows": rows, "last_seq": last, "done": done}
        raise ValueError(op)


class _Conn:
    def __init__(self, agent: FakeAgent, sock: socket.socket) -> None:
        self.agent = agent
        self.sock = sock
        self.subscribed = False
        self.frozen = False
        self.send_lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._serve, daemon=True).start()

    def send(self, msg: dict) -> None:
        if self.frozen:
            return
        try:
            with self.send_lock:
                self.sock.sendall(P.encode(msg))
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _serve(self) -> None:
        if self.agent.hang.is_set():
            return  # never says hello, never reads: a stalled session
        self.send(P.hello(AGENT_VERSION, "3.x", "fake", 1, {}) | {"v": self.agent.protocol_v})
        reader = P.LineReader()
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            for msg in reader.feed(data):
                if self.frozen:
                    continue
                if isinstance(msg, P.ProtocolError):
                    self.send(P.error(None, msg.code, msg.message))
                    continue
                try:
                    self.send(P.reply(msg.get("id"), self.agent.handle(self, msg)))
                except KeyError as exc:
                    self.send(P.error(msg.get("id"), P.E_NO_SUCH_DEVICE, f"no such device or job {exc}"))
                except Exception as exc:
                    self.send(P.error(msg.get("id"), P.E_BAD_ARGS, str(exc)))


class FakeTransport(Transport):
    def __init__(self, agent: FakeAgent) -> None:
        self.agent = agent
        self.name = "fake"

    def open_bridge(self) -> Channel:
        return self.agent.open()

    def close(self) -> None:
        pass


class HangingTransport(Transport):
    """A host that never answers: open_bridge blocks until released (a dead route, a hung sshd)."""

    def __init__(self) -> None:
        self.name = "hang"
        self.release = threading.Event()

    def open_bridge(self) -> Channel:
        self.release.wait(60)
        raise OSError("host unreachable")

    def close(self) -> None:
        self.release.set()
