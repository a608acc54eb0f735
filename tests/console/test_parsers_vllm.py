"""vLLM serving benchmark result block, its result JSON, and per-request metrics (JSONC)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.parsers.common import ParseError
from console.parsers.vllm import parse_request_metrics, parse_result_json, parse_serving_result, strip_jsonc

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "vllm"

NEWER_BLOCK = """\
============ Serving Benchmark Result ============
Successful requests:                     100
Failed requests:                         2
Maximum request concurrency:             8
Request rate configured (RPS):           4.00
Benchmark duration (s):                  30.10
Total input tokens:                      12000
Total generated tokens:                  25600
Request throughput (req/s):              3.32
Output token throughput (tok/s):         850.50
Peak output token throughput (tok/s):    1024.00
Peak concurrent requests:                8.00
Total token throughput (tok/s):          1249.17
---------------Time to First Token----------------
Mean TTFT (ms):                          40.10
Median TTFT (ms):                        38.00
P90 TTFT (ms):                           55.20
P99 TTFT (ms):                           70.00
----------------End-to-end Latency----------------
Mean E2EL (ms):                          2100.00
Median E2EL (ms):                        2050.00
P99.9 E2EL (ms):                         3999.00
==================================================
"""


def test_docs_result_block_reads_throughput_and_latency_stats() -> None:
    r = parse_serving_result((FIX / "docs_cli_serving_benchmark_result.txt").read_text())
    assert (r["completed"], r["duration_s"], r["total_input_tokens"], r["total_output_tokens"]) == (
        10,
        5.78,
        1369,
        2212,
    )
    assert (r["request_throughput"], r["output_throughput"], r["total_token_throughput"]) == (
        1.73,
        382.89,
        619.85,
    )
    assert r["ttft_ms"] == {"mean": 71.54, "median": 73.88, "p99": 79.49}
    assert r["tpot_ms"] == {"mean": 7.91, "median": 7.96, "p99": 8.03}
    assert r["itl_ms"] == {"mean": 7.74, "median": 7.70, "p99": 8.39}
    assert "e2el_ms" not in r and r["extra"] == {}


def test_newer_result_block_reads_failures_concurrency_and_e2el_percentiles() -> None:
    r = parse_serving_result(NEWER_BLOCK)
    assert (r["failed"], r["max_concurrency"], r["request_rate"], r["max_output_tokens_per_s"]) == (
        2,
        8,
        4.0,
        1024.0,
    )
    assert r["ttft_ms"]["p90"] == 55.2
    assert r["e2el_ms"] == {"mean": 2100.0, "median": 2050.0, "p99.9": 3999.0}


def test_non_numeric_value_in_result_block_names_the_line() -> None:
    with pytest.raises(ParseError) as err:
        parse_serving_result(NEWER_BLOCK.replace("55.20", "fast"))
    assert err.value.line == 17 and "P90 TTFT" in str(err.value)


def test_text_without_the_banner_is_refused() -> None:
    with pytest.raises(ParseError, match="Serving Benchmark Result"):
        parse_serving_result("Successful requests: 3\n")


def test_result_json_is_reshaped_like_the_text_block() -> None:
    doc = {
        "duration": 5.78,
        "completed": 10,
        "failed": 0,
        "request_throughput": 1.73,
        "mean_ttft_ms": 71.54,
        "median_ttft_ms": 73.88,
        "p99_ttft_ms": 79.49,
        "std_ttft_ms": 3.1,
        "mean_e2el_ms": 900.0,
        "ttfts": [0.07, 0.072],
    }
    r = parse_result_json(json.dumps(doc))
    assert r["duration_s"] == 5.78 and r["completed"] == 10
    assert r["ttft_ms"] == {"mean": 71.54, "median": 73.88, "p99": 79.49, "std": 3.1}
    assert r["e2el_ms"] == {"mean": 900.0} and r["ttfts"] == [0.07, 0.072]


def test_per_request_metrics_doc_example_parses_despite_its_elision() -> None:
    r = parse_request_metrics((FIX / "docs_per_request_metrics_response.jsonc.txt").read_text())
    assert r == {
        "format": "vllm_request_metrics",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "ttft_ms": 85.2,
        "generation_time_ms": 1240.5,
        "queue_time_ms": 12.3,
        "mean_itl_ms": 9.1,
        "tokens_per_second": 103.2,
        "prompt_tokens": 42,
        "completion_tokens": 128,
    }


def test_jsonc_comments_go_but_slashes_inside_strings_stay() -> None:
    text = '{\n  // a comment\n  "url": "http://x/y", /* block\n comment */ "a": [1, 2,],\n}'
    assert json.loads(strip_jsonc(text)) == {"url": "http://x/y", "a": [1, 2]}


def test_per_request_response_without_metrics_says_how_to_enable_them() -> None:
    with pytest.raises(ParseError, match="enable-per-request-metrics"):
        parse_request_metrics('{"id": "x", "usage": {}}')


def test_per_request_broken_json_names_the_line() -> None:
    with pytest.raises(ParseError) as err:
        parse_request_metrics('{\n "metrics": {\n "x": \n}\n}')
    assert err.value.line == 4
