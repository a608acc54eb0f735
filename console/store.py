"""Run directories: one per job, the unit of storage (DESIGN.md "Run directory").

    <root>/<campaign-or-"adhoc">/<run-id>/
      run.json            what was asked (written atomically, rewritten by write_meta)
      samples.parquet     seq, t, rail, watts, energy_j   (long format, one row per rail reading)
      queries.parquet     seq, query_id, issue_t, done_t, latency_ms, ok, extra (JSON text)
      events.jsonl        lifecycle events, errors, reconnects, backfills, device log rows
      summary.json        metrics.summarize_run() output plus "complete"

Crash safety: while a run is open, sample and query rows are appended to `samples.part.jsonl` /
`queries.part.jsonl` (wire rows, flushed per batch, fsync'd at most once a second). `finish()`
writes the parquet files through a temporary name + os.replace, then summary.json, and only then
removes the parts. A crash at any point leaves either the parts or the final files (or both, which
read the same), so `load_run()` always gets every row that reached disk; a torn last line is skipped.
A run without summary.json or with parts left over is reported `complete=False`.

Idempotent by seq: rows carry the agent's per-stream seq, and a seq already stored is dropped, so a
backfill that overlaps the live stream (or a re-attach that refetches) never duplicates a row.

Storage format, and why long format meets the size target (DESIGN Performance: <= 8 bytes per sample):
one row per (sample, rail) reading: `rail` is dictionary-encoded (a few distinct names),
`seq` is DELTA_BINARY_PACKED (contiguous ints cost ~0 bytes), `t` is float64 rounded to 0.1 ms and
`watts` float32 rounded to 1 mW (finer than any sensor we read: INA3221 LSB 8 mW, NVML 1 mW),
`energy_j` float64 rounded to 1 mJ only on the "total" row (null elsewhere); floats use
BYTE_STREAM_SPLIT + zstd. "Sample" in the target is one stored reading (a row);
tests/console/test_store.py measures the bytes per row and per timestamp on a sim-like signal.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from console.errors import WattlabError

TOTAL_RAIL = "total"
LOCK_NAME = ".writer.lock"  # present only while a writer holds the run
STREAMS = ("samples", "queries")
_FSYNC_EVERY_S = 1.0


class StoreError(WattlabError):
    """A run directory that cannot be written or read."""


# --- run ids --------------------------------------------------------------------------------


def _sanitise(text: str, limit: int = 40) -> str:
    """Keep run ids path- and shell-safe: [A-Za-z0-9.-], other runs of characters become '-'."""
    out = re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-.")
    return (out or "x")[:limit]


def make_run_id(host: str, device: str, now: float | None = None) -> str:
    """A sortable run id: `YYYYmmdd-HHMMSS-<host>-<device>-<4 hex>` (UTC)."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    host, device = _sanitise(host), _sanitise(device)
    who = host if host == device else f"{host}-{device}"  # sim:<id> hosts are named after their device
    return f"{stamp:%Y%m%d-%H%M%S}-{who}-{secrets.token_hex(2)}"


# --- seq bookkeeping ------------------------------------------------------------------------


class SeqSet:
    """The seqs already stored for one stream: a contiguous watermark plus the out-of-order rest."""

    __slots__ = ("contiguous", "_extra")

    def __init__(self) -> None:
        self.contiguous = -1  # every seq <= contiguous is stored
        self._extra: set[int] = set()

    def add(self, seq: int) -> bool:
        """Record seq; False when it was already there (a duplicate to drop)."""
        if seq <= self.contiguous or seq in self._extra:
            return False
        if seq == self.contiguous + 1:
            self.contiguous = seq
            while self.contiguous + 1 in self._extra:
                self._extra.discard(self.contiguous + 1)
                self.contiguous += 1
        else:
            self._extra.add(seq)
        return True

    @property
    def last(self) -> int:
        """Highest seq seen (may be past a gap), -1 when empty."""
        return max(self._extra) if self._extra else self.contiguous

    def __len__(self) -> int:
        return self.contiguous + 1 + len(self._extra)


# --- writer ---------------------------------------------------------------------------------


