"""Device ids -> samplers. Importing this module imports no optional third-party package.

Device ids (docs/ARCHITECTURE.md): `sim:<hardware-id>` (always), `nvml:<i>` / `nvml:<i>/mig<k>`,
`jetson` (ina3221, then tegrastats, then jtop), `rapl`, `none` (time only).
Python 3.6 compatible.
"""

import inspect
from typing import Any, Dict, List, Optional, Tuple, Type

from agents.samplers.base import Clock, Sampler, SamplerError, SamplerPermission, SamplerUnavailable
from agents.samplers.ina3221 import Ina3221Sampler
from agents.samplers.jtop import JtopSampler
from agents.samplers.none import NoneSampler
from agents.samplers.nvml import NvmlSampler
from agents.samplers.rapl import RaplSampler
from agents.samplers.sim import SimSampler
from agents.samplers.tegrastats import TegrastatsSampler

SAMPLERS: Dict[str, Type[Sampler]] = {
    "sim": SimSampler,
    "ina3221": Ina3221Sampler,
    "tegrastats": TegrastatsSampler,
    "jtop": JtopSampler,
    "nvml": NvmlSampler,
    "rapl": RaplSampler,
    "none": NoneSampler,
}
JETSON_ORDER = ("ina3221", "tegrastats", "jtop")  # cheapest and most direct first
DEVICE_FORMS = "sim:<hardware-id>, nvml:<index>[/mig<k>], jetson, rapl, none"


def _accepted(cls: Type[Sampler], opts: Dict[str, Any]) -> Dict[str, Any]:
    """The options this sampler's constructor takes (others are meant for another source)."""
    params = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in opts.items() if k in params and k not in ("self", "device", "clock")}


def _build(name: str, device: str, interval_ms: int, clock: Optional[Clock], opts: Dict[str, Any]) -> Sampler:
    cls = SAMPLERS[name]
    kwargs = _accepted(cls, dict(opts, interval_ms=interval_ms))
    sampler = cls(device, clock, **kwargs)
    sampler.open()
    return sampler


def open_sampler(
    device_id: str, interval_ms: int = 100, clock: Optional[Clock] = None, **opts: Any
) -> Sampler:
    """An OPENED sampler for `device_id` (the caller closes it). `sampler=NAME` forces a source;
    other options go to the samplers that take them (root=, binary=, nvml=, jtop=, seed=, ...).
    Raises SamplerUnavailable naming what exists, SamplerPermission, or SamplerError."""
    forced = opts.pop("sampler", None)
    known = set()
    for cls in SAMPLERS.values():
        known.update(inspect.signature(cls.__init__).parameters)
    unknown = sorted(set(opts) - known)
    if unknown:  # a typo would otherwise be dropped silently by every sampler
        raise TypeError("open_sampler: no sampler takes option(s) {}".format(", ".join(unknown)))
    if forced is not None and forced not in SAMPLERS:
        raise SamplerUnavailable("unknown sampler {!r}; samplers: {}".format(forced, ", ".join(SAMPLERS)))
    if device_id.startswith("sim:") and len(device_id) > 4:
        return _build(forced or "sim", device_id, interval_ms, clock, opts)
    if device_id.startswith("nvml:"):
        return _build(forced or "nvml", device_id, interval_ms, clock, opts)
    if device_id in ("rapl", "none"):
        return _build(forced or device_id, device_id, interval_ms, clock, opts)
    if device_id == "jetson":
        return _open_jetson(forced, interval_ms, clock, opts)
    raise SamplerUnavailable("unknown device {!r}; device ids: {}".format(device_id, DEVICE_FORMS))


def _open_jetson(
    forced: Optional[str], interval_ms: int, clock: Optional[Clock], opts: Dict[str, Any]
) -> Sampler:
    if forced is not None:
        return _build(forced, "jetson", interval_ms, clock, opts)
    reasons: List[str] = []
    permission: Optional[SamplerError] = None
    for name in JETSON_ORDER:
        try:
            return _build(name, "jetson", interval_ms, clock, opts)
        except SamplerError as exc:
            reasons.append("{}: {}".format(name, exc))
            if permission is None and isinstance(exc, SamplerPermission):
                permission = exc
    if permission is not None:
        raise permission
    raise SamplerUnavailable("no Jetson power source works here ({})".format("; ".join(reasons)))


def probe(**opts: Any) -> Tuple[Dict[str, Optional[str]], List[Dict[str, Any]]]:
    """({sampler name: None if usable here else the reason}, [devices found]).

    `sim` is always usable; devices list real devices and one `sim:<hardware-id>` template entry.
    """
    samplers: Dict[str, Optional[str]] = {}
    devices: List[Dict[str, Any]] = []
    for name, cls in SAMPLERS.items():
        kw = _probe_opts(cls, opts)
        try:
            samplers[name] = cls.available(**kw)
        except Exception as exc:  # a probe must never take the agent down; report the source broken
            samplers[name] = "probe failed: {}".format(exc)
    seen = set()
    for name in ("nvml", *JETSON_ORDER, "rapl"):
        if samplers.get(name) is not None:
            continue
        try:
            found = SAMPLERS[name].devices(**_probe_opts(SAMPLERS[name], opts))
        except Exception as exc:
            samplers[name] = "device listing failed: {}".format(exc)
            continue
        for dev in found:
            if dev["id"] not in seen:  # `jetson` once, from the preferred source
                seen.add(dev["id"])
                devices.append(dev)
    devices.append(
        {
            "id": "sim:<hardware-id>",
            "sampler": "sim",
            "name": "simulated device: any hardware id works, e.g. sim:jetson-agx-orin-64gb",
            "hardware_id": None,
        }
    )
    devices.append({"id": "none", "sampler": "none", "name": "time only (no power)", "hardware_id": None})
    return samplers, devices


def _probe_opts(cls: Type[Sampler], opts: Dict[str, Any]) -> Dict[str, Any]:
    params = inspect.signature(cls.available).parameters
    return {k: v for k, v in opts.items() if k in params}
