"""Jetson power straight from the INA3221 monitors in sysfs: the preferred Jetson source.

Two layouts (reference/power-sources.md §2.5):
  JP4 iio `ina3221x`: .../drivers/ina3221x/<bus>-00<addr>/iio:device<N>/rail_name_<k> + in_power<k>_input (mW)
  JP5+ hwmon `ina3221`: .../drivers/ina3221/<bus>-00<addr>/hwmon/hwmon<N>/in<k>_label + in<k>_input (mV)
                        x curr<k>_input (mA); no power file. The hwmon index varies, so it is globbed.
The sum channel (in7, "sum of shunt voltages") and `NC` channels are skipped. Rails are found once at
open(); read() only re-reads the value files through descriptors kept open (cheap enough for 1 kHz).
Python 3.6 compatible.
"""

import glob
import os
import re
from typing import Any, Dict, List, Optional, Tuple

from agents.samplers.base import Clock, Reading, Sampler, SamplerError, SamplerPermission, SamplerUnavailable
from agents.samplers.tegrastats import board_total, total_rail

# A rail: (name, files, divisor). Watts = product of the files' integers / divisor
#   JP4 in_power (mW): one file, 1000.  JP5 mV x mA: two files, 1e6. (A division rounds mW exactly.)
Rail = Tuple[str, List[str], float]

_JP4_GLOB = "bus/i2c/drivers/ina3221x/*/iio:device*/rail_name_*"
_JP5_GLOBS = (
    "bus/i2c/drivers/ina3221/*/hwmon/hwmon*/in*_label",
    "class/hwmon/hwmon*/in*_label",  # same chips through the class link; deduplicated by realpath
)
_LABEL_RE = re.compile(r"in(\d+)_label$")
_SUM_CHANNEL = 7