class _PartFile:
    """An append-only JSON-lines file: one write + flush per batch, fsync at most once a second."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "a", encoding="utf-8")  # held open for the whole run
        self._last_sync = 0.0

    def append(self, rows: Iterable[Any]) -> None:
        data = "".join(json.dumps(r, separators=(",", ":"), allow_nan=False) + "\n" for r in rows)
        if not data:
            return
        self._fh.write(data)
        self._fh.flush()  # a killed console loses nothing that was handed to us
        now = time.monotonic()
        if now - self._last_sync >= _FSYNC_EVERY_S:
            os.fsync(self._fh.fileno())  # bound what a power cut can lose without an fsync per batch
            self._last_sync = now

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()


class RunWriter:
    """Writes one run directory; thread-safe (link reader threads and the runner share it)."""

    def __init__(self, root: str | os.PathLike[str], campaign: str | None = None, run_id: str | None = None,
                 *, host: str = "local", device: str = "none") -> None:
        self.campaign = campaign or "adhoc"
        self.run_id = run_id or make_run_id(host, device)
        self.path = Path(root) / _sanitise(self.campaign, 80) / self.run_id
        self._lock = threading.Lock()
        self._seen = {s: SeqSet() for s in STREAMS}
        self._event_seqs = SeqSet()
        self._finished = False
        self._lockfd: int | None = None
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lockfd = _lock_run(self.path)
            if (self.path / "summary.json").exists() and not _has_parts(self.path):
                self._unlock()
                raise StoreError("run is already finished", where=str(self.path))
            # Re-opening a run (measure --attach, campaign resume) continues its parts and seqs.
            for stream in STREAMS:
                for row in _read_jsonl(self.path / f"{stream}.part.jsonl"):
                    self._seen[stream].add(int(row[0]))
            for ev in _read_jsonl(self.path / "events.jsonl"):
                if isinstance(ev, dict) and isinstance(ev.get("seq"), int):
                    self._event_seqs.add(ev["seq"])
            if not (self.path / "run.json").exists():  # a run dir is recognisable from its first moment
                first = {"run_id": self.run_id, "campaign": self.campaign, "created_wall": time.time()}
                atomic_write_text(self.path / "run.json", json.dumps(first))
            self._parts = {s: _PartFile(self.path / f"{s}.part.jsonl") for s in STREAMS}
            self._events = _PartFile(self.path / "events.jsonl")
        except OSError as exc:
            raise StoreError(f"cannot write run directory: {exc}", where=str(self.path)) from exc

    @classmethod
    def reopen(cls, run_dir: str | os.PathLike[str]) -> RunWriter:
        """Continue an unfinished run directory (its parts and seqs)."""
        run_dir = Path(run_dir)
        if not (run_dir / "run.json").exists():
            raise StoreError("not a run directory (no run.json)", where=str(run_dir))
        return cls(run_dir.parent.parent, run_dir.parent.name, run_dir.name)

    # -- rows --
    def add_samples(self, rows: Sequence[list]) -> int:
        """Store wire sample rows `[seq, t_s, total_w, {rail: W}, energy_j]`; returns how many were new."""
        return self._add("samples", rows)

    def add_queries(self, rows: Sequence[list]) -> int:
        """Store wire query rows `[seq, query_id, issue_t_s, done_t_s, ok, extra]`; returns the new count."""
        return self._add("queries", rows)

    def _add(self, stream: str, rows: Sequence[list]) -> int:
        with self._lock:
            self._check_open()
            seen = self._seen[stream]
            fresh = [r for r in rows if seen.add(int(r[0]))]
            try:
                self._parts[stream].append(fresh)
            except OSError as exc:
                raise StoreError(f"cannot append {stream}: {exc}", where=str(self.path)) from exc
            return len(fresh)

    def rows(self, stream: str) -> list[list]:
        """The wire rows stored so far in a stream ("samples" or "queries"), unique by seq, in seq order."""
        with self._lock:
            if not self._parts[stream]._fh.closed:
                self._parts[stream]._fh.flush()
        by_seq: dict[int, list] = {}
        for r in _parts_frame(self.path, stream):
            by_seq.setdefault(int(r[0]), r)
        return [by_seq[k] for k in sorted(by_seq)]

    def last_seq(self, stream: str) -> int:
        """Highest seq such that every seq up to it is stored (-1 when none): where a backfill starts."""
        if stream == "events":
            return self._event_seqs.contiguous
        return self._seen[stream].contiguous

    def count(self, stream: str) -> int:
        """Rows stored so far in a stream."""
        return len(self._event_seqs if stream == "events" else self._seen[stream])

    # -- events and metadata --
    def event(self, kind: str, **fields: Any) -> None:
        """Append one console-side event (reconnect, backfill, error...) to events.jsonl."""
        self._append_events([{"t_wall": round(time.time(), 3), "kind": kind, **fields}])

    def add_device_events(self, rows: Sequence[list]) -> int:
        """Store the agent's event rows `[seq, t_s, kind, fields]` (marks, notices), deduplicated by seq."""
        with self._lock:
            fresh = [r for r in rows if self._event_seqs.add(int(r[0]))]
        self._append_events([{"seq": r[0], "t": r[1], "kind": r[2], "source": "device", **(r[3] or {})}
                             for r in fresh])
        return len(fresh)

    def _append_events(self, events: list[dict[str, Any]]) -> None:
        with self._lock:
            self._check_open(allow_finished=True)
            try:
                self._events.append(events)
            except OSError as exc:
                raise StoreError(f"cannot append events: {exc}", where=str(self.path)) from exc

    def write_meta(self, meta: dict[str, Any]) -> None:
        """Write (or merge into) run.json atomically."""
        with self._lock:
            current = _read_json(self.path / "run.json") or {}
            current.update(meta)
            current.setdefault("run_id", self.run_id)
            current.setdefault("campaign", self.campaign)
            atomic_write_text(self.path / "run.json", json.dumps(current, indent=2, sort_keys=True))

    def read_meta(self) -> dict[str, Any]:
        """run.json as stored ({} before write_meta)."""
        return _read_json(self.path / "run.json") or {}

    # -- finishing --
    def finish(self, summary: dict[str, Any], complete: bool = True) -> Path:
        """Convert parts to parquet (atomically), write summary.json, remove the parts."""
        with self._lock:
            self._check_open()
            for part in self._parts.values():
                part.close()
            self._finished = True
            try:
                samples = _parts_frame(self.path, "samples")
                queries = _parts_frame(self.path, "queries")
                _write_parquet(samples_table(samples), self.path / "samples.parquet")
                _write_parquet(queries_table(queries), self.path / "queries.parquet")
                doc = dict(summary, complete=bool(complete))
                atomic_write_text(self.path / "summary.json", json.dumps(doc, indent=2, sort_keys=True))
                for stream in STREAMS:
                    (self.path / f"{stream}.part.jsonl").unlink(missing_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot finish run (parts kept): {exc}", where=str(self.path)) from exc
            self._unlock()
        return self.path

    def close(self) -> None:
        """Close files without finishing (the run stays readable and incomplete)."""
        with self._lock:
            for part in self._parts.values():
                part.close()
            self._events.close()
            self._finished = True
            self._unlock()

    def _unlock(self) -> None:
        if self._lockfd is not None:
            (self.path / LOCK_NAME).unlink(missing_ok=True)
            os.close(self._lockfd)  # closing the descriptor releases the flock
            self._lockfd = None

    def _check_open(self, allow_finished: bool = False) -> None:
        if self._finished and not allow_finished:
            raise StoreError("run is already finished", where=str(self.path))
        if self._finished and self._events._fh.closed:
            self._events = _PartFile(self.path / "events.jsonl")


def _lock_run(path: Path) -> int:
    """Take the run directory's writer lock: two consoles never record the same run at once."""
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreError("run is being recorded by another wattlab process", where=str(path),
                         fix="wait for it to finish, or stop that process first") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


# --- conversion -----------------------------------------------------------------------------


def samples_table(rows: Iterable[list]):
    """Wire sample rows -> the long-format Arrow table stored in samples.parquet (sorted, unique by seq).

    Built column-wise with numpy (one pass per rail) so an hour at 100 Hz converts in about a second.
    """
    import numpy as np
    import pyarrow as pa

    by_seq: dict[int, list] = {}
    for r in rows:
        by_seq.setdefault(int(r[0]), r)
    uniq = [by_seq[k] for k in sorted(by_seq)]
    n = len(uniq)
    names: dict[str, None] = {}
    for r in uniq:
        for name in r[3] or ():
            if name != TOTAL_RAIL:  # the device total is already the "total" row
                names.setdefault(name, None)
    seq = np.fromiter((r[0] for r in uniq), np.int64, n)
    t = np.round(np.fromiter((r[1] for r in uniq), np.float64, n), 4)
    nan = float("nan")
    # block 0 = total, block k = k-th rail; `present` says which (sample, rail) readings exist
    watts = [np.fromiter((nan if r[2] is None else r[2] for r in uniq), np.float64, n)]
    present = [np.ones(n, bool)]
    for name in names:
        watts.append(np.fromiter((nan if (r[3] or {}).get(name) is None else r[3][name] for r in uniq),
                                 np.float64, n))
        present.append(np.fromiter((name in (r[3] or {}) for r in uniq), bool, n))
    energy = np.fromiter((nan if r[4] is None else r[4] for r in uniq), np.float64, n)
    blocks = len(watts)
    # interleave seq-major: for each sample, total then its rails in first-seen order
    w_all = np.round(np.stack(watts, axis=1), 3).reshape(-1)
    keep = np.stack(present, axis=1).reshape(-1)
    rail_idx = np.tile(np.arange(blocks, dtype=np.int32), n)[keep]
    e_all = np.full((n, blocks), nan)
    e_all[:, 0] = np.round(energy, 3)
    dictionary = pa.array([TOTAL_RAIL, *names], pa.string())
    return pa.table({
        "seq": pa.array(np.repeat(seq, blocks)[keep].astype(np.int32)),
        "t": pa.array(np.repeat(t, blocks)[keep]),
        "rail": pa.DictionaryArray.from_arrays(pa.array(rail_idx), dictionary),
        "watts": pa.array(w_all[keep].astype(np.float32), from_pandas=True),
        "energy_j": pa.array(e_all.reshape(-1)[keep], from_pandas=True),
    })


def queries_table(rows: Iterable[list]):
    """Wire query rows -> the Arrow table stored in queries.parquet (sorted, unique by seq)."""
    import pyarrow as pa

    by_seq: dict[int, list] = {}
    for r in rows:
        by_seq.setdefault(int(r[0]), r)
    names = ("seq", "query_id", "issue_t", "done_t", "latency_ms", "ok", "extra")
    cols: dict[str, list] = {k: [] for k in names}
    for seq in sorted(by_seq):
        _, qid, issue, done, ok, extra = by_seq[seq]
        cols["seq"].append(seq)
        cols["query_id"].append(int(qid))
        cols["issue_t"].append(float(issue))
        cols["done_t"].append(None if done is None else float(done))
        cols["latency_ms"].append(None if done is None else (float(done) - float(issue)) * 1000.0)
        cols["ok"].append(bool(ok))
        cols["extra"].append(json.dumps(extra or {}, separators=(",", ":")))
    return pa.table({
        "seq": pa.array(cols["seq"], pa.int32()),
        "query_id": pa.array(cols["query_id"], pa.int64()),
        "issue_t": pa.array(cols["issue_t"], pa.float64()),
        "done_t": pa.array(cols["done_t"], pa.float64()),
        "latency_ms": pa.array(cols["latency_ms"], pa.float64()),
        "ok": pa.array(cols["ok"], pa.bool_()),
        "extra": pa.array(cols["extra"], pa.string()),
    })


def _write_parquet(table, path: Path) -> None:
    import pyarrow.parquet as pq

    floats = [n for n in table.column_names if str(table.schema.field(n).type) in ("float", "double")]
    encodings = {n: "BYTE_STREAM_SPLIT" for n in floats}
    encodings.update({n: "DELTA_BINARY_PACKED" for n in ("seq",) if n in table.column_names})
    dict_cols = [n for n in table.column_names if n not in encodings]
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd", compression_level=9,
                   use_dictionary=dict_cols, column_encoding=encodings)
    os.replace(tmp, path)


