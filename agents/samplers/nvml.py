"""NVIDIA GPU power and energy through NVML (`import pynvml`, from the nvidia-ml-py package).

Power: the field API NVML_FI_DEV_POWER_INSTANT (186) where the driver supports it, else
nvmlDeviceGetPowerUsage (mW; a 1 s moving average on Ampere-except-GA100 and newer). Energy: the
cumulative counter nvmlDeviceGetTotalEnergyConsumption (mJ since driver load, Volta+) as energy_j.
Every GPU is its own device `nvml:<index>`; a MIG instance `nvml:<index>/mig<k>` reads its parent GPU,
because NVML cannot measure a slice. pynvml is imported lazily, or injected (`nvml=`) by tests.
Python 3.6 compatible. Facts: reference/power-sources.md §1.
"""

import os
from typing import Any, Dict, List, Optional, Tuple

from agents.samplers.base import Clock, Reading, Sampler, SamplerError, SamplerUnavailable

FI_POWER_INSTANT = 186  # NVML_FI_DEV_POWER_INSTANT in nvml.h / pynvml
SCOPE_MODULE = 1  # NVML_POWER_SCOPE_MODULE: GPU + Grace CPU on C2C superchips, where GPU scope is unsupported
# Field requests tried in order (Zeus does the same): GPU scope (the default), then module scope.
_INSTANT_FIELDS: List[Any] = [FI_POWER_INSTANT, (FI_POWER_INSTANT, SCOPE_MODULE)]
TEGRA_RELEASE = "/etc/nv_tegra_release"

# (substrings all in the lower-cased NVML name, min GiB, max GiB, hardware id). First match wins.
_HARDWARE_IDS: List[Tuple[Tuple[str, ...], float, float, str]] = [
    (("h200", "nvl"), 0, 1e9, ""),  # no profile id for the NVL variant: unknown, not mislabelled
    (("h200",), 0, 1e9, "h200-sxm-141gb"),
    (("h100", "nvl"), 0, 1e9, ""),
    (("h100", "pcie"), 0, 1e9, "h100-pcie-80gb"),
    (("h100",), 70, 90, "h100-sxm5-80gb"),  # "NVIDIA H100 80GB HBM3" is the SXM5 part
    (("a100", "pcie"), 0, 48, "a100-pcie-40gb"),
    (("a100", "pcie"), 48, 1e9, "a100-pcie-80gb"),
    (("a100", "sxm"), 0, 48, "a100-sxm4-40gb"),
    (("a100", "sxm"), 48, 1e9, "a100-sxm4-80gb"),
    (("l40s",), 0, 1e9, "l40s"),
    (("tesla t4",), 0, 1e9, "tesla-t4"),
]


def hardware_id_for(name: str, memory_bytes: Optional[int]) -> Optional[str]:
    """Map an NVML device name (+ memory size) to a wattlab hardware id where it is unambiguous."""
    low = name.lower()
    gib = (memory_bytes or 0) / float(1 << 30)
    for parts, lo, hi, hw in _HARDWARE_IDS:
        if all(p in low for p in parts) and (memory_bytes is None or lo <= gib < hi):
            return hw or None
    return None


def parse_device(device: str) -> Tuple[int, Optional[int]]:
    """`nvml:<i>` or `nvml:<i>/mig<k>` (or a bare index) -> (gpu index, mig index or None)."""
    spec = device[5:] if device.startswith("nvml:") else device
    gpu, _sep, mig = spec.partition("/")
    try:
        index = int(gpu)
        mig_index = int(mig[3:]) if mig.startswith("mig") else None
    except ValueError:
        raise SamplerUnavailable(
            "bad NVML device id {!r}: expected nvml:<index> or nvml:<index>/mig<k>".format(device)
        ) from None
    if mig and mig_index is None:
        raise SamplerUnavailable("bad NVML device id {!r}: expected nvml:<index>/mig<k>".format(device))
    return index, mig_index