def _read_text(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _skip(name: str) -> bool:
    # jtop skips labels containing NC and the summation channel; empty labels are disabled inputs.
    return not name or name == "NC" or "NC" in name.split() or "sum of shunt" in name.lower()


def _jp4_rails(root: str) -> List[Rail]:
    rails: List[Rail] = []
    for name_file in sorted(glob.glob(os.path.join(root, _JP4_GLOB))):
        k = name_file.rsplit("_", 1)[1]
        name = _read_text(name_file)
        if _skip(name):
            continue
        d = os.path.dirname(name_file)
        power = os.path.join(d, "in_power{}_input".format(k))
        if os.path.exists(power):
            rails.append((name, [power], 1000.0))
        else:
            volt, curr = (
                os.path.join(d, "in_voltage{}_input".format(k)),
                os.path.join(d, "in_current{}_input".format(k)),
            )
            rails.append((name, [volt, curr], 1e6))
    return rails


def _is_ina3221_hwmon(d: str) -> bool:
    try:
        return _read_text(os.path.join(d, "name")) == "ina3221"
    except OSError:
        return False


def _jp5_rails(root: str) -> List[Rail]:
    rails: List[Rail] = []
    seen = set()
    for pattern in _JP5_GLOBS:
        for label in sorted(glob.glob(os.path.join(root, pattern))):
            d = os.path.dirname(label)
            if pattern.startswith("class/") and not _is_ina3221_hwmon(d):
                continue
            real = os.path.realpath(label)
            if real in seen:
                continue
            seen.add(real)
            m = _LABEL_RE.search(label)
            if m is None or int(m.group(1)) >= _SUM_CHANNEL:
                continue
            name = _read_text(label)
            if _skip(name):
                continue
            k = m.group(1)
            rails.append(
                (
                    name,
                    [os.path.join(d, "in{}_input".format(k)), os.path.join(d, "curr{}_input".format(k))],
                    1e6,
                )
            )
    return rails


def find_rails(root: str = "/sys") -> Tuple[str, List[Rail]]:
    """The layout ("jp4-iio" or "jp5-hwmon") and its rails; raises SamplerUnavailable when none."""
    rails = _jp4_rails(root)
    layout = "jp4-iio"
    if not rails:
        rails, layout = _jp5_rails(root), "jp5-hwmon"
    if not rails:
        raise SamplerUnavailable(
            "no INA3221 rails under {}/bus/i2c/drivers/ina3221x or .../ina3221 (not a Jetson?)".format(root)
        )
    return layout, _unique_names(rails)


def _unique_names(rails: List[Rail]) -> List[Rail]:
    # Two chips could label a channel alike; keep both, distinguishable.
    out: List[Rail] = []
    count: Dict[str, int] = {}
    for name, files, divisor in rails:
        count[name] = count.get(name, 0) + 1
        out.append((name if count[name] == 1 else "{}_{}".format(name, count[name]), files, divisor))
    return out


def _watts(files: List[str], divisor: float) -> float:
    value = 1
    for path in files:
        value *= int(_read_text(path))
    return value / divisor


def read_rails(root: str = "/sys") -> Dict[str, float]:
    """One reading of every INA3221 rail in watts (discovery included: for probes, not loops)."""
    _layout, rails = find_rails(root)
    return {name: _watts(files, divisor) for name, files, divisor in rails}


class Ina3221Sampler(Sampler):
    """Reads the rails found at open() through descriptors kept open; unreadable rails give None."""

    name = "ina3221"

    def __init__(self, device: str = "jetson", clock: Optional[Clock] = None, root: str = "/sys") -> None:
        Sampler.__init__(self, device, clock)
        self.root = root
        self.layout = ""
        self._rails: List[Tuple[str, List[int], float]] = []
        self._files: Dict[str, List[str]] = {}

    @classmethod
    def available(cls, root: str = "/sys", **kwargs: Any) -> Optional[str]:
        try:
            read_rails(root)
        except SamplerUnavailable as exc:
            return str(exc)
        except PermissionError as exc:
            return "INA3221 rails not readable: {}".format(exc)
        except (OSError, ValueError) as exc:
            return "INA3221 rails unreadable: {}".format(exc)
        return None

    @classmethod
    def devices(cls, root: str = "/sys", **kwargs: Any) -> List[Dict[str, Any]]:
        if cls.available(root=root) is not None:
            return []
        return [
            {
                "id": "jetson",
                "sampler": cls.name,
                "name": "Jetson module (INA3221 sysfs)",
                "hardware_id": None,
            }
        ]

    def open(self) -> None:
        if self._rails:
            return
        try:
            self.layout, rails = find_rails(self.root)
        except PermissionError as exc:
            raise SamplerPermission(
                "INA3221 sysfs not readable ({}): run the agent as root".format(exc)
            ) from None
        except (OSError, ValueError) as exc:
            raise SamplerError("INA3221 sysfs unreadable: {}".format(exc)) from None
        opened: List[Tuple[str, List[int], float]] = []
        try:
            for name, files, divisor in rails:
                opened.append((name, [os.open(p, os.O_RDONLY) for p in files], divisor))
                self._files[name] = files
        except OSError as exc:
            self._rails = opened
            self.close()
            raise SamplerError("cannot open INA3221 value file: {}".format(exc)) from None
        self._rails = opened

    def read(self) -> Reading:
        t = self.clock()
        rails: Dict[str, Optional[float]] = {}
        for name, fds, divisor in self._rails:
            try:
                value = 1
                for fd in fds:
                    # sysfs regenerates the value on a read from offset 0
                    os.lseek(fd, 0, os.SEEK_SET)
                    value *= int(os.read(fd, 32))
                rails[name] = value / divisor
            except (OSError, ValueError):
                rails[name] = None  # missing is not an error: this rail, this time
        total, _rule = board_total(rails)
        return Reading(t, rails, total)

    def close(self) -> None:
        rails, self._rails = self._rails, []
        for _name, fds, _divisor in rails:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def describe(self) -> Dict[str, Any]:
        names = [name for name, _fds, _divisor in self._rails]
        rail_map: Dict[str, Optional[float]] = {n: 0.0 for n in names}
        _total, rule = board_total(rail_map)
        first = self._files[names[0]][0] if names else self.root
        return {
            "name": self.name,
            "device": self.device,
            "rails": names,
            "total_rail": total_rail(rail_map),
            "total_rule": rule,
            # JP4: integer mW. JP5: integer mV x integer mA, i.e. about bus volts x 1 mA (~5 mW at 5 V).
            "resolution_w": 0.001 if self.layout == "jp4-iio" else 0.005,
            "min_interval_ms": 1,
            "check_cmd": "cat {}".format(first),
            "notes": [
                "INA3221 sysfs, {} layout; module rails only, the carrier board is not measured".format(
                    self.layout or "unknown"
                ),
                "values refresh at the chip's conversion/averaging time; faster polling repeats values",
            ],
        }