# --- reading --------------------------------------------------------------------------------


@dataclass
class Run:
    """A stored run: metadata, samples and queries as DataFrames, events and summary."""

    path: Path
    meta: dict[str, Any]
    samples: Any  # pandas.DataFrame: seq, t, rail, watts, energy_j
    queries: Any  # pandas.DataFrame: seq, query_id, issue_t, done_t, latency_ms, ok, extra
    events: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    complete: bool = False

    def total(self):
        """The device-total rows (t, watts, energy_j) in seq order."""
        s = self.samples
        return s[s["rail"] == TOTAL_RAIL].reset_index(drop=True)


def load_run(path: str | os.PathLike[str]) -> Run:
    """Read a run directory, finished or not (a partial run is read from its parts, complete=False)."""
    import pyarrow.parquet as pq

    path = Path(path)
    meta = _read_json(path / "run.json")
    if meta is None:
        raise StoreError("not a run directory (no readable run.json)", where=str(path))
    summary = _read_json(path / "summary.json") or {}
    parts = _has_parts(path)
    tables = {}
    for stream, build in (("samples", samples_table), ("queries", queries_table)):
        final = path / f"{stream}.parquet"
        if parts or not final.exists():
            rows = _parts_frame(path, stream)
            if final.exists():  # crash between parquet and part removal: both hold the same rows
                rows = _parquet_rows(pq.read_table(final), stream) + rows
            tables[stream] = build(rows).to_pandas()
        else:
            tables[stream] = pq.read_table(final).to_pandas()
    events = [e for e in _read_jsonl(path / "events.jsonl") if isinstance(e, dict)]
    complete = bool(summary.get("complete")) and not parts
    return Run(path, meta, tables["samples"], tables["queries"], events, summary, complete)