def _load(nvml: Any) -> Any:
    if nvml is not None:
        return nvml
    try:
        import pynvml
    except ImportError:
        raise SamplerUnavailable("NVML bindings not installed: pip install nvidia-ml-py") from None
    return pynvml


def _text(value: Any) -> str:
    # Old bindings return bytes, new ones str.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _mig_handles(nvml: Any, handle: Any) -> List[int]:
    """Indices of populated MIG instances of a GPU in MIG mode, [] otherwise."""
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except (nvml.NVMLError, AttributeError):
        return []
    if current != 1:
        return []
    found: List[int] = []
    for k in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, k)
        except nvml.NVMLError:
            continue  # slot not populated
        found.append(k)
    return found


class NvmlSampler(Sampler):
    """One NVIDIA GPU (or the parent GPU of a MIG instance): board power + NVML energy counter."""

    name = "nvml"

    def __init__(self, device: str = "nvml:0", clock: Optional[Clock] = None, nvml: Any = None) -> None:
        Sampler.__init__(self, device, clock)
        self.index, self.mig = parse_device(device)
        self._nvml_given = nvml
        self._nvml: Any = None
        self._handle: Any = None
        self._field: Any = None  # the instant-power field request that works on this GPU, if any
        self._has_energy = False
        self.gpu_name = ""
        self.memory_bytes: Optional[int] = None

    @classmethod
    def available(cls, nvml: Any = None, tegra_release: str = TEGRA_RELEASE, **kwargs: Any) -> Optional[str]:
        if os.path.exists(tegra_release):
            return "Jetson: NVML reports no power here (use the `jetson` device)"
        try:
            mod = _load(nvml)
        except SamplerUnavailable as exc:
            return str(exc)
        try:
            mod.nvmlInit()
        except Exception as exc:  # NVMLError, or OSError when libnvidia-ml.so is absent
            return "NVML did not initialise ({}): no NVIDIA driver?".format(exc)
        try:
            if mod.nvmlDeviceGetCount() == 0:
                return "NVML found no NVIDIA GPU"
        finally:
            mod.nvmlShutdown()
        return None

    @classmethod
    def devices(
        cls, nvml: Any = None, tegra_release: str = TEGRA_RELEASE, **kwargs: Any
    ) -> List[Dict[str, Any]]:
        if cls.available(nvml=nvml, tegra_release=tegra_release) is not None:
            return []
        mod = _load(nvml)
        mod.nvmlInit()
        out: List[Dict[str, Any]] = []
        try:
            for i in range(mod.nvmlDeviceGetCount()):
                h = mod.nvmlDeviceGetHandleByIndex(i)
                name = _text(mod.nvmlDeviceGetName(h))
                try:
                    mem: Optional[int] = int(mod.nvmlDeviceGetMemoryInfo(h).total)
                except mod.NVMLError:
                    mem = None
                hw = hardware_id_for(name, mem)
                out.append({"id": "nvml:{}".format(i), "sampler": cls.name, "name": name, "hardware_id": hw})
                for k in _mig_handles(mod, h):
                    out.append(
                        {
                            "id": "nvml:{}/mig{}".format(i, k),
                            "sampler": cls.name,
                            "name": "{} MIG {} (power of the whole GPU)".format(name, k),
                            "hardware_id": hw,
                        }
                    )
        finally:
            mod.nvmlShutdown()
        return out

    def open(self) -> None:
        if self._handle is not None:
            return
        mod = _load(self._nvml_given)
        try:
            mod.nvmlInit()
        except Exception as exc:
            raise SamplerUnavailable("NVML did not initialise ({}): no NVIDIA driver?".format(exc)) from None
        self._nvml = mod
        try:
            count = mod.nvmlDeviceGetCount()
            if not 0 <= self.index < count:
                raise SamplerUnavailable(
                    "no NVIDIA GPU {} (NVML sees {}: nvml:0..nvml:{})".format(self.index, count, count - 1)
                )
            handle = mod.nvmlDeviceGetHandleByIndex(self.index)
            self.gpu_name = _text(mod.nvmlDeviceGetName(handle))
            try:
                self.memory_bytes = int(mod.nvmlDeviceGetMemoryInfo(handle).total)
            except mod.NVMLError:
                self.memory_bytes = None
            if self.mig is not None and self.mig not in _mig_handles(mod, handle):
                raise SamplerUnavailable("GPU {} has no MIG instance {}".format(self.index, self.mig))
            self._field = next(
                (f for f in _INSTANT_FIELDS if self._instant_power(mod, handle, f) is not None), None
            )
            if self._field is None:
                try:
                    mod.nvmlDeviceGetPowerUsage(handle)
                except mod.NVMLError as exc:
                    raise SamplerUnavailable(
                        "GPU {} reports no power through NVML: {}".format(self.index, exc)
                    ) from None
            try:
                mod.nvmlDeviceGetTotalEnergyConsumption(handle)
                self._has_energy = True
            except mod.NVMLError:
                self._has_energy = False  # pre-Volta: no counter, energy comes from integration only
        except SamplerError:
            mod.nvmlShutdown()
            raise
        self._handle = handle

    @staticmethod
    def _instant_power(mod: Any, handle: Any, field: Any) -> Optional[float]:
        try:
            value = mod.nvmlDeviceGetFieldValues(handle, [field])[0]
        except (mod.NVMLError, AttributeError, TypeError):  # TypeError: old bindings take no scope tuple
            return None
        if value.nvmlReturn != 0:
            return None
        return value.value.uiVal / 1000.0

    def read(self) -> Reading:
        mod, h = self._nvml, self._handle
        if h is None:
            raise SamplerError("NVML sampler read before open()")
        t = self.clock()
        watts: Optional[float]
        if self._field is not None:
            watts = self._instant_power(mod, h, self._field)
        else:
            try:
                watts = mod.nvmlDeviceGetPowerUsage(h) / 1000.0
            except mod.NVMLError:
                watts = None
        energy_j: Optional[float] = None
        if self._has_energy:
            try:
                energy_j = mod.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0
            except mod.NVMLError:
                energy_j = None
        return Reading(t, {"board": watts}, watts, energy_j)

    def close(self) -> None:
        if self._handle is not None:
            self._handle = None
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # shutting down a driver that went away: nothing left to release
                pass

    def describe(self) -> Dict[str, Any]:
        notes = [
            "NVML board power of {} (GPU, its memory and circuitry; not host, PSU or wall)".format(
                self.gpu_name or "GPU {}".format(self.index)
            ),
            "sensor refreshes about every 100 ms; accuracy +/- 5 W per NVIDIA",
        ]
        if self._field == FI_POWER_INSTANT:
            notes.append("power: field NVML_FI_DEV_POWER_INSTANT (186), instantaneous")
        elif self._field is not None:
            notes.append(
                "power: field NVML_FI_DEV_POWER_INSTANT (186) at MODULE scope (GPU scope unsupported): "
                "on a Grace superchip this includes the Grace CPU"
            )
        else:
            notes.append(
                "power: nvmlDeviceGetPowerUsage, a 1 s moving average on Ampere (except GA100) and newer: "
                "it blurs short bursts"
            )
        if self._has_energy:
            notes.append("energy_j: nvmlDeviceGetTotalEnergyConsumption counter (mJ since driver load)")
        else:
            notes.append("no NVML energy counter on this GPU (pre-Volta): energy from integrated power only")
        if self.mig is not None:
            notes.append(
                "NVML cannot measure a MIG slice: this is the whole GPU, shared by all its instances"
            )
        return {
            "name": self.name,
            "device": self.device,
            "hardware_id": hardware_id_for(self.gpu_name, self.memory_bytes) if self.gpu_name else None,
            "rails": ["board"],
            "total_rail": "board",
            "total_rule": "board (NVML power of the whole GPU board)",
            "resolution_w": 0.001,
            "min_interval_ms": 50,
            "check_cmd": "nvidia-smi --query-gpu=power.draw.instant,power.draw --format=csv -lms 100 -i "
            + str(self.index),
            "notes": notes,
        }
