"""A deterministic stand-in for console.fleet.Fleet: fake clock, sim-like power, several hosts.

Time moves only when a test calls `advance(seconds)`, so every number on screen is reproducible.
A host can be made to "hang": it stops sending samples (the device shows as stalled) and every
request to it blocks until `release(host)` or `close()` — the TUI must stay responsive meanwhile.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from console.state import DeviceState, DeviceView, GwpView

EF_G_PER_KWH = 50.0  # a fixed grid factor keeps expected values simple
T0 = 1_764_000_000.0  # 2025-11-24 16:00 UTC: frozen start of the fake clock


class FakeClock:
    """Wall clock that moves only on `tick`."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def tick(self, dt: float) -> None:
        self.t += dt


@dataclass
class FakeDevice:
    """One simulated device: idle and loaded power, rail split, and its current job."""

    host: str
    device_id: str
    hardware_id: str | None
    name: str
    category: str | None
    idle_w: float
    load_w: float
    rails: dict[str, float]  # share of total per rail
    pue: float = 1.0
    embodied_g: float = 20_000.0  # embodied footprint F in g, amortized over 7 years
    work_ms: float = 10.0  # latency of one query under load
    state: DeviceState = DeviceState.IDLE
    history: deque = field(default_factory=lambda: deque(maxlen=1200))
    rail_history: deque = field(default_factory=lambda: deque(maxlen=1200))
    power_w: float | None = None
    job_id: str | None = None
    job_spec: dict[str, Any] | None = None
    job_start: float | None = None
    energy_j: float = 0.0
    queries: int = 0
    marks: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.host}/{self.device_id}"


def default_devices() -> list[FakeDevice]:
    """The default lab: the local machine, a sim Jetson AGX Orin and a sim H100 (DESIGN.md)."""
    return [
        FakeDevice("local", "rapl", None, "local CPU (RAPL)", "desktop", 8.0, 45.0,
                   {"package-0": 0.8, "dram": 0.2}, embodied_g=15_000.0, work_ms=25.0),
        FakeDevice("sim-orin", "sim:jetson-agx-orin-64gb", "jetson-agx-orin-64gb",
                   "Jetson AGX Orin 64GB (sim)", "edge", 9.0, 38.0,
                   {"VDD_GPU_SOC": 0.55, "VDD_CPU_CV": 0.25, "VIN_SYS_5V0": 0.2},
                   embodied_g=18_000.0, work_ms=12.0),
        FakeDevice("sim-h100", "sim:h100-sxm5-80gb", "h100-sxm5-80gb", "H100 SXM5 80GB (sim)",
                   "datacenter", 70.0, 610.0, {"gpu": 1.0}, pue=1.5, embodied_g=160_000.0, work_ms=2.5),
    ]


def many_devices(n: int) -> list[FakeDevice]:
    """`n` devices over n // 2 hosts, alternating edge and datacenter sims (load benches)."""
    out = []
    for i in range(n):
        edge = i % 2 == 0
        out.append(FakeDevice(
            f"node{i // 2:02d}", f"sim:dev{i}", None, f"sim device {i}", "edge" if edge else "datacenter",
            9.0 if edge else 70.0, 38.0 if edge else 600.0, {"a": 0.6, "b": 0.4}))
    return out