def sample_rows(run: Run) -> list[list]:
    """A stored run's samples back as wire rows (for re-summarising an attached run)."""
    import pyarrow as pa

    return _parquet_rows(pa.Table.from_pandas(run.samples, preserve_index=False), "samples")


def query_rows(run: Run) -> list[list]:
    """A stored run's queries back as wire rows."""
    import pyarrow as pa

    return _parquet_rows(pa.Table.from_pandas(run.queries, preserve_index=False), "queries")


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """run.json of a run directory; StoreError when there is none."""
    meta = _read_json(Path(path) / "run.json")
    if meta is None:
        raise StoreError("not a run directory (no readable run.json)", where=str(path))
    return meta


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """events.jsonl of a run directory (a torn last line skipped)."""
    return [e for e in _read_jsonl(Path(path) / "events.jsonl") if isinstance(e, dict)]


def unfinished_runs(root: str | os.PathLike[str]) -> list[Path]:
    """Run directories under root that still have parts (being recorded, or left by a crash)."""
    return sorted({p.parent for p in Path(root).glob("*/*/*.part.jsonl")})


@dataclass(frozen=True)
class RunInfo:
    """One entry of list_runs()."""

    path: Path
    campaign: str
    run_id: str
    complete: bool


def list_runs(root: str | os.PathLike[str]) -> list[RunInfo]:
    """All run directories under root (`<campaign>/<run-id>/run.json`), sorted by run id."""
    root = Path(root)
    out = []
    for meta in root.glob("*/*/run.json"):
        run_dir = meta.parent
        summary = _read_json(run_dir / "summary.json") or {}
        out.append(RunInfo(run_dir, run_dir.parent.name, run_dir.name,
                           bool(summary.get("complete")) and not _has_parts(run_dir)))
    return sorted(out, key=lambda r: (r.run_id, r.campaign))


