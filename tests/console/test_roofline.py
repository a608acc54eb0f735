"""Roofline: time = max(FLOPs / peak, bytes / bandwidth), the bound named, precision handled honestly."""

from __future__ import annotations

import pytest

from console import profiles
from console.errors import UsageError
from console.roofline import roofline


def test_flops_only_is_compute_bound_at_fp32_peak() -> None:
    result = roofline(profiles.get_device("a100-sxm4-40gb"), 1.95e13)
    assert result.bound == "compute"
    assert result.latency_s == pytest.approx(1.0)  # 19.5 TFLOPS fp32
    assert result.memory_s is None and result.estimated == ()


def test_many_bytes_make_it_memory_bound() -> None:
    hw = profiles.get_device("h100-sxm5-80gb")  # 66.9 TFLOPS fp32, 3350 GB/s
    result = roofline(hw, 1e12, bytes_=3.35e12)
    assert result.bound == "memory"
    assert result.latency_s == pytest.approx(1.0)
    assert result.compute_s == pytest.approx(1e12 / 66.9e12)


def test_few_bytes_stay_compute_bound() -> None:
    hw = profiles.get_device("h100-sxm5-80gb")
    result = roofline(hw, 66.9e12, bytes_=1e9)
    assert result.bound == "compute" and result.latency_s == pytest.approx(1.0)


def test_ridge_point_separates_the_bounds() -> None:
    hw = profiles.get_device("a100-sxm4-40gb")
    ridge = roofline(hw, 1e12).ridge_flops_per_byte
    assert ridge == pytest.approx(19.5e12 / 1555e9)
    assert roofline(hw, 1e12, bytes_=1e12 / ridge * 1.01).bound == "memory"
    assert roofline(hw, 1e12, bytes_=1e12 / ridge * 0.99).bound == "compute"


def test_fp16_uses_the_tensor_core_rate() -> None:
    result = roofline(profiles.get_device("a100-sxm4-40gb"), 3.12e14, precision="fp16")
    assert result.latency_s == pytest.approx(1.0) and result.peak_tflops == 312


def test_fp16_on_a_derived_jetson_rate_is_flagged_estimated() -> None:
    result = roofline(profiles.get_device("jetson-agx-xavier-32gb"), 1e12, precision="fp16")
    assert result.estimated == ("fp16_tensor_tflops",)
    assert result.peak_tflops == 11.3


def test_fp16_on_a_device_without_tensor_cores_is_refused() -> None:
    with pytest.raises(UsageError) as info:
        roofline(profiles.get_device("gtx-1080-ti"), 1e12, precision="fp16")
    assert "gtx-1080-ti" in str(info.value) and "fp32" in str(info.value)


@pytest.mark.parametrize("flops", [-1.0, 0.0, float("nan"), float("inf")])
def test_non_positive_or_non_finite_flops_are_refused(flops) -> None:
    with pytest.raises(UsageError, match="FLOPs"):
        roofline(profiles.get_device("t4"), flops)


def test_negative_bytes_are_refused() -> None:
    with pytest.raises(UsageError, match="bytes"):
        roofline(profiles.get_device("t4"), 1e12, bytes_=-1.0)


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(UsageError, match="precision"):
        roofline(profiles.get_device("t4"), 1e12, precision="int8")


def test_device_without_fp32_rate_is_refused() -> None:
    with pytest.raises(UsageError, match="fp32_tflops"):
        roofline(profiles.get_device("rtx-6000-ada"), 1e12)
