"""Per-job on-disk spool: job.json plus one append-only JSON-lines file per stream.

Layout: `<root>/<job>/job.json`, `samples.jsonl`, `queries.jsonl`, `events.jsonl`. Rows carry
their seq as the first element, contiguous from 0 per stream. Appends are buffered, written every
0.1 s and fsync'd every 0.5 s (see JobSpool.maybe_flush), so sampling at 100 Hz neither fsyncs
100 times a second nor loses more than 0.1 s of rows when the daemon is killed. A crash can
leave a torn last line; reopening drops it and continues the seq. A failed write (ENOSPC or any
OSError) truncates the file back to its last good line, keeps the rows in memory (still
readable) and marks the stream broken: what is stored is never corrupted and nothing collected
is lost while the daemon lives.
Python 3.6 compatible, stdlib only.
"""

import errno
import json
import os
import re
import shutil
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from agents.protocol import STREAMS

INDEX_EVERY = 256  # one byte offset kept per this many rows: fetch seeks, never scans the file
WRITE_EVERY_S = 0.1  # rows reach the page cache this often: a killed daemon loses at most this much
FLUSH_EVERY_S = 0.5  # and are fsync'd this often: a power cut loses at most this much
JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FINISHED_STATES = ("finished", "failed", "stopped", "interrupted")

Writer = Callable[[int, bytes], int]


class SpoolError(Exception):
    """A spool that cannot be created, read or pruned. The message names the job and the path."""


