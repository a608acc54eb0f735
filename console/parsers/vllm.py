"""vLLM serving benchmarks: the `vllm bench serve` / `benchmark_serving.py` result block, its
`--save-result` JSON, and the per-request `metrics` object of `--enable-per-request-metrics`.

Result block lines are `<label>: <value>` (labels padded to 40 chars); latency lines read
`Mean|Median|Std|P<n> <TTFT|TPOT|ITL|E2EL> (ms): <value>` and land in ttft_ms, tpot_ms, itl_ms,
e2el_ms dicts keyed mean, median, std, p<n>. Unknown labels are kept in `extra`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from console.parsers.common import ParseError, pct_key, to_number

RESULT = "vLLM serving result"
METRICS = "vLLM per-request metrics"

_LABELS = {
    "successful requests": "completed",
    "failed requests": "failed",
    "benchmark duration (s)": "duration_s",
    "total input tokens": "total_input_tokens",
    "total generated tokens": "total_output_tokens",
    "request throughput (req/s)": "request_throughput",
    "request goodput (req/s)": "request_goodput",
    "output token throughput (tok/s)": "output_throughput",
    "peak output token throughput (tok/s)": "max_output_tokens_per_s",
    "total token throughput (tok/s)": "total_token_throughput",
    "maximum request concurrency": "max_concurrency",
    "request rate configured (rps)": "request_rate",
    "peak concurrent requests": "max_concurrent_requests",
}
_LATENCY = re.compile(r"^(?P<stat>mean|median|std|p(?P<pct>[\d.]+)) (?P<metric>ttft|tpot|itl|e2el) \(ms\)$")
_BANNER = re.compile(r"^=+ Serving Benchmark Result =+$")


def parse_serving_result(text: str) -> dict[str, Any]:
    """Request/token throughput and TTFT/TPOT/ITL/E2EL stats (ms) of a serving benchmark run."""
    out: dict[str, Any] = {"format": "vllm_serving", "extra": {}}
    inside = False
    lineno = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if _BANNER.match(line):
            inside = True
            continue
        if not inside or not line or line.startswith("-"):
            continue
        if set(line) == {"="}:
            break  # closing rule of the block
        if ":" not in line:
            raise ParseError(RESULT, lineno, f"expected '<label>: <value>', got {line!r}")
        label, _, value = line.rpartition(":")
        key = re.sub(r"\s+", " ", label.strip()).lower()
        try:
            number = to_number(value) if value.strip().lower() not in ("inf", "none") else value.strip()
        except ValueError:
            message = f"{label.strip()!r} should be a number, got {value.strip()!r}"
            raise ParseError(RESULT, lineno, message) from None
        lat = _LATENCY.match(key)
        if lat:
            stat = pct_key(float(lat.group("pct"))) if lat.group("pct") else lat.group("stat")
            out.setdefault(f"{lat.group('metric')}_ms", {})[stat] = float(number)
        elif key in _LABELS:
            out[_LABELS[key]] = number
        else:
            out["extra"][label.strip()] = number
    if not inside:
        raise ParseError(RESULT, 1, "no '==== Serving Benchmark Result ====' banner")
    if "completed" not in out:
        raise ParseError(RESULT, lineno, "no 'Successful requests:' line (truncated result?)")
    return out


def parse_result_json(text: str) -> dict[str, Any]:
    """The `--save-result` JSON, reshaped like parse_serving_result (per-request arrays kept)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(RESULT, exc.lineno, f"not JSON: {exc.msg}") from None
    if not isinstance(doc, dict) or "completed" not in doc:
        raise ParseError(RESULT, 1, "no 'completed' key: not a vllm bench serve result JSON")
    out: dict[str, Any] = {"format": "vllm_result_json", "extra": {}}
    stat_key = re.compile(r"^(?P<stat>mean|median|std|p(?P<pct>[\d.]+))_(?P<metric>ttft|tpot|itl|e2el)_ms$")
    for key, value in doc.items():
        m = stat_key.match(key)
        if m:
            stat = pct_key(float(m.group("pct"))) if m.group("pct") else m.group("stat")
            out.setdefault(f"{m.group('metric')}_ms", {})[stat] = value
        elif key == "duration":
            out["duration_s"] = value
        else:
            out[key] = value
    return out


def strip_jsonc(text: str) -> str:
    """JSON with // and /* */ comments, trailing commas and doc elisions (`[ ... ]`) made plain."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':  # copy a string literal as is, escapes included
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else n
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif text.startswith("...", i):
            i += 3
        else:
            out.append(ch)
            i += 1
    return re.sub(r",(\s*[\]}])", r"\1", "".join(out))


def parse_request_metrics(text: str) -> dict[str, Any]:
    """A chat/completions response with vLLM's `metrics` object (JSONC accepted): TTFT, generation
    time, queue time and mean ITL in ms, tokens/s, plus the usage token counts."""
    try:
        doc = json.loads(strip_jsonc(text))
    except json.JSONDecodeError as exc:
        raise ParseError(METRICS, exc.lineno, f"not JSON even without comments: {exc.msg}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict):
        hint = "was vllm serve run with --enable-per-request-metrics?"
        raise ParseError(METRICS, 1, f"no 'metrics' object ({hint})")
    metrics = doc["metrics"]
    usage = doc.get("usage") or {}
    return {
        "format": "vllm_request_metrics",
        "model": doc.get("model"),
        "ttft_ms": metrics.get("time_to_first_token_ms"),
        "generation_time_ms": metrics.get("generation_time_ms"),
        "queue_time_ms": metrics.get("queue_time_ms"),
        "mean_itl_ms": metrics.get("mean_itl_ms"),
        "tokens_per_second": metrics.get("tokens_per_second"),
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
    }
