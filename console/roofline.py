"""Roofline latency of one inference: time = max(FLOPs / peak, bytes / bandwidth), and which bound applies.

Pure functions over a HardwareProfile. FP32 is the default as in the study; FP16 uses the dense tensor-core
rate (FP32 accumulate) where the profile has one, a documented estimate where it has that (flagged), and
refuses devices without tensor cores rather than guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from console.errors import UsageError
from console.profiles import HardwareProfile

PRECISIONS = {"fp32": "fp32_tflops", "fp16": "fp16_tensor_tflops"}


@dataclass(frozen=True)
class RooflineResult:
    """Latency (s) and its bound ("compute" or "memory"), with the two roofs that decided it."""

    latency_s: float
    bound: str
    compute_s: float
    memory_s: float | None  # None when no byte count was given
    precision: str
    peak_tflops: float
    bandwidth_gb_s: float | None
    estimated: tuple[str, ...] = ()

    @property
    def ridge_flops_per_byte(self) -> float | None:
        """Arithmetic intensity above which the device is compute-bound (peak / bandwidth)."""
        if self.bandwidth_gb_s is None:
            return None
        return self.peak_tflops * 1e12 / (self.bandwidth_gb_s * 1e9)


def peak_tflops(hw: HardwareProfile, precision: str = "fp32") -> tuple[float, tuple[str, ...]]:
    """Peak TFLOPS at this precision and the estimated fields it relied on; UsageError if unknown."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}", fix=f"use one of {', '.join(PRECISIONS)}")
    field_name = PRECISIONS[precision]
    value, is_estimate = hw.number(field_name)
    if value is None:
        if precision == "fp16":
            raise UsageError(f"{hw.id} has no FP16 tensor-core rate in its profile (no tensor cores?)",
                             where=hw.path or "profiles/hardware.toml", fix="use --precision fp32")
        raise UsageError(f"{hw.id} has no {field_name} in its profile",
                         where=hw.path or "profiles/hardware.toml", fix=f"add {field_name} with its source")
    return value, ((field_name,) if is_estimate else ())


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def roofline(hw: HardwareProfile, flops: float, bytes_: float | None = None,
             precision: str = "fp32") -> RooflineResult:
    """Roofline time for `flops` operations (and `bytes_` moved from memory, if given) on `hw`."""
    if not _is_number(flops) or flops <= 0:
        raise UsageError(f"FLOPs must be a finite number > 0, got {flops!r}")
    if bytes_ is not None and (not _is_number(bytes_) or bytes_ < 0):
        raise UsageError(f"bytes must be a finite number >= 0, got {bytes_!r}")
    peak, estimated = peak_tflops(hw, precision)
    compute_s = flops / (peak * 1e12)
    bandwidth, bw_est = hw.number("bandwidth_gb_s")
    memory_s = None
    if bytes_ is not None:
        if bandwidth is None:
            raise UsageError(f"{hw.id} has no bandwidth_gb_s in its profile, so --bytes cannot be used",
                             where=hw.path or "profiles/hardware.toml")
        memory_s = bytes_ / (bandwidth * 1e9)
        if bw_est:
            estimated += ("bandwidth_gb_s",)
    # A tie counts as compute-bound: the study's estimates are FLOP-driven.
    bound = "memory" if memory_s is not None and memory_s > compute_s else "compute"
    latency = memory_s if bound == "memory" and memory_s is not None else compute_s
    return RooflineResult(latency, bound, compute_s, memory_s, precision, peak, bandwidth, estimated)
