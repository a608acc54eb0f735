"""A time-only sampler: no power, no total. `measure local` on a machine with nothing readable
still records time (and says so). Python 3.6 compatible."""

from typing import Any, Dict, Optional

from agents.samplers.base import Reading, Sampler


class NoneSampler(Sampler):
    """Readings carry only a timestamp; total_w and energy_j are None."""

    name = "none"

    @classmethod
    def available(cls, **kwargs: Any) -> Optional[str]:
        return None

    def read(self) -> Reading:
        return Reading(self.clock(), {}, None, None)

    def describe(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "device": self.device,
            "rails": [],
            "total_rail": None,
            "total_rule": "no power source: time only",
            "resolution_w": None,
            "min_interval_ms": 1,
            "check_cmd": None,
            "notes": ["no readable power sensor was used; only time is recorded"],
        }
