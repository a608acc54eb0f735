"""The hardware profile lines shown on the device screen, read tolerantly from console.profiles.

The profile and impact modules land in parallel; until they do (or for a device without a
hardware id) the panel says what is missing instead of failing. No Textual here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

FIELDS = (  # (attribute, label, unit)
    ("vendor", "vendor", ""),
    ("category", "category", ""),
    ("arch", "arch", ""),
    ("year", "year", ""),
    ("die_mm2", "die", " mm²"),
    ("node_nm", "node", " nm"),
    ("foundry", "foundry", ""),
    ("memory_gb", "memory", " GB"),
    ("memory_type", "memory type", ""),
    ("tdp_w", "TDP", " W"),
    ("fp16_tensor_tflops", "FP16 tensor", " TFLOPS"),
    ("bandwidth_gb_s", "bandwidth", " GB/s"),
    ("pue_default", "default PUE", ""),
)


def _fmt(value: Any, unit: str) -> str:
    if isinstance(value, float):
        value = f"{value:g}"
    return f"{value}{unit}"


@lru_cache(maxsize=64)
def hardware_lines(hardware_id: str | None) -> tuple[tuple[str, str], ...]:
    """(label, value) pairs for a hardware id, ending with the embodied footprint; cached."""
    if not hardware_id:
        return (("profile", "no hardware id for this device"),)
    try:
        from console import profiles
    except ImportError:
        return (("profile", "console.profiles not available"),)
    try:
        hw = profiles.get_device(hardware_id)
    except Exception as exc:  # UsageError for an unknown id: show it, do not crash the screen
        return (("profile", str(exc).splitlines()[0]),)
    lines = [("name", str(getattr(hw, "name", hardware_id)))]
    for attr, label, unit in FIELDS:
        value = getattr(hw, attr, None)
        if value not in (None, ""):
            lines.append((label, _fmt(value, unit)))
    lines.append(("embodied", _embodied(hw, profiles)))
    return tuple(lines)


def _embodied(hw: Any, profiles: Any) -> str:
    try:
        from console import impact

        interval = impact.embodied_kg(hw, profiles.load_embodied())
    except Exception as exc:  # missing module or data: say so in the panel
        return f"n/a ({type(exc).__name__})"
    return f"{interval.value:.1f} kg [{interval.low:.1f}–{interval.high:.1f}] CO2e"