# --- helpers --------------------------------------------------------------------------------


def _has_parts(path: Path) -> bool:
    return any((path / f"{s}.part.jsonl").exists() for s in STREAMS)


def _parts_frame(path: Path, stream: str) -> list[list]:
    return [r for r in _read_jsonl(path / f"{stream}.part.jsonl") if isinstance(r, list) and r]


def _parquet_rows(table, stream: str) -> list[list]:
    """Inverse of samples_table/queries_table (for merging a half-finished run)."""
    cols = table.to_pydict()
    if stream == "queries":
        return [[s, q, i, d, ok, json.loads(x or "{}")] for s, q, i, d, ok, x in zip(
            cols["seq"], cols["query_id"], cols["issue_t"], cols["done_t"], cols["ok"], cols["extra"],
            strict=True)]
    rows: dict[int, list] = {}
    for seq, t, rail, w, e in zip(cols["seq"], cols["t"], cols["rail"], cols["watts"], cols["energy_j"],
                                  strict=True):
        row = rows.setdefault(seq, [seq, t, None, {}, None])
        if rail == TOTAL_RAIL:
            row[2], row[4] = w, e
        else:
            row[3][rail] = w
    return list(rows.values())


def _read_jsonl(path: Path) -> list[Any]:
    """Every complete JSON line of a file; a torn or corrupt line (a crash mid-write) is skipped."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return []
    body = text.strip()
    if not body:
        return []
    try:  # fast path: one C-level parse (json.dumps never puts a raw newline inside a value)
        return json.loads("[" + body.replace("\n", ",") + "]")
    except ValueError:
        lines = text.splitlines()
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def atomic_write_text(path: Path, text: str) -> None:
    """Write via tmp + fsync + os.replace: a crash leaves the old file or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
