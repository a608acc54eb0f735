"""dusty-nv/jetson-containers LLM benchmarks: `packages/llm/mlc/benchmark.py` console lines and
its `--save` CSV.

    <model>:  input=16 output=128 prefill_time 0.081 sec, prefill_rate 197.0 tokens/sec,
              decode_time 6.632 sec, decode_rate 19.3 tokens/sec           (one line per prompt)
    AVERAGE OVER n RUNS, <model>:  prefill_time ... (the same without input/output counts)
CSV header: timestamp, hostname, api, model, precision, input_tokens, output_tokens, prefill_time,
prefill_rate, decode_time, decode_rate, memory.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from console.parsers.common import ParseError, number_or_text

FORMAT = "jetson-containers mlc benchmark"

_LINE = re.compile(
    r"^(?P<head>.*?):?\s+(?:input=(?P<input>\d+) output=(?P<output>\d+) )?"
    r"prefill_time (?P<pt>\S+) sec, prefill_rate (?P<pr>\S+) tokens/sec, "
    r"decode_time (?P<dt>\S+) sec, decode_rate (?P<dr>\S+) tokens/sec\s*$"
)
_MEMORY = re.compile(r"^Peak memory usage:\s*(?P<mb>[\d.]+)\s*MB", re.IGNORECASE)


def parse_mlc_benchmark(text: str) -> dict[str, Any]:
    """Per-prompt and AVERAGE results (seconds, tokens/s) and peak memory (MB) of benchmark.py output."""
    results: list[dict[str, Any]] = []
    peak_memory_mb: float | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        memory = _MEMORY.match(line.strip())
        if memory:
            peak_memory_mb = float(memory.group("mb"))
            continue
        if "prefill_rate" not in line:
            continue  # the command line, model loading chatter, generated text
        m = _LINE.match(line.strip())
        if not m:
            raise ParseError(FORMAT, lineno, "a result line should read 'prefill_time X sec, prefill_rate Y "
                                             "tokens/sec, decode_time Z sec, decode_rate W tokens/sec'")
        head = m.group("head").strip()
        average = head.upper().startswith("AVERAGE")
        try:
            results.append({
                "model": head.split(",", 1)[1].strip() if average and "," in head else head,
                "average": average,
                "input_tokens": int(m.group("input")) if m.group("input") else None,
                "output_tokens": int(m.group("output")) if m.group("output") else None,
                "prefill_time_s": float(m.group("pt")), "prefill_rate_tps": float(m.group("pr")),
                "decode_time_s": float(m.group("dt")), "decode_rate_tps": float(m.group("dr")),
            })
        except ValueError:
            raise ParseError(FORMAT, lineno, "a time or rate is not a number") from None
    if not results:
        raise ParseError(FORMAT, 1, "no 'prefill_time ... decode_rate ...' result line")
    return {"format": "mlc_benchmark", "results": results, "peak_memory_mb": peak_memory_mb}


def parse_mlc_csv(text: str) -> list[dict[str, Any]]:
    """Rows of the `--save` CSV by column name (spaces after commas allowed)."""
    reader = csv.DictReader(io.StringIO(text), skipinitialspace=True)
    if not reader.fieldnames or "decode_rate" not in reader.fieldnames:
        raise ParseError(FORMAT + " CSV", 1, "header has no 'decode_rate' column")
    rows = []
    for row in reader:
        if None in row or any(v is None for v in row.values()):
            raise ParseError(FORMAT + " CSV", reader.line_num, "row and header have different field counts")
        rows.append({k: number_or_text(v) for k, v in row.items()})
    return rows
