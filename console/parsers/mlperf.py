"""MLPerf LoadGen logs: `mlperf_log_summary.txt` and `mlperf_log_detail.txt`.

Summary: three blocks framed by rows of `=` (MLPerf Results Summary, Additional Stats, Test
Parameters Used), then warning/error counts. Wording differs between LoadGen versions
("90th percentile latency (ns)" up to 4.x, "90.0th percentile latency (ns)" in 6.0; "Time to
Output Token" in 5.1, "Time per Output Token" in 6.0), so keys are matched by pattern, not text.

`qps` is the scenario's throughput line, in samples (or queries) per second:
- Offline: "Samples per second" (the headline)
- Server: "Completed samples per second", else "Scheduled samples per second" (v1.1 headline)
- SingleStream / MultiStream: "QPS w/ loadgen overhead" (queries/s) where printed, else None
LLM runs also give `tokens_per_s` ("Completed tokens per second" / "Tokens per second").
Latencies are integers in ns under keys min, max, mean, p50, p90, p95, p97, p99, p99.9.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from console.parsers.common import ParseError, number_or_text, pct_key, to_number

SUMMARY = "MLPerf summary"
DETAIL = "MLPerf detail log"

_RULE = re.compile(r"^={20,}\s*$")
_KV = re.compile(r"^(?P<key>[^:]+?)\s*:\s*(?P<value>.*?)\s*$")
_PCT = r"(?P<pct>\d+(?:\.\d+)?)(?:th)?"
_STAT = r"(?P<stat>min|max|mean)"
# Which latency dict a normalised (lowercase, single-spaced) key belongs to.
_LATENCY_KEYS = (
    ("latency_ns", re.compile(rf"^(?:{_STAT} latency|{_PCT} percentile latency) \(ns\)$")),
    ("ttft_ns", re.compile(
        rf"^(?:{_STAT} first token latency|{_PCT} percentile first token latency) \(ns\)$")),
    ("tpot_ns", re.compile(rf"^(?:{_STAT}|{_PCT} percentile) time (?:to|per) output token \(ns\)$")),
)
_THROUGHPUT_KEYS = {
    "samples per second": "samples_per_s",
    "scheduled samples per second": "scheduled_samples_per_s",
    "completed samples per second": "completed_samples_per_s",
    "tokens per second": "tokens_per_s",
    "completed tokens per second": "completed_tokens_per_s",
    "qps w/ loadgen overhead": "qps_with_loadgen_overhead",
    "qps w/o loadgen overhead": "qps_without_loadgen_overhead",
}
_CHECK_KEYS = {
    "min duration satisfied": "min_duration",
    "min queries satisfied": "min_queries",
    "performance constraints satisfied": "perf_constraints",
    "early stopping satisfied": "early_stopping",
}
# Throughput key used as `qps`, in order of preference, per scenario.
QPS_BY_SCENARIO = {
    "Offline": ("samples_per_s",),
    "Server": ("completed_samples_per_s", "scheduled_samples_per_s"),
    "SingleStream": ("qps_with_loadgen_overhead",),
    "MultiStream": ("qps_with_loadgen_overhead",),
}
_BULLET_HEAD = re.compile(r"^(?:(?P<kind>TTFT|TPOT) )?Early Stopping Result:\s*$")
_ESTIMATE = re.compile(r"Early stopping " + _PCT + r" percentile estimate: (?P<value>\d+)")
# "Processed at least 64 queries (135443)." / "Only processed 16 queries." / "Processed 256 queries."
_PROCESSED = re.compile(r"[Pp]rocessed (?:at least \d+ queries \((?P<n1>\d+)\)|(?P<n2>\d+) queries)")
_COUNT_LINE = re.compile(r"^(?:(?P<n>\d+)|No) (?P<what>warning|error)s? encountered", re.IGNORECASE)
_SECTIONS = {
    "MLPerf Results Summary": "results", "Additional Stats": "stats", "Test Parameters Used": "params",
}


def _norm(key: str) -> str:
    return re.sub(r"\s+", " ", key.strip()).lower()


def _setting_key(key: str) -> str:
    """'target_latency (ns)' -> 'target_latency_ns', 'min_duration (ms)' -> 'min_duration_ms'."""
    key = re.sub(r"\s*\((\w+)\)", r"_\1", key.strip())
    return re.sub(r"\s+", "_", key)


def _latency_slot(nkey: str) -> tuple[str, str] | None:
    """('latency_ns', 'p90') for '90.00 percentile latency (ns)'; None for other keys."""
    for field, pattern in _LATENCY_KEYS:
        m = pattern.match(nkey)
        if m:
            return field, (m.group("stat") or pct_key(float(m.group("pct"))))
    return None


class _Summary:
    """State while reading one summary file top to bottom."""

    def __init__(self) -> None:
        self.out: dict[str, Any] = {
            "format": "mlperf_summary", "sut_name": None, "scenario": None, "mode": None, "valid": None,
            "result": None, "qps": None, "qps_metric": None, "tokens_per_s": None, "headline": None,
            "latency_ns": {}, "throughput": {}, "checks": {}, "recommendations": [],
            "early_stopping": {
                "satisfied": None, "results": {}, "estimates_ns": {}, "queries_processed": None,
            },
            "settings": {}, "stats": {}, "extra": {}, "other_blocks": {}, "warnings": [], "counts": {},
        }
        self.bullets: list[str] | None = None  # the bullet list being filled, if any
        self.in_warning = False

    def fail(self, lineno: int, message: str) -> ParseError:
        return ParseError(SUMMARY, lineno, message)

    def number(self, lineno: int, key: str, value: str) -> int | float:
        try:
            return to_number(value)
        except ValueError:
            raise self.fail(lineno, f"'{key}' should be a number, got {value!r}") from None

    def results_line(self, lineno: int, line: str) -> None:
        stripped = line.strip()
        if self.bullets is not None and line.startswith(" ") and not self._is_check(stripped):
            if stripped.startswith("*") or not self.bullets:
                self.bullets.append(stripped.lstrip("* ").strip())
            else:  # a bullet wrapped over several lines
                self.bullets[-1] += " " + stripped
            return
        head = _BULLET_HEAD.match(stripped)
        if head:
            kind = (head.group("kind") or "latency").lower()
            self.bullets = self.out["early_stopping"]["results"].setdefault(kind, [])
            return
        if stripped == "Recommendations:":
            self.bullets = self.out["recommendations"]
            return
        self.bullets = None
        m = _KV.match(stripped)
        if not m:
            raise self.fail(lineno, f"unexpected line in the results block: {stripped!r}")
        key, value, nkey = m.group("key"), m.group("value"), _norm(m.group("key"))
        if nkey == "sut name":
            self.out["sut_name"] = value
        elif nkey in ("scenario", "mode"):
            self.out[nkey] = value
        elif nkey == "result is":
            if value not in ("VALID", "INVALID"):
                raise self.fail(lineno, f"'Result is' should be VALID or INVALID, got {value!r}")
            self.out["result"], self.out["valid"] = value, value == "VALID"
        elif nkey in _CHECK_KEYS:
            self.out["checks"][_CHECK_KEYS[nkey]] = value.lower() == "yes"
        else:
            if _latency_slot(nkey) or nkey in _THROUGHPUT_KEYS:
                self.out["headline"] = self.out["headline"] or {"metric": key, "value": None}
                if self.out["headline"]["metric"] == key:
                    self.out["headline"]["value"] = self.number(lineno, key, value)
            self.stat(lineno, key, value, extra=self.out["extra"])

    def _is_check(self, stripped: str) -> bool:
        m = _KV.match(stripped)
        return bool(m and _norm(m.group("key")) in _CHECK_KEYS)

    def stat(self, lineno: int, key: str, value: str, extra: dict[str, Any]) -> None:
        nkey = _norm(key)
        slot = _latency_slot(nkey)
        if slot:
            field, name = slot
            number = self.number(lineno, key, value)
            if not isinstance(number, int):
                raise self.fail(lineno, f"'{key}' should be whole nanoseconds, got {value!r}")
            self.out.setdefault(field, {})[name] = number
        elif nkey in _THROUGHPUT_KEYS:
            self.out["throughput"][_THROUGHPUT_KEYS[nkey]] = float(self.number(lineno, key, value))
        else:
            extra[_setting_key(key)] = number_or_text(value)

    def stats_line(self, lineno: int, line: str) -> None:
        stripped = line.strip()
        if stripped.endswith(":") and ":" not in stripped[:-1]:
            return  # "Per-query latency:" announces the MultiStream stats that follow
        m = _KV.match(stripped)
        if not m:
            raise self.fail(lineno, f"unexpected line in Additional Stats: {stripped!r}")
        self.stat(lineno, m.group("key"), m.group("value"), extra=self.out["stats"])

    def params_line(self, lineno: int, line: str) -> None:
        stripped = line.strip()
        if stripped.startswith("WARNING"):
            self.out["warnings"].append(stripped)
            self.in_warning = True
            return
        m = _KV.match(stripped)
        if m and " " not in m.group("value"):
            self.in_warning = False
            self.out["settings"][_setting_key(m.group("key"))] = number_or_text(m.group("value"))
        elif self.in_warning:
            self.out["warnings"][-1] += " " + stripped
        else:
            raise self.fail(lineno, f"unexpected line in Test Parameters Used: {stripped!r}")

    def finish(self, last_line: int) -> dict[str, Any]:
        out = self.out
        for field in ("scenario", "mode", "result"):
            if out[field] is None:
                label = {"result": "Result is"}.get(field, field.capitalize())
                raise self.fail(last_line, f"no '{label} :' line: not a complete MLPerf Results Summary")
        throughput = out["throughput"]
        for name in QPS_BY_SCENARIO.get(out["scenario"], tuple(throughput)):
            if name in throughput:
                out["qps"], out["qps_metric"] = throughput[name], name
                break
        out["tokens_per_s"] = throughput.get("completed_tokens_per_s", throughput.get("tokens_per_s"))
        early = out["early_stopping"]
        early["satisfied"] = out["checks"].get("early_stopping")
        for bullets in early["results"].values():
            for bullet in bullets:
                m = _ESTIMATE.search(bullet)
                if m:
                    early["estimates_ns"][pct_key(float(m.group("pct")))] = int(m.group("value"))
                done = _PROCESSED.search(bullet)
                if done:  # the only query count a summary prints
                    early["queries_processed"] = int(done.group("n1") or done.group("n2"))
        for field in ("ttft_ns", "tpot_ns"):
            if field in out and not out[field]:
                del out[field]
        return out


def parse_summary(text: str) -> dict[str, Any]:
    """Parse an `mlperf_log_summary.txt` into scenario, mode, valid, qps, latency_ns, settings...

    Raises ParseError (with the line number) on text that is not a LoadGen summary.
    """
    state = _Summary()
    lines = text.splitlines()
    if not any(_RULE.match(x) for x in lines):
        raise ParseError(SUMMARY, 1, "no '====' framed blocks: not an mlperf_log_summary.txt")
    section: str | None = None
    lineno = 0
    for lineno, line in enumerate(lines, start=1):
        if _RULE.match(line):
            continue
        prev_rule = lineno >= 2 and _RULE.match(lines[lineno - 2])
        next_rule = lineno < len(lines) and _RULE.match(lines[lineno])
        if prev_rule and next_rule:
            title = line.strip()
            # a block a newer LoadGen adds is kept as text rather than refused
            section = _SECTIONS.get(title, "other:" + title)
            state.bullets, state.in_warning = None, False
            continue
        if not line.strip():
            state.in_warning = False
            continue
        count = _COUNT_LINE.match(line.strip())
        if count:
            what = count.group("what").lower() + "s"
            state.out["counts"][what] = int(count.group("n") or 0)
            section = "trailer"
            continue
        if section is None:
            raise state.fail(lineno, "expected the 'MLPerf Results Summary' block first")
        if section == "results":
            state.results_line(lineno, line)
        elif section == "stats":
            state.stats_line(lineno, line)
        elif section == "params":
            state.params_line(lineno, line)
        elif section.startswith("other:"):
            state.out["other_blocks"].setdefault(section[6:], []).append(line.strip())
        else:
            state.out["warnings"].append(line.strip())
    return state.finish(lineno)


# ---------------------------------------------------------------- detail log

_MLLOG = ":::MLLOG "
_POWER_TIME = "%m-%d-%Y %H:%M:%S.%f"
_DETAIL_LATENCY = (
    ("latency_ns", re.compile(
        r"^result_(?:(?P<stat>min|max|mean)_latency_ns|(?P<pct>[\d.]+)_percentile_latency_ns)$")),
    ("ttft_ns", re.compile(
        r"^result_first_token_(?:(?P<stat>min|max|mean)_latency_ns|(?P<pct>[\d.]+)_percentile_latency_ns)$")),
    ("tpot_ns", re.compile(
        r"^result_time_(?:per|to)_output_token_(?:(?P<stat>min|max|mean)|(?P<pct>[\d.]+)_percentile)(?:_ns)?$")),
)
_DETAIL_QPS = {
    "Offline": ("result_samples_per_second",),
    "Server": ("result_completed_samples_per_sec", "result_scheduled_samples_per_sec"),
    "SingleStream": ("result_qps_with_loadgen_overhead",),
    "MultiStream": ("result_qps_with_loadgen_overhead",),
}


def parse_detail(text: str) -> list[dict[str, Any]]:
    """Every `:::MLLOG {json}` entry of an `mlperf_log_detail.txt`, in order.

    Other lines (stdout copied into the file) are skipped; a broken MLLOG line is a ParseError.
    """
    entries: list[dict[str, Any]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        start = line.find(_MLLOG)
        if start < 0:
            continue
        try:
            entry = json.loads(line[start + len(_MLLOG):])
        except json.JSONDecodeError as exc:
            message = f"MLLOG entry is not JSON ({exc.msg}, column {exc.colno})"
            raise ParseError(DETAIL, lineno, message) from None
        if not isinstance(entry, dict) or "key" not in entry:
            raise ParseError(DETAIL, lineno, "MLLOG entry has no 'key'")
        entries.append(entry)
    if not entries:
        raise ParseError(DETAIL, 1, "no ':::MLLOG' lines: not an mlperf_log_detail.txt")
    return entries


def detail_values(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """key -> value of a parsed detail log; a key logged twice keeps its last value."""
    return {e["key"]: e.get("value") for e in entries}


def detail_counts(entries: list[dict[str, Any]]) -> dict[str, int]:
    """How many entries, and how many LoadGen flagged as errors or warnings."""
    meta = [e.get("metadata") or {} for e in entries]
    return {
        "entries": len(entries),
        "errors": sum(1 for m in meta if m.get("is_error")),
        "warnings": sum(1 for m in meta if m.get("is_warning")),
    }


def power_time(value: str) -> datetime:
    """A LoadGen/PTDaemon clock string ('07-15-2023 12:16:47.721') as a UTC datetime."""
    return datetime.strptime(value.strip(), _POWER_TIME).replace(tzinfo=timezone.utc)


def power_window(entries: list[dict[str, Any]]) -> tuple[datetime, datetime] | None:
    """(power_begin, power_end) of the performance run, or None when LoadGen did not log them."""
    values = detail_values(entries)
    if "power_begin" not in values or "power_end" not in values:
        return None
    try:
        return power_time(values["power_begin"]), power_time(values["power_end"])
    except (TypeError, ValueError):
        raise ParseError(DETAIL, None, f"power_begin/power_end not in {_POWER_TIME} form") from None


def detail_results(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The result_* entries in the same shape as parse_summary: scenario, valid, qps, latency_ns...

    Latencies come from result_{min,max,mean}_latency_ns and result_<pct>_percentile_latency_ns,
    plus result_first_token_* (ttft_ns) and result_time_per/to_output_token_* (tpot_ns) for LLMs.
    """
    values = detail_values(entries)
    scenario = values.get("effective_scenario", values.get("requested_scenario"))
    out: dict[str, Any] = {
        "format": "mlperf_detail",
        "loadgen_version": values.get("loadgen_version"),
        "sut_name": values.get("sut_name"),
        "scenario": scenario,
        "mode": values.get("effective_test_mode", values.get("requested_test_mode")),
        "result": values.get("result_validity"),
        "valid": values.get("result_validity") == "VALID" if "result_validity" in values else None,
        "query_count": values.get("result_query_count"),
        "early_stopping_met": values.get("early_stopping_met"),
        "qps": None, "qps_metric": None,
        "tokens_per_s": values.get("result_completed_tokens_per_second",
                                   values.get("result_tokens_per_second")),
        "latency_ns": {},
    }
    for key, value in values.items():
        for field, pattern in _DETAIL_LATENCY:
            m = pattern.match(key)
            if m:
                name = m.group("stat") or pct_key(float(m.group("pct")))
                out.setdefault(field, {})[name] = value
                break
    for key in _DETAIL_QPS.get(scenario, ()):
        if key in values:
            out["qps"], out["qps_metric"] = float(values[key]), key
            break
    window = power_window(entries)
    out["power_begin"], out["power_end"] = window if window else (None, None)
    return out
