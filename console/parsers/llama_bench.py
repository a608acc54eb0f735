"""llama.cpp `llama-bench` results in every output format: md, csv, json, jsonl.

Columns are read by name and unknown ones are kept in `extra`, because the schema grows between
releases (README @ 5a32f10a vs 08d0baac). Markdown test labels changed from "pp 512" to "pp512",
and "pp512 @ d512" marks a prefilled context depth; labels are normalised to the newer form.
Each result: test, n_prompt, n_gen, n_depth, avg_ts, stddev_ts (tokens/s), avg_ns, stddev_ns.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from console.parsers.common import ParseError, number_or_text

FORMAT = "llama-bench"


@dataclass(frozen=True)
class BenchResult:
    """One llama-bench test row; throughput in tokens/s, times in ns (None where not printed)."""

    model: str | None
    test: str
    n_prompt: int
    n_gen: int
    n_depth: int
    avg_ts: float
    stddev_ts: float | None
    avg_ns: int | None = None
    stddev_ns: int | None = None
    backend: str | None = None
    n_gpu_layers: int | None = None
    samples_ts: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


_TEST = re.compile(r"^(?:(?P<pp>pp) ?(?P<np>\d+))?\+?(?:(?P<tg>tg) ?(?P<ng>\d+))?(?: @ d(?P<d>\d+))?$")
_TS = re.compile(r"^(?P<avg>[\d.]+)(?: ± (?P<sd>[\d.]+))?$")


def test_label(n_prompt: int, n_gen: int, n_depth: int = 0) -> str:
    """The llama-bench label of a test: 'pp512', 'tg128', 'pp512+tg128', '... @ d512'."""
    parts = ([f"pp{n_prompt}"] if n_prompt else []) + ([f"tg{n_gen}"] if n_gen else [])
    label = "+".join(parts) or "pp0"
    return f"{label} @ d{n_depth}" if n_depth else label


def _split_test(label: str, lineno: int) -> tuple[int, int, int]:
    """'pp 512' / 'pp512' / 'tg128 @ d512' / 'pp512+tg128' -> (n_prompt, n_gen, n_depth)."""
    m = _TEST.match(label.strip())
    if not m or not (m.group("pp") or m.group("tg")):
        raise ParseError(FORMAT, lineno, f"test label {label!r} is not ppN, tgN or ppN+tgN [@ dN]")
    return int(m.group("np") or 0), int(m.group("ng") or 0), int(m.group("d") or 0)


def parse_md(text: str) -> list[BenchResult]:
    """The markdown table (`-o md`, the default); lines before and after the table are ignored."""
    results: list[BenchResult] = []
    header: list[str] | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped.startswith("|"):
            if header is not None and results:
                break  # the table has ended ("build: ..." follows it)
            continue
        cells = [c.strip() for c in stripped.strip("|").split("|")]
        if header is None:
            if "test" in cells and "t/s" in cells:
                header = cells
            continue
        if all(set(c) <= set("-:") for c in cells):
            continue  # the |---|---:| separator row
        if len(cells) != len(header):
            raise ParseError(FORMAT, lineno, f"row has {len(cells)} cells, the header has {len(header)}")
        row = dict(zip(header, cells, strict=True))
        n_prompt, n_gen, n_depth = _split_test(row.pop("test"), lineno)
        ts = _TS.match(row.pop("t/s"))
        if not ts:
            raise ParseError(FORMAT, lineno, "t/s should read '<mean> ± <stddev>'")
        ngl = row.pop("ngl", None)
        results.append(BenchResult(
            model=row.pop("model", None), test=test_label(n_prompt, n_gen, n_depth),
            n_prompt=n_prompt, n_gen=n_gen, n_depth=n_depth,
            avg_ts=float(ts.group("avg")), stddev_ts=float(ts.group("sd")) if ts.group("sd") else None,
            backend=row.pop("backend", None), n_gpu_layers=int(ngl) if ngl and ngl.isdigit() else None,
            extra=row,
        ))
    if header is None:
        raise ParseError(FORMAT, 1, "no markdown table with 'test' and 't/s' columns")
    return results


def _from_record(rec: dict[str, Any], lineno: int) -> BenchResult:
    """A csv/json/jsonl record (named fields) as a BenchResult; unknown fields go to extra."""
    rec = dict(rec)
    if "avg_ts" not in rec:
        raise ParseError(FORMAT, lineno, "record has no 'avg_ts' field")
    try:
        n_prompt, n_gen, n_depth = (int(rec.pop(k, 0) or 0) for k in ("n_prompt", "n_gen", "n_depth"))
        avg_ts = float(rec.pop("avg_ts"))
        stddev = rec.pop("stddev_ts", None)
        avg_ns, stddev_ns = rec.pop("avg_ns", None), rec.pop("stddev_ns", None)
        ngl = rec.pop("n_gpu_layers", None)
        samples = [float(x) for x in rec.pop("samples_ts", None) or []]
        return BenchResult(
            model=rec.pop("model_type", None), test=test_label(n_prompt, n_gen, n_depth),
            n_prompt=n_prompt, n_gen=n_gen, n_depth=n_depth, avg_ts=avg_ts,
            stddev_ts=float(stddev) if stddev not in (None, "") else None,
            avg_ns=int(avg_ns) if avg_ns not in (None, "") else None,
            stddev_ns=int(stddev_ns) if stddev_ns not in (None, "") else None,
            backend=rec.pop("backends", None), n_gpu_layers=int(ngl) if ngl not in (None, "") else None,
            samples_ts=samples, extra=rec,
        )
    except (TypeError, ValueError) as exc:
        raise ParseError(FORMAT, lineno, f"bad number in record: {exc}") from None


def parse_csv(text: str) -> list[BenchResult]:
    """`-o csv`: a header row of field names, one quoted row per test."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or "avg_ts" not in header:
        raise ParseError(FORMAT, 1, "CSV header has no 'avg_ts' column")
    results = []
    for row in reader:
        lineno = reader.line_num
        if not row:
            continue
        if len(row) != len(header):
            raise ParseError(FORMAT, lineno, f"row has {len(row)} fields, the header has {len(header)}")
        rec = {k: number_or_text(v) if k not in ("build_commit", "cpu_mask") else v
               for k, v in zip(header, row, strict=True)}
        results.append(_from_record(rec, lineno))
    return results


def parse_json(text: str) -> list[BenchResult]:
    """`-o json`: a JSON array of records."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(FORMAT, exc.lineno, f"not JSON: {exc.msg}") from None
    if not isinstance(doc, list):
        raise ParseError(FORMAT, 1, "expected a JSON array of results")
    return [_from_record(rec, 1) for rec in doc]


def parse_jsonl(text: str) -> list[BenchResult]:
    """`-o jsonl`: one JSON record per line."""
    results = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ParseError(FORMAT, lineno, f"not JSON: {exc.msg}") from None
        results.append(_from_record(rec, lineno))
    return results


def parse_llama_bench(text: str) -> list[BenchResult]:
    """Any llama-bench output, the format told apart by its first characters."""
    head = text.lstrip()
    if head.startswith("["):
        return parse_json(text)
    if head.startswith("{"):
        return parse_jsonl(text)
    if head.startswith("build_commit") or re.match(r"^[\w\"]+,", head):
        return parse_csv(text)
    return parse_md(text)
