"""Tell a benchmark or power log's format from its content (the file name only breaks ties),
and parse it with the matching parser."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from console.parsers import (
    jetson_containers,
    llama_bench,
    mlperf,
    mlperf_power,
    nvidia_smi,
    ollama,
    tegrastats_log,
    trtexec,
    vllm,
)

_TEGRA = re.compile(r"^(?:\d\d-\d\d-\d{4} \d\d:\d\d:\d\d )?RAM \d+/\d+[kM]B", re.MULTILINE)
_BY_NAME = (
    (re.compile(r"mlperf_log_summary.*\.txt$"), "mlperf_summary"),
    (re.compile(r"mlperf_log_detail.*\.txt$"), "mlperf_detail"),
    (re.compile(r"^spl.*\.txt$"), "ptd_spl"),
    (re.compile(r"^client\.json$"), "ptd_client_json"),
    (re.compile(r"^server\.log$"), "ptd_server_log"),
    (re.compile(r"tegrastats.*"), "tegrastats"),
)

# format name -> parser (text -> parsed result)
PARSERS: dict[str, Callable[[str], Any]] = {
    "mlperf_summary": mlperf.parse_summary,
    "mlperf_detail": mlperf.parse_detail,
    "ptd_spl": mlperf_power.parse_spl,
    "ptd_server_log": mlperf_power.parse_server_log,
    "ptd_client_json": mlperf_power.parse_client_json,
    "trtexec": trtexec.parse_trtexec,
    "llama_bench_md": llama_bench.parse_md,
    "llama_bench_csv": llama_bench.parse_csv,
    "llama_bench_json": llama_bench.parse_json,
    "llama_bench_jsonl": llama_bench.parse_jsonl,
    "vllm_serving": vllm.parse_serving_result,
    "vllm_result_json": vllm.parse_result_json,
    "vllm_request_metrics": vllm.parse_request_metrics,
    "mlc_benchmark": jetson_containers.parse_mlc_benchmark,
    "mlc_csv": jetson_containers.parse_mlc_csv,
    "nvidia_smi_csv": nvidia_smi.parse_power_csv,
    "ollama_generate": ollama.parse_generate_response,
    "tegrastats": tegrastats_log.parse_tegrastats_log,
}
FORMATS = tuple(PARSERS)


def _json_format(text: str) -> str | None:
    head = text.lstrip()
    if '"avg_ts"' in text:
        return "llama_bench_json" if head.startswith("[") else "llama_bench_jsonl"
    if '"phases"' in text and '"messages"' in text:
        return "ptd_client_json"
    if '"time_to_first_token_ms"' in text:
        return "vllm_request_metrics"
    if '"eval_duration"' in text or '"total_duration"' in text:
        return "ollama_generate"
    if '"completed"' in text and ('"request_throughput"' in text or '"mean_ttft_ms"' in text):
        return "vllm_result_json"
    return None


def _csv_format(first_line: str) -> str | None:
    header = first_line.lower()
    if "avg_ts" in header:
        return "llama_bench_csv"
    if "decode_rate" in header:
        return "mlc_csv"
    if "timestamp" in header and ("power.draw" in header or "gpu_power" in header):
        return "nvidia_smi_csv"
    return None


def detect(text: str, filename: str | None = None) -> str | None:
    """The format name (a key of PARSERS) of a log, or None when nothing matches."""
    lines = [x for x in text.splitlines() if x.strip()]
    first = lines[0].strip() if lines else ""
    found: str | None = None
    if "MLPerf Results Summary" in text:
        found = "mlperf_summary"
    elif ":::MLLOG " in text:
        found = "mlperf_detail"
    elif first.startswith("Time,") and ",Watts," in first:
        found = "ptd_spl"
    elif first.startswith("ptd-server "):
        found = "ptd_server_log"
    elif "=== Performance summary ===" in text or "&&&& PASSED TensorRT.trtexec" in text:
        found = "trtexec"
    elif "Serving Benchmark Result" in text:
        found = "vllm_serving"
    elif first.startswith(("{", "[")):
        found = _json_format(text)
    elif any(x.lstrip().startswith("|") and "t/s" in x and "test" in x for x in lines):
        found = "llama_bench_md"
    elif "," in first and _csv_format(first):
        found = _csv_format(first)
    elif "prefill_rate" in text and "decode_rate" in text:
        found = "mlc_benchmark"
    elif _TEGRA.search(text):
        found = "tegrastats"
    if found is None and filename:
        name = PurePath(filename).name
        found = next((fmt for pattern, fmt in _BY_NAME if pattern.search(name)), None)
    return found


def parse_any(text: str, filename: str | None = None) -> tuple[str | None, Any]:
    """(format, parsed result) using detect(); (None, None) when the format is unknown."""
    fmt = detect(text, filename)
    return (fmt, PARSERS[fmt](text)) if fmt else (None, None)
