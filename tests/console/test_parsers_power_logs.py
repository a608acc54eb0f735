"""Power logs a user brings to `wattlab import`: nvidia-smi CSV (both layouts) and tegrastats."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from console.parsers.common import ParseError
from console.parsers.nvidia_smi import parse_power_csv
from console.parsers.tegrastats_log import parse_tegrastats_log

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "power"

MULTI_GPU = """\
timestamp, index, power.draw [W], temperature.gpu
2026/09/02 00:00:00.000, 0, 100.00 W, 50
2026/09/02 00:00:00.010, 1, 50.50 W, 48
2026/09/02 00:00:01.000, 0, 200.00 W, 51
2026/09/02 00:00:01.010, 1, [N/A], 48
"""
# Verbatim lines of the tegrastats fixtures (xavier-nx-class_mW_idle-then-load.txt, tx2_jp4_no-units.txt).
NX_JP5 = (
    "10-01-2025 20:05:55 RAM 2274/6834MB (lfb 27x4MB) SWAP 542/3417MB (cached 2MB) CPU [99%@118"
    "9,100%@1188,100%@1189,98%@1189,off,off] EMC_FREQ 0% GR3D_FREQ 22% AUX@36.5C CPU@40C therma"
    "l@37.85C AO@37.5C GPU@38C PMIC@50C VDD_IN 5542mW/5542mW VDD_CPU_GPU_CV 1594mW/1594mW VDD_S"
    "OC 1234mW/1234mW\n"
    "10-01-2025 20:06:07 RAM 5451/6834MB (lfb 38x128kB) SWAP 542/3417MB (cached 2MB) CPU [100%@"
    "1190,100%@1190,100%@1190,96%@1190,off,off] EMC_FREQ 0% GR3D_FREQ 99% AUX@37C CPU@41C therm"
    "al@39.7C AO@39C GPU@42.5C PMIC@50C VDD_IN 13353mW/6482mW VDD_CPU_GPU_CV 7340mW/2289mW VDD_"
    "SOC 1944mW/1319mW\n"
)
TX2_JP4 = (
    "RAM 1685/7854MB (lfb 1044x4MB) SWAP 278/8192MB (cached 23MB) CPU [0%@1303,0%@345,0%@345,0%"
    "@1419,0%@1420,0%@1421] EMC_FREQ 0%@1866 GR3D_FREQ 0%@140 APE 150 MTS fg 1% bg 8% BCPU@41C "
    "MCPU@41C GPU@39C PLL@41C Tboard@37C Tdiode@37.25C PMIC@100C thermal@39.9C VDD_IN 1931/1931"
    " VDD_CPU 231/231 VDD_GPU 154/154 VDD_SOC 385/385 VDD_WIFI 38/38 VDD_DDR 326/326\n"
)


def test_thesis_fork_csv_reads_elapsed_seconds_and_watts() -> None:
    trace = parse_power_csv((FIX / "thesis-fork_nvidia-smi_gpu_idle.csv").read_text())
    assert len(trace.t_s) == 81 and trace.t0 is None
    assert trace.t_s[1] == 0.12144923210144043 and trace.t_s[-1] == 9.961029529571533
    assert trace.total_w[0] == 7.70 and trace.total_w[-1] == 7.65
    assert trace.rails[0] == {"gpu": 7.70}


def test_standard_csv_with_units_sums_gpus_per_sample_and_keeps_na_as_none() -> None:
    trace = parse_power_csv(MULTI_GPU)
    assert trace.t0 == datetime(2026, 9, 2, 0, 0, 0)
    assert trace.t_s == [0.0, 1.0]
    assert trace.total_w == [150.5, None]  # one GPU unreadable: the total is unknown, not smaller
    assert trace.rails[1] == {"gpu0": 200.0, "gpu1": None}
    assert trace.total_rule == "sum of gpu0+gpu1"


def test_nounits_csv_reads_bare_numbers() -> None:
    trace = parse_power_csv(
        "timestamp, power.draw\n2026/09/02 00:00:00.500, 61.2\n2026/09/02 00:00:01.500, 63\n"
    )
    assert trace.total_w == [61.2, 63.0] and trace.t_s == [0.0, 1.0]


def test_csv_without_a_power_header_explains_the_command_to_use() -> None:
    with pytest.raises(ParseError, match="--format=csv") as err:
        parse_power_csv("2026/09/02 00:00:00.500, 61.2\n")
    assert err.value.line == 1


def test_csv_with_a_bad_power_value_names_the_line() -> None:
    with pytest.raises(ParseError) as err:
        parse_power_csv(MULTI_GPU.replace("200.00 W", "2OO W"))
    assert err.value.line == 4 and "nvidia-smi CSV" in str(err.value)


def test_csv_with_a_short_row_names_the_line() -> None:
    with pytest.raises(ParseError) as err:
        parse_power_csv("timestamp,gpu_power\n0,7.70\n0.12\n")
    assert err.value.line == 3


def test_tegrastats_jp5_log_takes_times_from_its_dates_and_total_from_vdd_in() -> None:
    trace = parse_tegrastats_log(NX_JP5)
    assert trace.t_s == [0.0, 12.0] and trace.t0 == datetime(2025, 10, 1, 20, 5, 55)
    assert trace.total_w == [5.542, 13.353]
    assert trace.rails[1]["VDD_SOC"] == 1.944
    assert trace.total_rule.startswith("VDD_IN")


def test_tegrastats_jp4_log_without_dates_is_spaced_by_the_interval() -> None:
    trace = parse_tegrastats_log(TX2_JP4 * 3, interval_ms=500)
    assert trace.t_s == [0.0, 0.5, 1.0] and trace.total_w == [1.931] * 3 and trace.t0 is None


def test_tegrastats_log_without_rails_says_root_is_needed() -> None:
    no_rails = "RAM 1685/7854MB (lfb 1044x4MB) CPU [0%@1303] EMC_FREQ 0% GR3D_FREQ 0%\n"
    with pytest.raises(ParseError, match="root"):
        parse_tegrastats_log(no_rails)


def test_foreign_line_in_a_tegrastats_log_names_it() -> None:
    with pytest.raises(ParseError) as err:
        parse_tegrastats_log(TX2_JP4 + "Segmentation fault\n")
    assert err.value.line == 2
