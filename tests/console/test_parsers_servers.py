"""jetson-containers MLC benchmark lines and Ollama server timings."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.parsers.common import ParseError
from console.parsers.jetson_containers import parse_mlc_benchmark, parse_mlc_csv
from console.parsers.ollama import parse_generate_response

FIX = Path(__file__).resolve().parent.parent / "fixtures"
MODEL = "/data/models/mlc/dist/Llama-2-7b-chat-hf-q4f16_ft/params"


def test_mlc_issue412_lines_read_prefill_and_decode_rates() -> None:
    r = parse_mlc_benchmark(
        (FIX / "jetson-containers" / "mlc_benchmark_issue412_agx-orin-32gb_jp6.txt").read_text()
    )
    first, second = r["results"]
    assert first == {
        "model": MODEL,
        "average": False,
        "input_tokens": 16,
        "output_tokens": 128,
        "prefill_time_s": 0.081,
        "prefill_rate_tps": 197.0,
        "decode_time_s": 6.632,
        "decode_rate_tps": 19.3,
    }
    assert (second["input_tokens"], second["decode_rate_tps"], second["prefill_rate_tps"]) == (
        None,
        42.9,
        582.8,
    )


def test_mlc_average_line_and_peak_memory_are_read() -> None:
    text = (
        "AVERAGE OVER 3 RUNS, Llama-2-7b:  input=16 output=128 prefill_time 0.030 sec, prefill_rate 530.1 "
        "tokens/sec, decode_time 3.100 sec, decode_rate 41.3 tokens/sec\nPeak memory usage:  4210.55 MB\n"
    )
    r = parse_mlc_benchmark(text)
    assert r["results"][0]["average"] is True and r["results"][0]["model"] == "Llama-2-7b"
    assert r["peak_memory_mb"] == 4210.55


def test_mlc_result_line_with_a_bad_rate_names_the_line() -> None:
    text = f"cmd\n{MODEL}:  prefill_time 0.027 sec, prefill_rate fast tokens/sec, decode_time 2.986 sec\n"
    with pytest.raises(ParseError) as err:
        parse_mlc_benchmark(text)
    assert err.value.line == 2


def test_mlc_csv_reads_columns_by_name() -> None:
    text = (
        "timestamp, hostname, api, model, precision, input_tokens, output_tokens, prefill_time, "
        "prefill_rate, decode_time, decode_rate, memory\n"
        "20240307 10:00:00, orin, mlc, Llama-2-7b, q4f16_ft, 16, 128, 0.081, 197.0, 6.632, 19.3, 4210\n"
    )
    rows = parse_mlc_csv(text)
    assert rows[0]["decode_rate"] == 19.3 and rows[0]["hostname"] == "orin"


def test_ollama_docs_response_gives_seconds_and_token_rates() -> None:
    r = parse_generate_response(
        (FIX / "servers" / "ollama_docs_api_usage_generate_response.json").read_text()
    )
    assert r["model"] == "gemma3" and r["total_duration_ns"] == 174560334
    assert r["load_s"] == pytest.approx(0.101397084)
    assert r["decode_tps"] == pytest.approx(18 / 0.052479709)
    assert r["prefill_tps"] == pytest.approx(11 / 0.013074791)


def test_ollama_stream_uses_its_final_done_object() -> None:
    stream = (
        '{"model":"m","response":"Hi","done":false}\n'
        '{"model":"m","response":"","done":true,"eval_count":10,"eval_duration":500000000}\n'
    )
    assert parse_generate_response(stream)["decode_tps"] == 20.0


def test_ollama_stream_cut_before_done_says_timings_are_missing() -> None:
    with pytest.raises(ParseError, match="done"):
        parse_generate_response('{"model":"m","response":"Hi","done":false}\n')
