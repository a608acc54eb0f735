"""Jetson power through jetson-stats (`jtop`) when its service runs: a fallback after ina3221 and
tegrastats, for boards where the agent can reach neither.

jtop >= 4.2: `jetson.power` = {'rail': {NAME: {'power': mW, 'online': bool, ...}}, 'tot': {'power': mW,
'name': VDD_IN|POM_5V_IN}} (tot = sum of rails when the board has no input rail). jtop <= 4.1: a tuple
(total, {NAME: {'cur': mW, 'avg': mW}}). jtop's `avg` is a smoother, never used. The service sets one
interval for all clients (>= 500 ms advised). Facts: reference/power-sources.md §2.1. Python 3.6.
"""

import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from agents.samplers.base import Clock, Reading, Sampler, SamplerError, SamplerUnavailable

JTOP_SOCKET = "/run/jtop.sock"
MIN_INTERVAL_MS = 500  # the maintainer's advice (jetson_stats issue #414)


def _load_factory(factory: Optional[Callable[..., Any]]) -> Callable[..., Any]:
    if factory is not None:
        return factory
    try:
        from jtop import jtop
    except ImportError:
        raise SamplerUnavailable("jetson-stats not installed: sudo pip3 install -U jetson-stats") from None
    return jtop


def parse_power(power: Any) -> Tuple[Dict[str, Optional[float]], Optional[float], Optional[str]]:
    """jtop's `jetson.power` (either API) -> (rails in W, total W, name of the input rail or None)."""
    rails: Dict[str, Optional[float]] = {}
    if isinstance(power, dict):
        for name, rail in (power.get("rail") or {}).items():
            if "NC" in name.split("_") or not rail.get("online", True):
                continue
            mw = rail.get("power")
            rails[name] = mw / 1000.0 if mw is not None else None
        tot = power.get("tot") or {}
        total = tot.get("power")
        return rails, (total / 1000.0 if total is not None else None), tot.get("name")
    if isinstance(power, tuple) and len(power) == 2:  # jtop <= 4.1: (total, rails), values 'cur'
        total_d, rails_d = power
        for name, rail in (rails_d or {}).items():
            rails[name] = rail["cur"] / 1000.0 if rail.get("cur") is not None else None
        total = (total_d or {}).get("cur")
        return rails, (total / 1000.0 if total is not None else None), (total_d or {}).get("name")
    return rails, None, None


class JtopSampler(Sampler):
    """Latest values from the jtop service; reading time is when we asked (jtop gives none)."""

    name = "jtop"

    def __init__(
        self,
        device: str = "jetson",
        clock: Optional[Clock] = None,
        interval_ms: int = MIN_INTERVAL_MS,
        jtop: Optional[Callable[..., Any]] = None,
    ) -> None:
        Sampler.__init__(self, device, clock)
        self.interval_ms = max(MIN_INTERVAL_MS, int(interval_ms))
        self._factory = jtop
        self._jetson: Any = None
        self._rails: List[str] = []
        self._total_name: Optional[str] = None

    @classmethod
    def available(
        cls, jtop: Optional[Callable[..., Any]] = None, socket: str = JTOP_SOCKET, **kw: Any
    ) -> Optional[str]:
        try:
            _load_factory(jtop)
        except SamplerUnavailable as exc:
            return str(exc)
        if jtop is None and not os.path.exists(socket):
            return "jtop.service is not running ({} missing): sudo systemctl restart jtop.service".format(
                socket
            )
        return None

    def open(self) -> None:
        if self._jetson is not None:
            return
        factory = _load_factory(self._factory)
        jetson = factory(interval=self.interval_ms / 1000.0)
        try:
            jetson.start()
        except Exception as exc:  # JtopException: service down, no permission, version mismatch
            raise SamplerUnavailable(
                "jtop: {} (user must be in group jtop: sudo usermod -a -G jtop $USER)".format(
                    str(exc).replace("\n", " ")
                )
            ) from None
        self._jetson = jetson
        rails, _total, self._total_name = parse_power(jetson.power)
        self._rails = list(rails)

    def read(self) -> Reading:
        jetson = self._jetson
        if jetson is None:
            raise SamplerError("jtop sampler read before open()")
        t = self.clock()
        try:
            running = jetson.ok(spin=True)  # non-blocking; re-raises an error of jtop's reader thread
        except Exception as exc:
            raise SamplerError("jtop client failed: {}".format(exc)) from None
        if not running:
            raise SamplerError("jtop client stopped (jtop.service gone?)")
        rails, total, _name = parse_power(jetson.power)
        return Reading(t, rails, total)

    def close(self) -> None:
        jetson, self._jetson = self._jetson, None
        if jetson is not None:
            try:
                jetson.close()
            except Exception:  # the service may already be gone; nothing left to release
                pass

    def describe(self) -> Dict[str, Any]:
        if self._total_name:
            rule = "{} (module input rail, via jtop)".format(self._total_name)
        else:
            rule = "sum of rails {} (computed by jtop; no input rail on this board)".format(
                "+".join(self._rails)
            )
        return {
            "name": self.name,
            "device": self.device,
            "rails": list(self._rails),
            "total_rail": self._total_name,
            "total_rule": rule,
            "resolution_w": 0.001,
            "min_interval_ms": MIN_INTERVAL_MS,
            "check_cmd": "jtop",
            "notes": [
                "jtop service fallback; its interval is shared by all clients (>= 500 ms advised)",
                "readings are jtop's latest values, timed when read; jtop's 'avg' (a smoother) is not used",
            ],
        }
