"""MLPerf LoadGen summary and detail parsers over every real fixture, old and new wording."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from console.parsers.common import ParseError
from console.parsers.mlperf import (
    detail_counts,
    detail_results,
    parse_detail,
    parse_summary,
    power_window,
)

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "mlperf"
GEN = FIX / "generated_loadgen_6.0.17"


def summary(name: str) -> dict:
    return parse_summary((FIX / name).read_text())


def test_orin_bert_singlestream_v31_reads_headline_p90_and_all_percentiles() -> None:
    s = summary("v3.1_orin_bert-99_singlestream_summary.txt")
    assert (s["scenario"], s["mode"], s["valid"], s["sut_name"]) == (
        "SingleStream",
        "PerformanceOnly",
        True,
        "BERT SERVER",
    )
    assert s["headline"] == {"metric": "90th percentile latency (ns)", "value": 5704810}
    assert s["latency_ns"] == {
        "min": 3273001,
        "max": 6545654,
        "mean": 4424132,
        "p50": 4211607,
        "p90": 5704810,
        "p95": 6117072,
        "p97": 6386863,
        "p99": 6487349,
        "p99.9": 6495382,
    }
    assert s["qps"] == 225.74 and s["qps_metric"] == "qps_with_loadgen_overhead"
    assert s["throughput"]["qps_without_loadgen_overhead"] == 226.03
    assert s["early_stopping"]["satisfied"] is True
    assert s["early_stopping"]["estimates_ns"] == {"p90": 5712265, "p99": 6487734}
    assert s["settings"]["min_duration_ms"] == 600000
    assert s["settings"]["target_latency_ns"] == 0
    assert s["settings"]["performance_sample_count"] == 10833
    assert s["counts"] == {"warnings": 0, "errors": 0}


@pytest.mark.parametrize(
    ("name", "wording", "p90"),
    [
        ("v3.1_orin_bert-99_singlestream_summary.txt", "90th percentile latency (ns)", 5704810),
        (
            "generated_loadgen_6.0.17/synthetic_singlestream_256q_summary.txt",
            "90.0th percentile latency (ns)",
            5362266,
        ),
    ],
)
def test_both_percentile_wordings_give_the_same_p90_key(name: str, wording: str, p90: int) -> None:
    s = summary(name)
    assert s["headline"]["metric"] == wording
    assert s["latency_ns"]["p90"] == p90 == s["headline"]["value"]


def test_loadgen6_singlestream_early_stopping_estimate_uses_new_wording() -> None:
    s = parse_summary((GEN / "synthetic_singlestream_256q_summary.txt").read_text())
    assert s["valid"] is True
    assert s["early_stopping"]["estimates_ns"] == {"p90": 5371920}
    # a bullet wrapped over three lines is one bullet
    assert s["early_stopping"]["results"]["latency"][-1].startswith("Not enough queries processed for 99.0th")
    assert s["settings"]["accuracy_sample_count"] == 1024


def test_invalid_16_query_run_is_invalid_but_keeps_every_latency() -> None:
    s = parse_summary((GEN / "synthetic_singlestream_16q_summary_INVALID.txt").read_text())
    assert s["valid"] is False and s["result"] == "INVALID"
    assert s["checks"] == {"min_duration": True, "min_queries": True, "early_stopping": False}
    assert s["early_stopping"]["results"]["latency"] == [
        "Only processed 16 queries.",
        "Need to process at least 64 queries for early stopping.",
    ]
    assert s["latency_ns"]["max"] == 5910472 and s["latency_ns"]["p90"] == 5490059
    assert s["settings"]["min_query_count"] == s["settings"]["max_query_count"] == 16


def test_offline_qps_is_samples_per_second() -> None:
    s = summary("v3.1_orin_bert-99_offline_summary.txt")
    assert s["scenario"] == "Offline" and s["qps"] == 553.693 and s["qps_metric"] == "samples_per_s"
    assert s["latency_ns"]["max"] == 655597776651
    assert s["settings"]["samples_per_query"] == 363000
    assert s["early_stopping"]["results"] == {}


def test_multistream_reads_per_query_latencies_and_has_no_qps() -> None:
    s = summary("v3.1_orin_resnet50_multistream_summary.txt")
    assert s["scenario"] == "MultiStream" and s["qps"] is None
    assert s["headline"] == {"metric": "99th percentile latency (ns)", "value": 2182046}
    assert s["latency_ns"]["max"] == 70802067 and s["latency_ns"]["p99.9"] == 2191006
    assert s["settings"]["samples_per_query"] == 8


def test_multistream_loadgen6_is_invalid_with_too_few_queries() -> None:
    s = parse_summary((GEN / "synthetic_multistream_256q_summary.txt").read_text())
    assert s["valid"] is False and s["headline"]["metric"] == "99.0th percentile latency (ns)"
    assert s["latency_ns"]["p99"] == 5464027


def test_server_qps_is_completed_samples_and_error_count_is_read() -> None:
    s = parse_summary((GEN / "synthetic_server_256q_summary.txt").read_text())
    assert s["scenario"] == "Server" and s["valid"] is False
    assert s["qps"] == 96.05 and s["qps_metric"] == "completed_samples_per_s"
    assert s["throughput"]["scheduled_samples_per_s"] == 96.24
    assert s["checks"]["perf_constraints"] is True
    assert s["counts"]["errors"] == 1
    assert s["settings"]["target_latency_ns"] == 50000000
    assert len(s["early_stopping"]["results"]["latency"]) == 3


def test_offline_llm_summary_reports_tokens_per_second() -> None:
    text = (
        (GEN / "synthetic_offline_256q_summary.txt")
        .read_text()
        .replace("Samples per second: 300411\n", "Samples per second: 300411\nTokens per second: 1201644\n")
    )
    s = parse_summary(text)
    assert s["qps"] == 300411.0 and s["tokens_per_s"] == 1201644.0


def test_llm_server_summary_has_ttft_and_tpot_dicts() -> None:
    s = summary("v5.1_amd-8xmi300x_llama2-70b-99_server_summary.txt")
    assert s["valid"] is True and s["qps"] == 81.68 and s["tokens_per_s"] == 24593.77
    assert s["ttft_ns"]["p99"] == 1914647645 and s["ttft_ns"]["min"] == 37578735
    assert s["tpot_ns"]["p50"] == 151044504 and s["tpot_ns"]["max"] == 3298049084
    assert s["latency_ns"]["p99.9"] == 159705402675
    assert s["early_stopping"]["results"] == {"ttft": ["Run successful."], "tpot": ["Run successful."]}
    assert s["settings"]["ttft_latency_ns"] == 2000000000 and s["settings"]["tpot_latency_ns"] == 200000000
    assert len(s["warnings"]) == 1 and "sample_concatenate_permutation" in s["warnings"][0]
    assert "samples_per_query value" in s["warnings"][0]  # continuation lines joined to the warning


def test_non_llm_summaries_have_no_token_latency_keys() -> None:
    s = summary("v3.1_orin_bert-99_singlestream_summary.txt")
    assert "ttft_ns" not in s and "tpot_ns" not in s and s["tokens_per_s"] is None


def test_summary_with_a_non_numeric_latency_names_the_line() -> None:
    text = (FIX / "v3.1_orin_bert-99_singlestream_summary.txt").read_text()
    lines = text.splitlines()
    bad = next(i for i, x in enumerate(lines) if x.startswith("Max latency (ns)"))
    lines[bad] = "Max latency (ns)                : 6545654x"
    with pytest.raises(ParseError) as err:
        parse_summary("\n".join(lines))
    assert err.value.line == bad + 1 and "Max latency (ns)" in str(err.value)
    assert str(err.value).startswith(f"MLPerf summary, line {bad + 1}:")


def test_truncated_summary_is_a_parse_error_naming_the_missing_result() -> None:
    text = "\n".join((FIX / "v3.1_orin_bert-99_singlestream_summary.txt").read_text().splitlines()[:6])
    with pytest.raises(ParseError, match="Result is") as err:
        parse_summary(text)
    assert err.value.line == 6


def test_text_that_is_not_a_summary_fails_on_line_1() -> None:
    with pytest.raises(ParseError) as err:
        parse_summary("hello\nworld\n")
    assert err.value.line == 1


def test_garbage_inside_the_results_block_is_refused_with_its_line() -> None:
    lines = (GEN / "synthetic_singlestream_256q_summary.txt").read_text().splitlines()
    lines.insert(6, "this is not a key value line")
    with pytest.raises(ParseError) as err:
        parse_summary("\n".join(lines))
    assert err.value.line == 7


def test_a_block_unknown_to_this_parser_is_kept_not_refused() -> None:
    text = (GEN / "synthetic_singlestream_256q_summary.txt").read_text()
    rule = "=" * 48
    text = text.replace(
        "No warnings", f"{rule}\nPower Stats\n{rule}\nAverage power (W) : 12.5\n\nNo warnings"
    )
    s = parse_summary(text)
    assert s["other_blocks"] == {"Power Stats": ["Average power (W) : 12.5"]}
    assert s["latency_ns"]["p90"] == 5362266


# ------------------------------------------------------------------ detail log


@pytest.mark.parametrize(
    ("detail", "summary_name"),
    [
        ("v3.1_orin_bert-99_singlestream_detail_tail.txt", "v3.1_orin_bert-99_singlestream_summary.txt"),
        (
            "v5.1_amd-8xmi300x_llama2-70b-99_server_detail.txt",
            "v5.1_amd-8xmi300x_llama2-70b-99_server_summary.txt",
        ),
        (
            "generated_loadgen_6.0.17/synthetic_singlestream_256q_detail.txt",
            "generated_loadgen_6.0.17/synthetic_singlestream_256q_summary.txt",
        ),
    ],
)
def test_detail_results_agree_with_the_summary_of_the_same_run(detail: str, summary_name: str) -> None:
    d = detail_results(parse_detail((FIX / detail).read_text()))
    s = summary(summary_name)
    for field in ("latency_ns", "ttft_ns", "tpot_ns"):
        assert d.get(field) == s.get(field)
    assert d["valid"] == s["valid"]


def test_detail_power_window_and_counts_of_orin_tail() -> None:
    entries = parse_detail((FIX / "v3.1_orin_bert-99_singlestream_detail_tail.txt").read_text())
    assert len(entries) == 31
    begin, end = power_window(entries)
    assert begin == datetime(2023, 7, 15, 12, 16, 47, 721000, tzinfo=timezone.utc)
    assert (end - begin).total_seconds() == pytest.approx(600.005)
    d = detail_results(entries)
    assert d["query_count"] == 135443 and d["early_stopping_met"] is True
    assert detail_counts(entries) == {"entries": 31, "errors": 0, "warnings": 0}


def test_detail_of_llm_server_gives_scenario_qps_and_token_rate() -> None:
    d = detail_results(parse_detail((FIX / "v5.1_amd-8xmi300x_llama2-70b-99_server_detail.txt").read_text()))
    assert d["scenario"] == "Server" and d["loadgen_version"] == "5.1.0 @ 091d51f041"
    assert d["qps"] == 81.6768 and d["qps_metric"] == "result_completed_samples_per_sec"
    assert d["tokens_per_s"] == 24593.8 and d["query_count"] == 73728
    assert d["power_begin"] == datetime(2025, 7, 31, 9, 26, 3, 554000, tzinfo=timezone.utc)


def test_detail_with_a_broken_json_line_names_that_line() -> None:
    lines = (GEN / "synthetic_singlestream_256q_detail.txt").read_text().splitlines()
    lines[2] = lines[2][:40]  # a line cut in half, as a crash mid-write leaves it
    with pytest.raises(ParseError) as err:
        parse_detail("\n".join(lines))
    assert err.value.line == 3 and "MLPerf detail log" in str(err.value)


def test_detail_without_mllog_lines_is_refused() -> None:
    with pytest.raises(ParseError, match="MLLOG"):
        parse_detail("no log here\n")
