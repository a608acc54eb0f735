"""Fake sysfs trees in a temporary directory, for the ina3221 and rapl samplers (and any other test),
and FakeClock, the hand-driven monotonic clock the sampler tests share.

Layouts follow reference/power-sources.md §2.5 (INA3221) and §4 (powercap). Values are written in
place (same inode), as sysfs would present a new value, so descriptors kept open see the change.
Python 3.6 compatible, stdlib only.
"""

import os
from typing import Dict, List, Optional, Sequence, Tuple


def write_value(path: str, value: object) -> None:
    """Overwrite one sysfs-like file in place with `value` and a newline."""
    with open(path, "w") as f:
        f.write("{}\n".format(value))


def _mkfile(path: str, value: object) -> str:
    d = os.path.dirname(path)
    if not os.path.isdir(d):
        os.makedirs(d)
    write_value(path, value)
    return path


def make_jp4_tree(
    root: str, rails: Sequence[Tuple[str, int]], bus: str = "6-0040", iio: int = 0
) -> Dict[str, str]:
    """JetPack 4 iio `ina3221x`: rail_name_<k> + in_power<k>_input (mW) for each (name, mW).

    Returns {rail name: path of its in_power file} (use write_value to change a reading).
    Voltage and current files are written too (5000 mV, current to match) like the real driver.
    """
    d = os.path.join(root, "bus/i2c/drivers/ina3221x", bus, "iio:device{}".format(iio))
    out: Dict[str, str] = {}
    for k, (name, mw) in enumerate(rails):
        _mkfile(os.path.join(d, "rail_name_{}".format(k)), name)
        out[name] = _mkfile(os.path.join(d, "in_power{}_input".format(k)), mw)
        _mkfile(os.path.join(d, "in_voltage{}_input".format(k)), 5000)
        _mkfile(os.path.join(d, "in_current{}_input".format(k)), int(mw * 1000 // 5000))
    return out


def make_jp5_tree(
    root: str,
    rails: Sequence[Tuple[str, int, int]],
    bus: str = "1-0040",
    hwmon: int = 3,
    with_sum_channel: bool = True,
) -> Dict[str, Tuple[str, str]]:
    """JetPack 5+ hwmon `ina3221`: in<k>_label, in<k>_input (mV), curr<k>_input (mA), k from 1,
    for each (label, mV, mA); plus the in7 "sum of shunt voltages" channel unless told not to.

    Returns {label: (in<k>_input path, curr<k>_input path)}.
    """
    d = os.path.join(root, "bus/i2c/drivers/ina3221", bus, "hwmon", "hwmon{}".format(hwmon))
    _mkfile(os.path.join(d, "name"), "ina3221")
    out: Dict[str, Tuple[str, str]] = {}
    for k, (label, mv, ma) in enumerate(rails, start=1):
        _mkfile(os.path.join(d, "in{}_label".format(k)), label)
        vin = _mkfile(os.path.join(d, "in{}_input".format(k)), mv)
        cur = _mkfile(os.path.join(d, "curr{}_input".format(k)), ma)
        _mkfile(os.path.join(d, "curr{}_max".format(k)), 20000)
        out[label] = (vin, cur)
    if with_sum_channel:
        _mkfile(os.path.join(d, "in7_label"), "sum of shunt voltages")
        _mkfile(os.path.join(d, "in7_input"), 120)
        _mkfile(os.path.join(d, "curr4_input"), 4000)
    return out


def make_rapl_tree(
    root: str, zones: Sequence[Tuple[str, str, int, int]], with_psys: bool = False
) -> Dict[str, str]:
    """powercap zones under class/powercap: (zone, name, energy_uj, max_energy_range_uj), e.g.
    ("intel-rapl:0", "package-0", 1000, 2**32) or ("intel-rapl:0:2", "dram", 5, 2**32).

    Returns {zone: path of its energy_uj}. with_psys adds an `intel-rapl:1` psys zone (to be ignored).
    """
    base = os.path.join(root, "class/powercap")
    out: Dict[str, str] = {}
    all_zones: List[Tuple[str, str, int, int]] = list(zones)
    if with_psys:
        all_zones.append(("intel-rapl:1", "psys", 7, 2**32))
    for zone, name, energy_uj, max_uj in all_zones:
        d = os.path.join(base, zone)
        _mkfile(os.path.join(d, "name"), name)
        out[zone] = _mkfile(os.path.join(d, "energy_uj"), energy_uj)
        _mkfile(os.path.join(d, "max_energy_range_uj"), max_uj)
    return out


class FakeClock(object):
    """A monotonic clock the test moves by hand: clock() reads it, tick(dt) advances it."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def tick(self, dt: float) -> float:
        self.t += dt
        return self.t


def set_rapl_energy(paths: Dict[str, str], zone: str, energy_uj: int, max_uj: Optional[int] = None) -> None:
    """Set a zone's counter (and optionally its max range) in a tree from make_rapl_tree."""
    write_value(paths[zone], energy_uj)
    if max_uj is not None:
        write_value(os.path.join(os.path.dirname(paths[zone]), "max_energy_range_uj"), max_uj)
