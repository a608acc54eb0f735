"""CPU package (+DRAM) power from RAPL energy counters in powercap sysfs (Intel, AMD since Linux 5.8).

`<root>/class/powercap/intel-rapl:<pkg>[:<sub>]/{name, energy_uj, max_energy_range_uj}`. Domains nest
(psys > package > core/uncore), so only `package-N` zones and their `dram` subzones are rails: summing
anything else double-counts. Power = delta energy / delta t between reads; `energy_j` is the unwrapped
cumulative counter (wraps at max_energy_range_uj are added back). Root-only since Linux 5.10.
Python 3.6 compatible.
"""

import glob
import os
from typing import Any, Dict, List, Optional

from agents.samplers.base import Clock, Reading, Sampler, SamplerError, SamplerPermission, SamplerUnavailable

_ZONES = "class/powercap/intel-rapl:*"
FIX_PERMISSION = (
    "RAPL energy_uj is root-only since Linux 5.10 (CVE-2020-8694): run the agent as root, or "
    "`sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj` (until reboot), or add "
    "`mode class/powercap/intel-rapl:0/energy_uj = 0444` to /etc/sysfs.conf"
)


def _read_text(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def unwrap_delta(prev_uj: int, now_uj: int, max_uj: int) -> int:
    """Microjoules spent between two raw counter values, adding back one wrap at max_uj."""
    if now_uj >= prev_uj:
        return now_uj - prev_uj
    return now_uj + max_uj - prev_uj


class _Zone(object):
    """One counter: its rail name, file, wrap range, and unwrapped running state."""

    __slots__ = ("rail", "path", "max_uj", "fd", "prev_uj", "prev_t", "total_uj")

    def __init__(self, rail: str, path: str, max_uj: int) -> None:
        self.rail = rail
        self.path = path
        self.max_uj = max_uj
        self.fd = -1
        self.prev_uj = 0
        self.prev_t = 0.0  # per zone: a failed read must not fold two intervals into one
        self.total_uj = 0  # unwrapped counter: first raw value + every delta since


def find_zones(root: str = "/sys") -> List[_Zone]:
    """package-N zones and their dram subzones (rail `dram-N`); raises SamplerUnavailable if none."""
    zones: List[_Zone] = []
    for d in sorted(glob.glob(os.path.join(root, _ZONES))):
        parts = os.path.basename(d).split(":")  # intel-rapl, <pkg>[, <sub>]
        try:
            name = _read_text(os.path.join(d, "name"))
            max_uj = int(_read_text(os.path.join(d, "max_energy_range_uj")))
        except (OSError, ValueError):
            continue
        if len(parts) == 2 and name.startswith("package"):
            rail = name
        elif len(parts) == 3 and name == "dram":
            rail = "dram-{}".format(parts[1])
        else:
            continue  # psys, core, uncore: nested inside or around the packages
        zones.append(_Zone(rail, os.path.join(d, "energy_uj"), max_uj))
    if not zones:
        raise SamplerUnavailable(
            "no RAPL package zones under {} (not x86, or powercap masked in a container)".format(
                os.path.join(root, "class/powercap")
            )
        )
    return zones


class RaplSampler(Sampler):
    """CPU packages (+DRAM) of this machine as one device: rails per zone, total = their sum."""

    name = "rapl"
    _open_fd = staticmethod(os.open)  # replaceable in tests to simulate a permission error as root

    def __init__(self, device: str = "rapl", clock: Optional[Clock] = None, root: str = "/sys") -> None:
        Sampler.__init__(self, device, clock)
        self.root = root
        self._zones: List[_Zone] = []

    @classmethod
    def available(cls, root: str = "/sys", **kwargs: Any) -> Optional[str]:
        try:
            zones = find_zones(root)
        except SamplerUnavailable as exc:
            return str(exc)
        if not os.access(zones[0].path, os.R_OK):
            return "RAPL not readable by this user: " + FIX_PERMISSION
        return None

    @classmethod
    def devices(cls, root: str = "/sys", **kwargs: Any) -> List[Dict[str, Any]]:
        if cls.available(root=root) is not None:
            return []
        return [{"id": "rapl", "sampler": cls.name, "name": "CPU packages (RAPL)", "hardware_id": None}]

    def open(self) -> None:
        if self._zones:
            return
        zones = find_zones(self.root)
        try:
            for z in zones:
                z.fd = self._open_fd(z.path, os.O_RDONLY)
                z.prev_uj = z.total_uj = self._raw(z)
        except PermissionError:
            self._close_fds(zones)
            raise SamplerPermission("cannot read {}: {}".format(zones[0].path, FIX_PERMISSION)) from None
        except (OSError, ValueError) as exc:
            self._close_fds(zones)
            raise SamplerError("cannot read RAPL counter: {}".format(exc)) from None
        t0 = self.clock()
        for z in zones:
            z.prev_t = t0
        self._zones = zones

    @staticmethod
    def _raw(z: _Zone) -> int:
        os.lseek(z.fd, 0, os.SEEK_SET)
        return int(os.read(z.fd, 32))

    def read(self) -> Reading:
        t = self.clock()
        rails: Dict[str, Optional[float]] = {}
        for z in self._zones:
            try:
                now = self._raw(z)
            except (OSError, ValueError):
                rails[z.rail] = None
                continue
            dt = t - z.prev_t
            if dt <= 0:
                rails[z.rail] = None  # two reads at one instant: no rate; the delta counts next time
                continue
            delta = unwrap_delta(z.prev_uj, now, z.max_uj)
            z.total_uj += delta
            z.prev_uj, z.prev_t = now, t
            rails[z.rail] = delta * 1e-6 / dt
        values = list(rails.values())
        total = (
            None if not values or any(v is None for v in values) else sum(v for v in values if v is not None)
        )
        energy_j = sum(z.total_uj for z in self._zones) * 1e-6 if self._zones else None
        return Reading(t, rails, total, energy_j)

    @staticmethod
    def _close_fds(zones: List[_Zone]) -> None:
        for z in zones:
            if z.fd >= 0:
                try:
                    os.close(z.fd)
                except OSError:
                    pass
                z.fd = -1

    def close(self) -> None:
        zones, self._zones = self._zones, []
        self._close_fds(zones)

    def describe(self) -> Dict[str, Any]:
        rails = [z.rail for z in self._zones]
        return {
            "name": self.name,
            "device": self.device,
            "rails": rails,
            "total_rail": None,
            "total_rule": "sum of RAPL zones {} (psys/core/uncore excluded: nested)".format("+".join(rails)),
            "resolution_w": None,  # 1 uJ counter; watts depend on the interval
            "min_interval_ms": 10,
            "check_cmd": "sudo cat {}".format(
                self._zones[0].path if self._zones else self.root + "/" + _ZONES
            ),
            "notes": [
                "power = delta energy_uj / delta t between reads; energy_j is the unwrapped counter",
                "RAPL covers the CPU package and DRAM controller, not DRAM chips, disks, fans or PSU",
                "a counter wrap is detected once per read; wraps take hours at package power",
            ],
        }
