"""MLPerf Power logs: PTDaemon spl.txt, power-dev server.log and client.json, the checker's average."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from console.parsers.common import ParseError
from console.parsers.mlperf_power import (
    SplSample,
    average_power,
    parse_client_json,
    parse_server_log,
    parse_spl,
)

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "mlperf"
PREFIX = "v1.1_agx-xavier-maxq_bert-99_singlestream_"
UTC = timezone.utc


def test_spl_head_reads_every_field_of_every_sample() -> None:
    samples = parse_spl((FIX / f"{PREFIX}spl_head50.txt").read_text())
    assert len(samples) == 50
    first = samples[0]
    assert first.time == datetime(2021, 8, 4, 10, 39, 29, 143000, tzinfo=UTC)
    assert (first.watts, first.volts, first.amps, first.pf) == (8.172, 120.52, 0.16762, 0.4045)
    assert first.mark == "2021-08-04_03-27-51_testing"
    assert all(b.time > a.time for a, b in itertools.pairwise(samples))


def test_spl_tail_shows_power_falling_after_the_run() -> None:
    samples = parse_spl((FIX / f"{PREFIX}spl_tail14.txt").read_text())
    assert len(samples) == 14
    assert samples[0].watts == 19.965 and samples[-1].watts == 8.631


def test_average_power_takes_samples_strictly_inside_the_window() -> None:
    samples = parse_spl((FIX / f"{PREFIX}spl_tail14.txt").read_text())
    begin = datetime(2021, 8, 4, 10, 49, 47, 154000, tzinfo=UTC)  # exactly the first sample: excluded
    end = datetime(2021, 8, 4, 10, 49, 49, 500000, tzinfo=UTC)
    avg = average_power(samples, begin, end)
    assert avg.samples == 2
    assert avg.avg_watts == pytest.approx((19.901 + 12.742) / 2)
    assert avg.duration_s == pytest.approx(2.346)
    assert avg.energy_mj_per_query(10) == pytest.approx(avg.avg_watts * 2.346 * 1000 / 10)


def test_average_power_drops_non_positive_readings() -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    samples = [SplSample(t0 + timedelta(seconds=i), w) for i, w in enumerate([10.0, -1.0, 0.0, 20.0])]
    avg = average_power(samples, t0 - timedelta(seconds=1), t0 + timedelta(seconds=10))
    assert (avg.samples, avg.avg_watts) == (2, 15.0)


def test_average_power_with_no_sample_in_the_window_says_so() -> None:
    samples = parse_spl((FIX / f"{PREFIX}spl_tail14.txt").read_text())
    begin = datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="no power samples between"):
        average_power(samples, begin, begin + timedelta(seconds=5))


def test_spl_line_with_a_bad_time_names_the_line() -> None:
    text = (FIX / f"{PREFIX}spl_tail14.txt").read_text().splitlines()
    text[4] = text[4].replace("08-04-2021 10:49:51.158", "2021-08-04T10:49:51")
    with pytest.raises(ParseError) as err:
        parse_spl("\n".join(text))
    assert err.value.line == 5 and "PTDaemon spl.txt" in str(err.value)


def test_spl_line_with_non_numeric_watts_names_the_line() -> None:
    with pytest.raises(ParseError) as err:
        parse_spl(
            "Time,08-04-2021 10:39:29.143,Watts,8.172000,Mark,x\n"
            "Time,08-04-2021 10:39:30.143,Watts,lots,Mark,x\n"
        )
    assert err.value.line == 2


def test_server_log_gives_testing_window_ranges_and_analyzer() -> None:
    log = parse_server_log((FIX / f"{PREFIX}power_server.log").read_text())
    testing = log["phases"]["testing"]
    assert testing.start == datetime(2021, 8, 4, 3, 39, 28, 814000)
    assert testing.end == datetime(2021, 8, 4, 3, 50, 0, 215000)
    assert testing.mark == "2021-08-04_03-27-51_testing"
    assert testing.ranges == {"V": "120.610000", "A": "0.372000"}
    assert log["phases"]["ranging"].ranges == {"V": "Auto", "A": "20"}
    assert "WT333E" in log["analyzer"]


def test_server_log_with_a_foreign_line_names_it() -> None:
    with pytest.raises(ParseError) as err:
        parse_server_log("ptd-server 2021-08-04 03:27:51,321 [INFO] Got command\nsomething else\n")
    assert err.value.line == 2


def test_client_json_phases_bound_the_workload() -> None:
    client = parse_client_json((FIX / f"{PREFIX}power_client.json").read_text())
    assert client["session_name"] == "2021-08-04_03-27-51"
    assert client["protocol"] == "mlcommons/power client v3"
    testing = client["phases"]["testing"]
    assert testing.workload_start == datetime.fromtimestamp(1628073568.7006013, tz=UTC)
    assert testing.workload_end == datetime.fromtimestamp(1628074190.090538, tz=UTC)
    # the spl samples of the testing run lie after the workload started (same UTC clock)
    first = parse_spl((FIX / f"{PREFIX}spl_head50.txt").read_text())[0]
    assert testing.start < first.time


def test_client_json_that_is_not_json_names_the_line() -> None:
    with pytest.raises(ParseError) as err:
        parse_client_json('{\n  "phases": {\n    oops\n}')
    assert err.value.line == 3
