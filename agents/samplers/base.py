"""The one interface every power source implements (open, read, close, describe + available).

Python 3.6 compatible. A sampler measures ONE device (a Jetson module, one GPU, one CPU package
set, one simulated device). Times come from an injectable monotonic clock so tests can drive
them; readings carry the sensor's own time where the source gives one.
"""

import time
from typing import Any, Callable, Dict, List, Optional

Clock = Callable[[], float]


class SamplerError(Exception):
    """A sampler that cannot open or read. The message says what, where, and how to fix it."""


class SamplerUnavailable(SamplerError):
    """The source does not exist on this machine (no NVML, no sysfs tree, no tegrastats...)."""


class SamplerPermission(SamplerError):
    """The source exists but needs more privilege (tegrastats rails or RAPL energy_uj need root)."""


class Reading(object):
    """One sample: monotonic time, per-rail watts, the device total and the energy counter.

    rails     {rail name: watts, or None when that rail could not be read this time}
    total_w   device total per describe()["total_rule"], or None
    energy_j  hardware cumulative energy counter in joules (NVML, RAPL), or None; absolute
              (the job subtracts its first value)
    """

    __slots__ = ("t", "rails", "total_w", "energy_j")

    def __init__(
        self,
        t: float,
        rails: Dict[str, Optional[float]],
        total_w: Optional[float] = None,
        energy_j: Optional[float] = None,
    ) -> None:
        self.t = t
        self.rails = rails
        self.total_w = total_w
        self.energy_j = energy_j

    def __repr__(self):
        return "Reading(t={!r}, total_w={!r}, rails={!r}, energy_j={!r})".format(
            self.t, self.total_w, self.rails, self.energy_j
        )


class Sampler(object):
    """Base class. Subclasses set `name` and implement open/read/close/describe and available()."""

    name = "base"

    def __init__(self, device: str = "0", clock: Optional[Clock] = None) -> None:
        self.device = device
        self.clock: Clock = clock or time.monotonic

    @classmethod
    def available(cls, **kwargs: Any) -> Optional[str]:
        """None when this source can be used here, else a one-line reason why not."""
        raise NotImplementedError

    @classmethod
    def devices(cls, **kwargs: Any) -> List[Dict[str, Any]]:
        """Devices this source can measure here: [{id, name, hardware_id?, ...}]."""
        return []

    def open(self) -> None:
        """Acquire the source (find rails once, start the process, init NVML)."""

    def read(self) -> Reading:
        """Take one reading. Cheap: no process spawn, no discovery."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the source. Safe to call twice."""

    def describe(self) -> Dict[str, Any]:
        """{name, device, rails, total_rail, total_rule, resolution_w, min_interval_ms, check_cmd, notes}."""
        raise NotImplementedError

    def set_load(self, level: float) -> None:
        """Tell the sampler the workload's load in [0, 1]. Only `sim` uses it; real sensors ignore it."""

    def drain_notices(self) -> List[str]:
        """Notices raised since the last call (e.g. "power rails need root"), each reported once."""
        return []

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()
        return False
