"""What the fleet shows about each device: plain, immutable snapshots the TUI and CLI render.

The fleet (console/fleet.py) owns the live state; readers call `fleet.snapshot()` and get these
objects, so drawing never holds a lock or touches a socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class DeviceState(str, Enum):
    IDLE = "idle"  # connected, no job
    SAMPLING = "sampling"  # a sampling-only job runs
    RUNNING = "running"  # a job with a workload runs
    CONNECTING = "connecting"
    RECONNECTING = "reconnecting"  # link lost; see reconnect_in_s / attempt
    STALLED = "stalled"  # link up but no data for stalled_for_s
    LOST = "lost"  # away past the host's limit
    ERROR = "error"  # cannot be used (host key refused, no python3...); see message


@dataclass(frozen=True)
class GwpView:
    """Running GWP of the current job, grams CO2e, with its [low, high] interval."""

    operational_g: float = 0.0
    embodied_g: float = 0.0
    total_g: float = 0.0
    low_g: float = 0.0
    high_g: float = 0.0


@dataclass(frozen=True)
class DeviceView:
    """One row of the fleet screen: a device on a host, and its current job if any."""

    host: str
    device_id: str  # agent device id: "sim:jetson-agx-orin-64gb", "nvml:0", "jetson", "rapl", "none"
    hardware_id: str | None  # profiles/hardware.toml id, when known
    name: str  # human name ("Jetson AGX Orin 64GB (sim)")
    category: str | None  # edge / desktop / gaming / datacenter
    state: DeviceState
    sampler: str | None = None  # which source measures it (sim, ina3221, nvml, rapl, ...)
    power_w: float | None = None  # latest device total
    rails_w: dict[str, float | None] = field(default_factory=dict)
    job_id: str | None = None
    campaign: str | None = None  # campaign name when the job belongs to one
    job_elapsed_s: float | None = None
    energy_j: float | None = None  # energy of the current job so far
    gwp: GwpView | None = None
    queries_done: int = 0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    gwp_per_query_mg: float | None = None
    history: tuple[tuple[float, float], ...] = ()  # (t wall s, watts) of the last minute, for sparklines
    # (t wall s, {rail: watts}) of the last minute, at the same times as `history` (dicts never mutated)
    rail_history: tuple[tuple[float, dict[str, float | None]], ...] = ()
    last_sample_wall: float | None = None
    reconnect_in_s: float | None = None
    attempt: int = 0
    stalled_for_s: float | None = None
    message: str | None = None  # the last error or notice, one line
    # the link's own line while it is not healthy: "reconnecting in 4 s (attempt 3)",
    # "stalled: no data for 12 s (last sample 10:41:07 UTC)", "lost: away for 310 s (...)"; else None
    link_status: str | None = None

    @property
    def key(self) -> str:
        return f"{self.host}/{self.device_id}"
