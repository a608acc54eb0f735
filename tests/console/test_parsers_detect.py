"""detect() names every fixture's format from its content; parse_any() then parses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.parsers.detect import FORMATS, detect, parse_any

FIX = Path(__file__).resolve().parent.parent / "fixtures"

EXPECTED = {
    "mlperf/v3.1_orin_bert-99_singlestream_summary.txt": "mlperf_summary",
    "mlperf/v3.1_orin_bert-99_offline_summary.txt": "mlperf_summary",
    "mlperf/v3.1_orin_resnet50_multistream_summary.txt": "mlperf_summary",
    "mlperf/v5.1_amd-8xmi300x_llama2-70b-99_server_summary.txt": "mlperf_summary",
    "mlperf/generated_loadgen_6.0.17/synthetic_multistream_256q_summary.txt": "mlperf_summary",
    "mlperf/generated_loadgen_6.0.17/synthetic_offline_256q_summary.txt": "mlperf_summary",
    "mlperf/generated_loadgen_6.0.17/synthetic_server_256q_summary.txt": "mlperf_summary",
    "mlperf/generated_loadgen_6.0.17/synthetic_singlestream_16q_summary_INVALID.txt": "mlperf_summary",
    "mlperf/generated_loadgen_6.0.17/synthetic_singlestream_256q_summary.txt": "mlperf_summary",
    "mlperf/generated_loadgen_6.0.17/synthetic_singlestream_256q_detail.txt": "mlperf_detail",
    "mlperf/v3.1_orin_bert-99_singlestream_detail_tail.txt": "mlperf_detail",
    "mlperf/v5.1_amd-8xmi300x_llama2-70b-99_server_detail.txt": "mlperf_detail",
    "mlperf/v1.1_agx-xavier-maxq_bert-99_singlestream_spl_head50.txt": "ptd_spl",
    "mlperf/v1.1_agx-xavier-maxq_bert-99_singlestream_spl_tail14.txt": "ptd_spl",
    "mlperf/v1.1_agx-xavier-maxq_bert-99_singlestream_power_client.json": "ptd_client_json",
    "mlperf/v1.1_agx-xavier-maxq_bert-99_singlestream_power_server.log": "ptd_server_log",
    "trtexec/jetson-agx-xavier_trt8.4_perf-summary.txt": "trtexec",
    "trtexec/trt10-era_perf-summary_p90-p95-p99.txt": "trtexec",
    "llama-bench/jetson-tx2_pr4560_md_excerpt.md": "llama_bench_md",
    "llama-bench/readme_output_md.md": "llama_bench_md",
    "llama-bench/readme_output_md_depth.md": "llama_bench_md",
    "llama-bench/readme_output.csv": "llama_bench_csv",
    "llama-bench/readme_output.json": "llama_bench_json",
    "llama-bench/readme_output.jsonl": "llama_bench_jsonl",
    "vllm/docs_cli_serving_benchmark_result.txt": "vllm_serving",
    "vllm/docs_per_request_metrics_response.jsonc.txt": "vllm_request_metrics",
    "jetson-containers/mlc_benchmark_issue412_agx-orin-32gb_jp6.txt": "mlc_benchmark",
    "servers/ollama_docs_api_usage_generate_response.json": "ollama_generate",
    "power/thesis-fork_nvidia-smi_gpu_idle.csv": "nvidia_smi_csv",
}
MY_DIRS = ("mlperf", "trtexec", "llama-bench", "vllm", "jetson-containers", "servers", "power")


def test_every_fixture_file_has_an_expected_format() -> None:
    files = {
        str(p.relative_to(FIX))
        for d in MY_DIRS
        for p in (FIX / d).rglob("*")
        if p.is_file() and p.name != "SOURCES.md"
    }
    assert files == set(EXPECTED)


@pytest.mark.parametrize(("rel", "fmt"), sorted(EXPECTED.items()))
def test_fixture_content_is_detected_and_parses(rel: str, fmt: str) -> None:
    text = (FIX / rel).read_text()
    assert detect(text) == fmt  # content alone, no file name
    found, parsed = parse_any(text, rel)
    assert found == fmt and parsed


def test_tegrastats_line_is_detected() -> None:
    line = "RAM 1685/7854MB (lfb 1044x4MB) CPU [0%@1303] EMC_FREQ 0% GR3D_FREQ 0% VDD_IN 1931/1931\n"
    assert detect(line) == "tegrastats"


def test_unknown_text_is_none_and_the_file_name_breaks_ties() -> None:
    assert detect("hello world\n") is None
    assert detect("", "runs/x/mlperf_log_summary.txt") == "mlperf_summary"
    assert parse_any("hello world\n") == (None, None)


def test_format_names_are_stable() -> None:
    assert {
        "mlperf_summary",
        "trtexec",
        "llama_bench_json",
        "nvidia_smi_csv",
        "ptd_spl",
        "tegrastats",
    } <= set(FORMATS)