class FakeFleet:
    """Implements console.tui.fleet_protocol.FleetLike over simulated devices."""

    def __init__(self, devices: list[FakeDevice] | None = None, clock: FakeClock | None = None,
                 rate_hz: float = 10.0, name: str = "default") -> None:
        self.name = name
        self.clock = clock or FakeClock()
        self.rate_hz = rate_hz
        self.devices = devices if devices is not None else default_devices()
        self.calls: list[tuple[str, ...]] = []
        self.closed = False
        self._version = 0
        self._lock = threading.Lock()
        self._hung: dict[str, threading.Event] = {}
        self._hung_since: dict[str, float] = {}
        self._jobs = 0
        self._snap: tuple[int, list[DeviceView]] | None = None
        self._step = 0

    # -- FleetLike ----------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self._version

    def snapshot(self) -> list[DeviceView]:
        with self._lock:
            if self._snap is None or self._snap[0] != self._version:
                self._snap = (self._version, [self._view(d) for d in self.devices])
            return list(self._snap[1])

    def start_job(self, host: str, device: str, spec: dict[str, Any]) -> str:
        self._block_if_hung(host)
        with self._lock:
            d = self._find(host, device)
            if d.job_id is not None:
                raise RuntimeError(f"{d.key} already runs {d.job_id}")
            self._jobs += 1
            d.job_id = f"job-{self._jobs:04d}"
            d.job_spec = dict(spec)
            d.job_start = self.clock()
            d.energy_j = 0.0
            d.queries = 0
            d.state = DeviceState.RUNNING if spec.get("workload") else DeviceState.SAMPLING
            self.calls.append(("start", host, device, d.job_id))
            self._version += 1
            return d.job_id

    def stop_job(self, host: str, job_id: str) -> dict[str, str]:
        self._block_if_hung(host)
        with self._lock:
            d = self._by_job(host, job_id)
            d.job_id = d.job_spec = d.job_start = None
            d.state = DeviceState.IDLE
            self.calls.append(("stop", host, job_id))
            self._version += 1
            return {"job": job_id, "state": "stopped"}

    def mark(self, host: str, job_id: str, label: str) -> dict[str, int]:
        self._block_if_hung(host)
        with self._lock:
            d = self._by_job(host, job_id)
            d.marks.append(label)
            self.calls.append(("mark", host, job_id, label))
            return {"seq": len(d.marks)}

    def close(self) -> None:
        self.closed = True
        for host in list(self._hung):
            self.release(host)

    # -- test controls ------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move time by `seconds`, producing samples at `rate_hz` on every device not hung."""
        steps = max(1, round(seconds * self.rate_hz))
        dt = seconds / steps
        with self._lock:
            for _ in range(steps):
                self.clock.tick(dt)
                self._step += 1
                for d in self.devices:
                    if d.host not in self._hung:
                        self._sample(d, dt)
            self._version += 1

    def hang(self, host: str) -> None:
        """The host stops answering: no samples, requests block until released."""
        with self._lock:
            self._hung[host] = threading.Event()
            self._hung_since[host] = self.clock()
            self._version += 1

    def release(self, host: str) -> None:
        """The host answers again."""
        event = self._hung.pop(host, None)
        self._hung_since.pop(host, None)
        if event is not None:
            event.set()
        self._version += 1

    # -- internals ------------------------------------------------------------------------------
    def _block_if_hung(self, host: str) -> None:
        event = self._hung.get(host)
        if event is not None:
            event.wait()

    def _find(self, host: str, device: str) -> FakeDevice:
        for d in self.devices:
            if d.host == host and d.device_id == device:
                return d
        raise KeyError(f"{host}/{device}")

    def _by_job(self, host: str, job_id: str) -> FakeDevice:
        for d in self.devices:
            if d.host == host and d.job_id == job_id:
                return d
        raise KeyError(f"{host}: no job {job_id}")

    def _sample(self, d: FakeDevice, dt: float) -> None:
        load = 1.0 if d.state is DeviceState.RUNNING else 0.05 if d.state is DeviceState.SAMPLING else 0.0
        # A deterministic ripple (two incommensurate sines) so plots move without randomness.
        ripple = 0.04 * math.sin(self._step * 0.7 + len(d.name)) + 0.02 * math.sin(self._step * 0.13)
        w = (d.idle_w + (d.load_w - d.idle_w) * load) * (1.0 + ripple)
        t = self.clock()
        d.power_w = w
        d.history.append((t, w))
        d.rail_history.append((t, {r: w * share for r, share in d.rails.items()}))
        if d.job_id is not None:
            d.energy_j += w * dt
            if d.state is DeviceState.RUNNING:
                d.queries = int((t - (d.job_start or t)) * 1000.0 / d.work_ms)

    def _view(self, d: FakeDevice) -> DeviceView:
        t = self.clock()
        cutoff = t - 60.0
        history = tuple(p for p in d.history if p[0] >= cutoff)
        view = DeviceView(
            host=d.host, device_id=d.device_id, hardware_id=d.hardware_id, name=d.name,
            category=d.category, state=d.state, sampler="sim" if d.device_id.startswith("sim:") else "rapl",
            power_w=d.power_w, rails_w={r: (d.power_w or 0.0) * share for r, share in d.rails.items()},
            history=history, last_sample_wall=history[-1][0] if history else None,
            rail_history=tuple(p for p in d.rail_history if p[0] >= cutoff),
        )
        if d.job_id is not None:
            elapsed = t - (d.job_start or t)
            op = d.energy_j / 3.6e6 * EF_G_PER_KWH * d.pue
            emb = elapsed / (7 * 365.25 * 86400) * d.embodied_g
            total = op + emb
            gwp = GwpView(op, emb, total, total * 0.8, total * 1.25)
            q = d.queries
            view = replace(
                view, job_id=d.job_id, job_elapsed_s=elapsed, energy_j=d.energy_j, gwp=gwp,
                campaign=(d.job_spec or {}).get("meta", {}).get("campaign"),
                queries_done=q,
                latency_p50_ms=d.work_ms if q else None, latency_p99_ms=d.work_ms * 1.4 if q else None,
                gwp_per_query_mg=total * 1000 / q if q else None,
            )
        if d.host in self._hung:
            view = replace(view, state=DeviceState.STALLED, stalled_for_s=t - self._hung_since[d.host],
                           message="no data from host")
        return view
