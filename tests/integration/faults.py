"""Real network faults for integration tests: no mocks, only kernel and socket tools.

- NetNamespace: a network namespace joined to the root namespace by a veth pair; `down()` /
  `up()` partitions and heals the link (as root). Addresses live only inside the pair this test
  made (10.213.<k>.0/30), never anything else on the network.
- TcpRelay: a loopback TCP relay that adds delay and jitter, models packet loss the way TCP
  surfaces it to applications (a retransmission stall), can drop bytes outright (which an SSH
  stream detects as corruption and resets), and can freeze or reset every connection.
- stall(): SIGSTOP/SIGCONT of a process (the sshd session serving our channel).
"""

from __future__ import annotations

import os
import random
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

IP = shutil.which("ip") or "/usr/sbin/ip"


def can_make_netns() -> str | None:
    """None when this process can create network namespaces, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not os.path.exists(IP):
        return "iproute2 `ip` is not installed"
    probe = f"wlprobe{os.getpid()}"
    res = subprocess.run([IP, "netns", "add", probe], capture_output=True, text=True)
    if res.returncode != 0:
        return f"`ip netns add` failed: {res.stderr.strip()}"
    subprocess.run([IP, "netns", "del", probe], capture_output=True)
    return None


class NetNamespace:
    """A namespace `name` with veth `<tag>h` (root side, .1) <-> `<tag>n` (namespace side, .2)."""

    _counter = 0

    def __init__(self, name: str | None = None) -> None:
        NetNamespace._counter += 1
        k = (os.getpid() + NetNamespace._counter) % 250 + 1
        self.name = name or f"wl{os.getpid()}x{NetNamespace._counter}"
        tag = f"wl{k}{NetNamespace._counter}"[:11]
        self.veth_host = tag + "h"
        self.veth_ns = tag + "n"
        self.host_addr = f"10.213.{k}.1"
        self.ns_addr = f"10.213.{k}.2"
        self.subnet = f"10.213.{k}.0/30"

    def _ip(self, *args: str) -> None:
        subprocess.run([IP, *args], check=True, capture_output=True, text=True)

    def create(self) -> NetNamespace:
        self._ip("netns", "add", self.name)
        self._ip("link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_ns)
        self._ip("link", "set", self.veth_ns, "netns", self.name)
        self._ip("addr", "add", f"{self.host_addr}/30", "dev", self.veth_host)
        self._ip("link", "set", self.veth_host, "up")
        # Belt and braces: while the link is down, traffic for the pair's /30 must die here, never
        # fall through to the default route and leave the machine.
        self._ip("route", "add", "unreachable", self.subnet, "metric", "4000")
        self._ip("netns", "exec", self.name, IP, "addr", "add", f"{self.ns_addr}/30", "dev", self.veth_ns)
        self._ip("netns", "exec", self.name, IP, "link", "set", self.veth_ns, "up")
        self._ip("netns", "exec", self.name, IP, "link", "set", "lo", "up")
        return self

    def exec_argv(self, argv: list[str]) -> list[str]:
        """The argv that runs `argv` inside this namespace."""
        return [IP, "netns", "exec", self.name, *argv]

    def down(self) -> None:
        """Partition: the namespace end goes down, the root end loses carrier; packets are dropped."""
        self._ip("netns", "exec", self.name, IP, "link", "set", self.veth_ns, "down")

    def up(self) -> None:
        """Heal the partition."""
        self._ip("netns", "exec", self.name, IP, "link", "set", self.veth_ns, "up")

    def destroy(self) -> None:
        subprocess.run([IP, "link", "del", self.veth_host], capture_output=True)
        subprocess.run([IP, "route", "del", "unreachable", self.subnet, "metric", "4000"],
                       capture_output=True)
        subprocess.run([IP, "netns", "del", self.name], capture_output=True)

    def __enter__(self) -> NetNamespace:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()


class TcpRelay:
    """Loopback relay 127.0.0.1:<port> -> target with configurable delay, loss stalls and byte drops.

    loss_rate: probability per forwarded chunk of a retransmission stall (`rto_s`), which is how
    packet loss on a real TCP path reaches the application.
    drop_rate: probability per chunk of silently discarding it (stream corruption: SSH resets).
    All randomness is seeded so a fault schedule replays exactly.
    """

    def __init__(self, target: tuple[str, int], *, delay_ms: float = 0.0, jitter_ms: float = 0.0,
                 loss_rate: float = 0.0, rto_s: float = 0.2, drop_rate: float = 0.0, seed: int = 0) -> None:
        self.target = target
        self.delay_ms = delay_ms
        self.jitter_ms = jitter_ms
        self.loss_rate = loss_rate
        self.rto_s = rto_s
        self.drop_rate = drop_rate
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._conns: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._frozen = threading.Event()
        self._closed = threading.Event()
        self.stats = {"connections": 0, "chunks": 0, "stalls": 0, "dropped_chunks": 0, "resets": 0}
        self._thread = threading.Thread(target=self._accept_loop, name="relay-accept", daemon=True)

    def start(self) -> TcpRelay:
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.1)
            if not ready:
                continue
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                continue
            with self._lock:
                self._conns.append((client, upstream))
                self.stats["connections"] += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _roll(self) -> tuple[float, bool, bool]:
        with self._rng_lock:
            delay = max(0.0, self.delay_ms + self._rng.uniform(-self.jitter_ms, self.jitter_ms)) / 1000.0
            stall = self._rng.random() < self.loss_rate
            drop = self._rng.random() < self.drop_rate
        return delay, stall, drop

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self._closed.is_set():
                try:
                    data = src.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                while self._frozen.is_set() and not self._closed.is_set():
                    time.sleep(0.02)
                delay, stall, drop = self._roll()
                self.stats["chunks"] += 1
                if stall:
                    self.stats["stalls"] += 1
                    delay += self.rto_s
                if delay:
                    time.sleep(delay)
                if drop:
                    self.stats["dropped_chunks"] += 1
                    continue
                try:
                    dst.sendall(data)
                except OSError:
                    break
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def freeze(self) -> None:
        """Stop forwarding in both directions (a stall: connections stay open, nothing moves)."""
        self._frozen.set()

    def thaw(self) -> None:
        self._frozen.clear()

    def reset_all(self) -> int:
        """Reset every relayed connection (RST both ways); returns how many were cut."""
        with self._lock:
            conns, self._conns = self._conns, []
        for pair in conns:
            for s in pair:
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    s.close()
                except OSError:
                    pass
        self.stats["resets"] += len(conns)
        return len(conns)

    def close(self) -> None:
        self._closed.set()
        self.reset_all()
        self._listener.close()
        self._thread.join(timeout=2)

    def __enter__(self) -> TcpRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def stalled(pid: int) -> Iterator[None]:
    """SIGSTOP `pid` for the duration of the block, then SIGCONT (even if the block raises)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
