"""Ollama `/api/generate` and `/api/chat` responses: the server's own timings, in nanoseconds.

A streamed (NDJSON) response carries them in its last object (`done: true`); a plain response is
that object alone. Decode tokens/s = eval_count / eval_duration x 1e9 (docs.ollama.com/api/usage).
"""

from __future__ import annotations

import json
from typing import Any

from console.parsers.common import ParseError

FORMAT = "Ollama response"
_DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


def _final_object(text: str) -> dict[str, Any]:
    """The one object of a plain response, or the `done: true` line of an NDJSON stream."""
    try:
        objects = [json.loads(text)]
    except json.JSONDecodeError:  # not one object: an NDJSON stream, one object per line
        objects = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    objects.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ParseError(FORMAT, lineno, f"not JSON: {exc.msg}") from None
    done = [o for o in objects if isinstance(o, dict) and o.get("done")]
    if not done:
        raise ParseError(FORMAT, len(text.splitlines()) or 1,
                         "no object with \"done\": true (the timings come in the last one)")
    return done[-1]


def parse_generate_response(text: str) -> dict[str, Any]:
    """Durations (ns and s), token counts and prefill/decode tokens/s of the final response object."""
    final = _final_object(text)
    out: dict[str, Any] = {"format": "ollama_generate", "model": final.get("model"),
                           "done_reason": final.get("done_reason")}
    for key in _DURATIONS:
        ns = final.get(key)
        out[key + "_ns"] = ns
        out[key.replace("_duration", "_s")] = ns / 1e9 if isinstance(ns, (int, float)) else None
    for key in ("prompt_eval_count", "eval_count", "prompt_eval_cached_count"):
        out[key] = final.get(key)

    def rate(count: Any, ns: Any) -> float | None:
        ok = isinstance(count, int) and isinstance(ns, (int, float)) and ns > 0
        return count / ns * 1e9 if ok else None

    out["prefill_tps"] = rate(final.get("prompt_eval_count"), final.get("prompt_eval_duration"))
    out["decode_tps"] = rate(final.get("eval_count"), final.get("eval_duration"))
    return out