def encode_row(row: List[Any]) -> bytes:
    """One row as a JSON line (compact; NaN/inf are not JSON and must be None before this)."""
    return json.dumps(row, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"


def describe_os_error(exc: OSError) -> str:
    """'disk full' for ENOSPC/EDQUOT, else the OS message: the words the operator sees."""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return "disk full ({})".format(exc.strerror or exc)
    return "write failed ({})".format(exc.strerror or exc)


class Stream(object):
    """One append-only JSON-lines stream with an in-memory index of byte offsets."""

    def __init__(
        self, path: str, writer: Optional[Writer] = None, fsync: Optional[Callable[[int], None]] = None
    ):
        self.path = path
        self._write = writer or os.write
        self._fsync = fsync or os.fsync
        self._lock = threading.Lock()
        self._offsets: List[int] = []  # byte offset of row k * INDEX_EVERY
        self._on_disk = 0  # rows stored in the file
        self._size = 0  # bytes of those rows
        self._pending: List[bytes] = []  # encoded rows not yet written (or not writable)
        self._fd: Optional[int] = None
        self._unsynced = False  # rows written but not yet fsync'd
        self.repaired_bytes = 0  # bytes of a torn tail dropped on open
        self.error: Optional[str] = None  # set once a write failed; later rows stay in memory
        self._load()

    # -- open ----------------------------------------------------------------------------------

    def _load(self) -> None:
        """Index an existing file; drop a torn or garbled tail so appends continue cleanly."""
        if not os.path.exists(self.path):
            return
        good = 0
        count = 0
        last = b""
        with open(self.path, "rb") as f:
            for line in f:
                # Cheap shape check per row; only the last row is parsed (a crash tears the tail).
                if not (line.startswith(b"[") and line.endswith(b"]\n")):
                    break
                if count % INDEX_EVERY == 0:
                    self._offsets.append(good)
                good += len(line)
                count += 1
                last = line
            if count and not _looks_complete(last):
                good -= len(last)
                count -= 1
                if count % INDEX_EVERY == 0:
                    self._offsets.pop()
            total = f.seek(0, os.SEEK_END)
        if good < total:
            # A crash mid-write: the tail is not a whole row. Cut it so the next append
            # starts on a line boundary and seq stays contiguous.
            with open(self.path, "r+b") as f:
                f.truncate(good)
            self.repaired_bytes = total - good
        self._on_disk = count
        self._size = good

    # -- write ---------------------------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        """The seq the next appended row gets."""
        return self._on_disk + len(self._pending)

    @property
    def last_seq(self) -> int:
        """Seq of the last row, -1 when empty."""
        return self.next_seq - 1

    def append(self, row_tail: List[Any]) -> List[Any]:
        """Give the row its seq, buffer it, and return the full row [seq, *row_tail]."""
        with self._lock:
            row = [self.next_seq, *row_tail]
            self._pending.append(encode_row(row))
            return row

    def flush(self, sync: bool = True) -> Optional[str]:
        """Write the buffered rows (and fsync when `sync`); returns None, or the error text once
        writing fails. Written rows survive a killed process; fsync'd ones survive a power cut."""
        with self._lock:
            if self.error is not None:
                return self.error
            try:
                if self._pending:
                    self._write_pending()
                if sync and self._unsynced:
                    self._fsync(self._fd)
                    self._unsynced = False
            except OSError as exc:
                self.error = describe_os_error(exc)
                self._undo_partial_write()
                return self.error
            return None

    def _write_pending(self) -> None:
        batch = b"".join(self._pending)
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        view = memoryview(batch)
        while view:
            n = self._write(self._fd, view)
            view = view[n:]
        self._unsynced = True
        for line in self._pending:
            if self._on_disk % INDEX_EVERY == 0:
                self._offsets.append(self._size)
            self._size += len(line)
            self._on_disk += 1
        self._pending = []

    def _undo_partial_write(self) -> None:
        """A write that failed half-way may have stored a torn line: cut back to the last good one."""
        try:
            if self._fd is not None:
                os.ftruncate(self._fd, self._size)
        except OSError:
            pass  # nothing more we can do; reopen drops a torn tail anyway

    def close(self) -> None:
        """Flush what can be flushed and close the file."""
        self.flush()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    # -- read ----------------------------------------------------------------------------------

    def read(self, after_seq: int, limit: int, max_bytes: int = 1 << 19) -> List[List[Any]]:
        """Rows with seq > after_seq, at most `limit` rows and about `max_bytes` (always >= 1 row)."""
        start = max(after_seq + 1, 0)
        with self._lock:
            on_disk = self._on_disk
            offsets = self._offsets[:]
            pending = self._pending[start - on_disk :] if start >= on_disk else self._pending[:]
        lines: List[bytes] = []
        used = 0
        if start < on_disk and limit > 0:
            block = start // INDEX_EVERY
            seq = block * INDEX_EVERY
            with open(self.path, "rb") as f:
                f.seek(offsets[block])
                while seq < on_disk and len(lines) < limit:
                    line = f.readline()
                    if seq >= start:
                        if lines and used + len(line) > max_bytes:
                            return [json.loads(x.decode("utf-8")) for x in lines]
                        lines.append(line)
                        used += len(line)
                    seq += 1
        for line in pending:
            if len(lines) >= limit or (lines and used + len(line) > max_bytes):
                break
            lines.append(line)
            used += len(line)
        return [json.loads(x.decode("utf-8")) for x in lines]


def _due(last: Optional[float], now: float, every: float) -> bool:
    """True when `every` seconds passed since `last` (or never done, or the clock went back)."""
    return last is None or not 0 <= now - last < every - 1e-9  # 1 ns: float steps of a fake clock


def _looks_complete(line: bytes) -> bool:
    """A stored row is one JSON list ending in a newline; anything else is a torn tail."""
    if not line.endswith(b"\n") or not line.startswith(b"["):
        return False
    try:
        return isinstance(json.loads(line.decode("utf-8")), list)
    except ValueError:
        return False


class JobSpool(object):
    """One job's directory: its job.json and its three streams."""

    def __init__(
        self, path: str, writer: Optional[Writer] = None, clock: Callable[[], float] = time.monotonic
    ):
        self.path = path
        self.job_id = os.path.basename(path)
        self._clock = clock
        self._meta_lock = threading.Lock()
        self.meta: Dict[str, Any] = {}
        meta_path = os.path.join(path, "job.json")
        if os.path.exists(meta_path):
            try:
                with open(meta_path, "r") as f:
                    self.meta = json.load(f)
            except (OSError, ValueError) as exc:
                raise SpoolError("job {}: unreadable {}: {}".format(self.job_id, meta_path, exc)) from None
        self._writer = writer
        self._streams: Dict[str, Stream] = {}  # opened (and indexed) on first use: listing jobs stays cheap
        self._streams_lock = threading.Lock()
        self._last_write: Optional[float] = None  # None: the first maybe_flush writes and syncs
        self._last_sync: Optional[float] = None
        self.meta_error: Optional[str] = None

    @property
    def error(self) -> Optional[str]:
        """The first write error of any stream or of job.json, else None."""
        for s in self._opened():
            if s.error:
                return s.error
        return self.meta_error

    def stream(self, name: str) -> Stream:
        """One stream, opened and indexed on first use."""
        with self._streams_lock:
            s = self._streams.get(name)
            if s is None:
                if name not in STREAMS:
                    raise SpoolError("job {}: no stream {!r}".format(self.job_id, name))
                s = self._streams[name] = Stream(os.path.join(self.path, name + ".jsonl"), self._writer)
            return s

    def _opened(self) -> List[Stream]:
        with self._streams_lock:
            return list(self._streams.values())

    def append(self, stream: str, row_tail: List[Any]) -> List[Any]:
        """Append to one stream (buffered); returns the row with its seq."""
        return self.stream(stream).append(row_tail)

    def maybe_flush(
        self, force: bool = False, now: Optional[float] = None, write: bool = False
    ) -> Optional[str]:
        """Write buffered rows every WRITE_EVERY_S (or now, with `write`) and fsync every
        FLUSH_EVERY_S (or now, with `force`). `now` lets a job pass its own clock.
        Returns the first write error, or None."""
        now = self._clock() if now is None else now
        sync = force or _due(self._last_sync, now, FLUSH_EVERY_S)
        if sync or write or _due(self._last_write, now, WRITE_EVERY_S):
            self._last_write = now
            if sync:
                self._last_sync = now
            for s in self._opened():
                s.flush(sync=sync)
        return self.error

    def last_seq(self) -> Dict[str, int]:
        """{stream: last seq or -1}."""
        return {name: self.stream(name).last_seq for name in STREAMS}

    def read(self, stream: str, after_seq: int, limit: int, max_bytes: int = 1 << 19) -> List[List[Any]]:
        """Rows of `stream` after `after_seq` (see Stream.read)."""
        return self.stream(stream).read(after_seq, limit, max_bytes)

    def update_meta(self, **fields: Any) -> Optional[str]:
        """Merge fields into job.json and rewrite it atomically (tmp + fsync + rename)."""
        with self._meta_lock:
            self.meta.update(fields)
            data = json.dumps(self.meta, sort_keys=True, indent=1, allow_nan=False).encode("utf-8")
            target = os.path.join(self.path, "job.json")
            tmp = target + ".tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(tmp, target)
                self.meta_error = None
            except OSError as exc:
                # The in-memory meta stays authoritative; the previous job.json is intact.
                self.meta_error = describe_os_error(exc)
            return self.meta_error

    def ack(self, stream: str, upto_seq: int) -> None:
        """Record that the console stored `stream` up to `upto_seq` (monotonic: never goes back)."""
        acked = dict(self.meta.get("acked") or {})
        acked[stream] = max(int(acked.get(stream, -1)), int(upto_seq))
        self.update_meta(acked=acked)

    def fully_acked(self) -> bool:
        """True when the console confirmed every row of every stream."""
        acked = self.meta.get("acked") or {}
        return all(int(acked.get(name, -1)) >= last for name, last in self.last_seq().items())

    def finished(self) -> bool:
        """True when job.json says the job is over."""
        return self.meta.get("state") in FINISHED_STATES

    def close(self) -> None:
        """Flush and close the stream files."""
        for s in self._opened():
            s.close()


class Spool(object):
    """All job spools under one root (`<home>/jobs`)."""

    def __init__(self, root: str, writer: Optional[Writer] = None) -> None:
        self.root = root
        self._writer = writer
        os.makedirs(root, mode=0o700, exist_ok=True)

    def job_path(self, job_id: str) -> str:
        """The directory of one job; refuses ids that are not plain names (no '/', no '..')."""
        if not isinstance(job_id, str) or not JOB_ID_RE.match(job_id):
            raise SpoolError(
                "invalid job id {!r}: use letters, digits, '.', '_', '-' (max 64)".format(job_id)
            )
        return os.path.join(self.root, job_id)

    def exists(self, job_id: str) -> bool:
        """True when the job has a spool directory with a job.json."""
        return os.path.isfile(os.path.join(self.job_path(job_id), "job.json"))

    def create(self, job_id: str, meta: Dict[str, Any]) -> JobSpool:
        """A new, empty job spool with its job.json written; refuses an id already used."""
        path = self.job_path(job_id)
        try:
            os.makedirs(path, mode=0o700)
        except FileExistsError:
            raise SpoolError("job {} already exists in {}".format(job_id, path)) from None
        except OSError as exc:
            raise SpoolError(
                "cannot create job {} in {}: {}".format(job_id, path, describe_os_error(exc))
            ) from None
        js = JobSpool(path, self._writer)
        err = js.update_meta(**meta)
        if err:
            shutil.rmtree(path, ignore_errors=True)
            raise SpoolError("cannot write {}/job.json: {}".format(path, err))
        return js

    def open(self, job_id: str) -> JobSpool:
        """Reopen an existing job spool (its streams are indexed, torn tails dropped, on first use)."""
        if not self.exists(job_id):
            raise SpoolError("no job {} in {}".format(job_id, self.root))
        return JobSpool(self.job_path(job_id), self._writer)

    def job_ids(self) -> List[str]:
        """Ids of every stored job, oldest directory name first."""
        try:
            names = sorted(os.listdir(self.root))
        except OSError:
            return []
        return [
            n for n in names if JOB_ID_RE.match(n) and os.path.isfile(os.path.join(self.root, n, "job.json"))
        ]

    def remove(self, js: JobSpool) -> None:
        """Delete a finished, fully acked job; raises SpoolError otherwise (data is never dropped unseen)."""
        if not js.finished():
            raise SpoolError(
                "job {} is {}, not finished: not deleted".format(js.job_id, js.meta.get("state"))
            )
        if not js.fully_acked():
            raise SpoolError(
                "job {} has rows the console has not acknowledged (acked {}, last {}): not deleted".format(
                    js.job_id, js.meta.get("acked") or {}, js.last_seq()
                )
            )
        js.close()
        shutil.rmtree(js.path)
