"""A deterministic simulated device for any hardware id: the reference sampler.

Power follows the workload: set_load(level in [0, 1]) moves a target, and the device's load level
follows it with a first-order response (time constant tau_s), so
    P(t) = idle_w + (load_w - idle_w) * L(t),   L' = (target - L) / tau_s.
The `energy_j` counter is the exact integral of that noiseless P (or, with `shape=`, a fine Simpson
integral of shape(t)), so tests can compare integration against it. Noise is seeded Gaussian,
relative to the current power. Python 3.6 compatible.
"""

import math
import random
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from agents.samplers.base import Clock, Reading, Sampler

# TDP (W) per hardware id: /work/shared/reference/lca-data.md §1 "GPU hardware table" (TechPowerUp /
# NVIDIA datasheets; Jetsons at their highest power mode). The agent cannot read profiles/, hence a copy.
SIM_HARDWARE: Dict[str, Tuple[float, str]] = {
    "jetson-agx-orin-64gb": (60.0, "agx-orin"),
    "jetson-agx-orin-32gb": (40.0, "agx-orin"),
    "jetson-agx-xavier-32gb": (30.0, "agx-xavier"),
    "jetson-agx-xavier-16gb": (30.0, "agx-xavier"),
    "jetson-orin-nx-16gb": (25.0, "vdd-in"),
    "jetson-orin-nano-8gb": (15.0, "vdd-in"),
    "jetson-nano": (10.0, "nano"),
    "jetson-tx2": (15.0, "vdd-in"),
    "a100-pcie-40gb": (250.0, "gpu"),
    "a100-pcie-80gb": (300.0, "gpu"),
    "a100-sxm4-40gb": (400.0, "gpu"),
    "a100-sxm4-80gb": (400.0, "gpu"),
    "h100-pcie-80gb": (350.0, "gpu"),
    "h100-sxm5-80gb": (700.0, "gpu"),
    "h200-sxm-141gb": (700.0, "gpu"),
    "l40s": (350.0, "gpu"),
    "tesla-t4": (70.0, "gpu"),
}
GENERIC_TDP_W = 100.0

# Simulation assumptions, not measurements: idle draws 15 % of TDP, full load 90 % of TDP.
IDLE_FRACTION = 0.15
LOAD_FRACTION = 0.90

# Rails per board family, as fractions of the device total (assumed splits; names as the real
# boards print them so plots and total rules look alike). `None` marks the input rail = total.
_RAILS: Dict[str, List[Tuple[str, Optional[float]]]] = {
    "agx-orin": [
        ("VDD_GPU_SOC", 0.45),
        ("VDD_CPU_CV", 0.20),
        ("VIN_SYS_5V0", 0.25),
        ("VDDQ_VDD2_1V8AO", 0.10),
    ],
    "agx-xavier": [
        ("GPU", 0.35),
        ("CPU", 0.20),
        ("SOC", 0.20),
        ("CV", 0.05),
        ("VDDRQ", 0.05),
        ("SYS5V", 0.15),
    ],
    "vdd-in": [("VDD_IN", None), ("VDD_CPU_GPU_CV", 0.55), ("VDD_SOC", 0.25)],
    "nano": [("POM_5V_IN", None), ("POM_5V_GPU", 0.35), ("POM_5V_CPU", 0.30)],
    "gpu": [("board", None)],
}

_SIMPSON_STEPS = 8  # even; exact for cubics, ~1e-7 relative on a 1 Hz sine sampled at 10 Hz


def hardware_of(device: str) -> str:
    """`sim:<hardware-id>` -> hardware id (a bare id is accepted as is)."""
    return device[4:] if device.startswith("sim:") else device


