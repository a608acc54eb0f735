"""Per-device power history kept by the console for plots longer than a snapshot's last minute.

`DeviceView.history` and `rail_history` carry only the last minute; the book appends their new
points on every tick (points are wall-time stamped, so overlap between ticks is dropped). Rails
get every sample at its own time, like the total. Pure (numpy + array), no Textual: unit-tested directly.
"""

from __future__ import annotations

import bisect
import math
from array import array
from dataclasses import dataclass, field
from operator import itemgetter

import numpy as np

from console.state import DeviceView

MAX_POINTS = 200_000  # per device: ~2.8 h at 20 Hz; the store keeps the full run, not the UI


@dataclass
class DeviceHistory:
    """Total power and per-rail power of one device, wall-time stamped, oldest first."""

    t: array = field(default_factory=lambda: array("d"))
    w: array = field(default_factory=lambda: array("d"))
    rails: dict[str, tuple[array, array]] = field(default_factory=dict)
    rails_t: float = float("-inf")  # time of the newest rail point taken in
    job_id: str | None = None
    job_start: float | None = None  # wall time of the current job's first point
    version: int = 0  # bumps when points are added, so plots redraw only on change

    def ingest(self, view: DeviceView) -> bool:
        """Append what is new in `view`; returns whether anything was added."""
        last = self.t[-1] if self.t else float("-inf")
        # history is time-ordered: jump past what we already hold instead of scanning a minute of points.
        start = bisect.bisect_right(view.history, (last, math.inf))
        added = start < len(view.history)
        for t, w in view.history[start:]:
            self.t.append(t)
            self.w.append(w)
        if view.job_id != self.job_id:
            self.job_id = view.job_id
            self.job_start = self._job_start(view)
        added = self._ingest_rails(view) or added
        if added:
            self.version += 1
            self._trim()
        return added

    def _ingest_rails(self, view: DeviceView) -> bool:
        points = view.rail_history
        start = bisect.bisect_right(points, self.rails_t, key=itemgetter(0))
        for t, rails in points[start:]:
            for rail, watts in rails.items():
                if watts is not None:
                    rt, rw = self.rails.setdefault(rail, (array("d"), array("d")))
                    rt.append(t)
                    rw.append(watts)
        if start < len(points):
            self.rails_t = points[-1][0]
            return True
        return False

    def _job_start(self, view: DeviceView) -> float | None:
        if view.job_id is None:
            return None
        if view.job_elapsed_s is not None and view.last_sample_wall is not None:
            return view.last_sample_wall - view.job_elapsed_s
        return self.t[-1] if self.t else None

    def _trim(self) -> None:
        # Drop the oldest half at once so trimming is amortized O(1) per point.
        if len(self.t) > MAX_POINTS:
            half = len(self.t) // 2
            del self.t[:half]
            del self.w[:half]
        for rt, rw in self.rails.values():
            if len(rt) > MAX_POINTS:
                half = len(rt) // 2
                del rt[:half]
                del rw[:half]

    def total(self) -> tuple[np.ndarray, np.ndarray]:
        """(t wall s, watts) as numpy copies (a live buffer view would forbid appending)."""
        return _copy(self.t), _copy(self.w)

    def rail(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(t wall s, watts) of one rail, every sample the console received."""
        rt, rw = self.rails.get(name, (array("d"), array("d")))
        return _copy(rt), _copy(rw)

    def job_series(self) -> tuple[np.ndarray, np.ndarray]:
        """The current job's (t since job start s, watts); empty without a job."""
        t, w = self.total()
        if self.job_start is None or t.size == 0:
            return t[:0], w[:0]
        keep = t >= self.job_start
        return t[keep] - self.job_start, w[keep]


def _copy(values: array) -> np.ndarray:
    return np.frombuffer(values, dtype=float).copy() if values else np.empty(0)


class HistoryBook:
    """All devices' histories, keyed by `DeviceView.key`."""

    def __init__(self) -> None:
        self._by_key: dict[str, DeviceHistory] = {}

    def ingest(self, views: list[DeviceView]) -> None:
        """Append the new points of every view."""
        for view in views:
            self._by_key.setdefault(view.key, DeviceHistory()).ingest(view)

    def get(self, key: str) -> DeviceHistory:
        """The history of one device (empty if never seen)."""
        return self._by_key.setdefault(key, DeviceHistory())
