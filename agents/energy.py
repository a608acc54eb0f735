"""Energy from power samples, on the device. Pure, stdlib, Python 3.6."""

from typing import Optional, Sequence


def trapezoid(ts: Sequence[float], ws: Sequence[Optional[float]]) -> float:
    """Joules from (seconds, watts) pairs by the trapezoid rule; None watts are bridged, not zeroed."""
    total = 0.0
    prev_t: Optional[float] = None
    prev_w: Optional[float] = None
    for t, w in zip(ts, ws):
        if w is None:
            continue
        if prev_t is not None and prev_w is not None and t > prev_t:
            total += 0.5 * (w + prev_w) * (t - prev_t)
        prev_t, prev_w = t, w
    return total


class RunningEnergy(object):
    """Incremental trapezoid integration for a live stream (one add() per sample)."""

    __slots__ = ("energy_j", "_t", "_w", "count")

    def __init__(self) -> None:
        self.energy_j = 0.0
        self._t: Optional[float] = None
        self._w: Optional[float] = None
        self.count = 0

    def add(self, t: float, w: Optional[float]) -> float:
        """Add one sample; returns the energy so far in joules."""
        if w is None:
            return self.energy_j
        if self._t is not None and self._w is not None and t > self._t:
            self.energy_j += 0.5 * (w + self._w) * (t - self._t)
        self._t, self._w = t, w
        self.count += 1
        return self.energy_j