class SimSampler(Sampler):
    """Synthetic power of one device; deterministic for a given seed and sequence of clock values."""

    name = "sim"

    def __init__(
        self,
        device: str = "sim:jetson-agx-orin-64gb",
        clock: Optional[Clock] = None,
        seed: int = 0,
        tdp_w: Optional[float] = None,
        idle_w: Optional[float] = None,
        load_w: Optional[float] = None,
        noise: float = 0.02,
        tau_s: float = 0.25,
        shape: Optional[Callable[[float], float]] = None,
    ) -> None:
        Sampler.__init__(self, device, clock)
        self.hardware_id = hardware_of(device)
        known = SIM_HARDWARE.get(self.hardware_id)
        self.known = known is not None
        table_tdp, family = known if known is not None else (GENERIC_TDP_W, "gpu")
        self.tdp_w = float(tdp_w) if tdp_w is not None else table_tdp
        self.idle_w = float(idle_w) if idle_w is not None else IDLE_FRACTION * self.tdp_w
        self.load_w = float(load_w) if load_w is not None else LOAD_FRACTION * self.tdp_w
        self.family = family
        self._given = {"tdp_w": tdp_w is not None, "idle_w": idle_w is not None, "load_w": load_w is not None}
        self.noise = max(0.0, float(noise))
        self.tau_s = max(0.0, float(tau_s))
        self.shape = shape
        self.seed = seed
        self._rng = random.Random(seed)
        # set_load() comes from the workload thread, read() from the sampling thread.
        self._lock = threading.Lock()
        self._opened = False
        self._t0 = 0.0
        self._t_ref = 0.0  # start of the current response segment
        self._level_ref = 0.0  # load level at _t_ref
        self._target = 0.0
        self._t_acc = 0.0  # energy integrated up to here
        self._energy_j = 0.0

    @classmethod
    def available(cls, **kwargs: Any) -> Optional[str]:
        return None

    def open(self) -> None:
        if self._opened:
            return
        t = self.clock()
        self._t0 = self._t_ref = self._t_acc = t
        self._opened = True

    # --- the model (pure in t) ----------------------------------------------------------
    def level_at(self, t: float) -> float:
        """Load level in [0, 1] at clock time t (t >= the last set_load)."""
        if self.tau_s == 0:
            return self._target
        return self._target + (self._level_ref - self._target) * math.exp(-(t - self._t_ref) / self.tau_s)

    def power_at(self, t: float) -> float:
        """Noiseless device power (W) at clock time t."""
        if self.shape is not None:
            return float(self.shape(t - self._t0))
        return self.idle_w + (self.load_w - self.idle_w) * self.level_at(t)

    def _energy_between(self, a: float, b: float) -> float:
        dt = b - a
        if dt <= 0:
            return 0.0
        if self.shape is not None:
            h = dt / _SIMPSON_STEPS
            s = self.power_at(a) + self.power_at(b)
            for i in range(1, _SIMPSON_STEPS):
                s += (4 if i % 2 else 2) * self.power_at(a + i * h)
            return s * h / 3.0
        # Integral of the first-order response over [a, b], both inside one segment.
        if self.tau_s == 0:
            mean_level = self._target
        else:
            la = self.level_at(a)
            mean_level = (
                self._target + (la - self._target) * self.tau_s * (1 - math.exp(-dt / self.tau_s)) / dt
            )
        return (self.idle_w + (self.load_w - self.idle_w) * mean_level) * dt

    def _advance(self, t: float) -> None:
        if t > self._t_acc:
            self._energy_j += self._energy_between(self._t_acc, t)
            self._t_acc = t

    # --- Sampler ------------------------------------------------------------------------
    def set_load(self, level: float) -> None:
        with self._lock:
            if not self._opened:  # before open(): the device simply starts at this load
                self._target = self._level_ref = min(1.0, max(0.0, float(level)))
                return
            t = self.clock()
            self._advance(t)
            self._level_ref = self.level_at(t)
            self._t_ref = t
            self._target = min(1.0, max(0.0, float(level)))

    def read(self) -> Reading:
        if not self._opened:
            self.open()  # energy counts from the first use, never from clock zero
        with self._lock:
            t = self.clock()
            self._advance(t)
            watts = self.power_at(t)
            energy_j = self._energy_j
            if self.noise > 0:
                watts = max(0.0, watts * (1.0 + self._rng.gauss(0.0, self.noise)))
        rails: Dict[str, Optional[float]] = {}
        for rail, fraction in _RAILS[self.family]:
            rails[rail] = watts if fraction is None else watts * fraction
        return Reading(t, rails, watts, energy_j)

    def close(self) -> None:
        self._opened = False

    def describe(self) -> Dict[str, Any]:
        rails = _RAILS[self.family]
        input_rail = next((r for r, f in rails if f is None), None)
        if input_rail is not None:
            rule = "{} (simulated input rail)".format(input_rail)
        else:
            rule = "sum of rails {} (no input rail on this board; simulated)".format(
                "+".join(r for r, _ in rails)
            )
        notes = [
            "simulated device, not a measurement",
            "TDP {:.0f} W ({})".format(
                self.tdp_w, "given" if self._given["tdp_w"] else "built-in table, reference/lca-data.md"
            ),
            "idle {:.1f} W ({})".format(
                self.idle_w,
                "given"
                if self._given["idle_w"]
                else "simulation assumption: {:.0f} % of TDP".format(IDLE_FRACTION * 100),
            ),
            "full load {:.1f} W ({})".format(
                self.load_w,
                "given"
                if self._given["load_w"]
                else "simulation assumption: {:.0f} % of TDP".format(LOAD_FRACTION * 100),
            ),
            "load follows set_load(), first-order response tau {:.2f} s; noise {:.1f} % (seed {})".format(
                self.tau_s, self.noise * 100, self.seed
            ),
            "energy_j is the exact integral of the noiseless power",
        ]
        if not self.known:
            notes.append(
                "unknown hardware id {!r}: generic device ({}one 'board' rail)".format(
                    self.hardware_id, "" if self._given["tdp_w"] else "TDP {:.0f} W, ".format(GENERIC_TDP_W)
                )
            )
        if self.shape is not None:
            notes.append("power given by a shape function of time")
        return {
            "name": self.name,
            "device": self.device,
            "hardware_id": self.hardware_id,
            "rails": [r for r, _ in rails],
            "total_rail": input_rail,
            "total_rule": rule,
            "resolution_w": None,
            "min_interval_ms": 1,
            "check_cmd": None,
            "notes": notes,
        }
