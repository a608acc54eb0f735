"""What the TUI needs from a fleet: the few methods it calls, as a typing.Protocol.

console.fleet.Fleet satisfies it; tests use tests/tui/fake_fleet.py. `snapshot()` must not block
(it copies state under a lock); start/stop/mark may block on the network, so the TUI calls them
from thread workers only.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from console.state import DeviceView


@runtime_checkable
class FleetLike(Protocol):
    """The fleet as seen by the console: read snapshots, send job requests."""

    @property
    def version(self) -> int:
        """A counter that changes whenever anything in `snapshot()` would change."""
        ...

    def snapshot(self) -> list[DeviceView]:
        """One immutable view per device across all hosts (cheap, never blocks on I/O)."""
        ...

    def start_job(self, host: str, device: str, spec: dict[str, Any]) -> str:
        """Start a job (agent `start` args: interval_ms, workload, duration_s, meta); returns its id."""
        ...

    def stop_job(self, host: str, job_id: str) -> Any:
        """Stop a running job."""
        ...

    def mark(self, host: str, job_id: str, label: str) -> Any:
        """Add a labelled event to a running job."""
        ...

    def close(self) -> None:
        """Drop connections; jobs keep running on the devices."""
        ...
