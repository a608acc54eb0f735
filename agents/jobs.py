"""A job: one sampler stream on an absolute-deadline schedule, an optional idle window, an optional
workload, on-device energy, everything appended to the job's spool.

The job thread owns the sampler from start() to the end. Sample k is due at t0 + k * interval
(computed from k, so there is no drift and no float accumulation); a read that comes late is
recorded with its real time, and deadlines missed by more than one interval (a suspended
process) are skipped and counted instead of being read in a burst.
Python 3.6 compatible, stdlib only.
"""

import math
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional

from agents.energy import RunningEnergy
from agents.spool import JobSpool
from agents.workload import ArgvWorkload, WorkloadError, validate_argv_spec

LIVE_EVERY_S = 0.2  # live sample/query batches at most 5 per second per job
META_EVERY_S = 5.0  # running totals rewritten into job.json this often
LOADGEN_JOIN_S = 10.0
STATES = ("starting", "idle", "running", "finished", "failed", "stopped", "interrupted")
ACTIVE_STATES = ("starting", "idle", "running")
RESERVED_SAMPLER_OPTS = ("device", "clock", "interval_ms", "sampler", "self")

Listener = Callable[[Dict[str, Any]], None]


class SpecError(ValueError):
    """A start request whose arguments are wrong; the message names the argument."""


def normalize_spec(args: Dict[str, Any]) -> Dict[str, Any]:
    """Validate `start` args into a job spec with every default filled in; raises SpecError."""
    device = args.get("device")
    if not isinstance(device, str) or not device:
        raise SpecError("start: 'device' must be a device id string such as 'sim:jetson-agx-orin-64gb'")
    spec: Dict[str, Any] = {"device": device}
    sampler = args.get("sampler")
    if sampler is not None and not isinstance(sampler, str):
        raise SpecError("start: 'sampler' must be a sampler name or null")
    spec["sampler"] = sampler
    opts = args.get("sampler_opts") or {}
    if not isinstance(opts, dict) or not all(
        isinstance(k, str) and k.isidentifier() and k not in RESERVED_SAMPLER_OPTS and _is_scalar(v)
        for k, v in opts.items()
    ):
        raise SpecError(
            "start: 'sampler_opts' must map option names (e.g. seed, noise) to numbers, strings or booleans"
        )
    spec["sampler_opts"] = opts
    interval_ms = args.get("interval_ms", 100)
    if not _is_num(interval_ms) or not 1 <= interval_ms <= 3600000:
        raise SpecError("start: 'interval_ms' must be a number of milliseconds in 1..3600000")
    spec["interval_ms"] = interval_ms
    idle_s = args.get("idle_s", 0) or 0
    if not _is_num(idle_s) or not 0 <= idle_s <= 86400:
        raise SpecError("start: 'idle_s' must be seconds in 0..86400")
    spec["idle_s"] = float(idle_s)
    duration_s = args.get("duration_s")
    if duration_s is not None and (not _is_num(duration_s) or not 0 <= duration_s <= 30 * 86400):
        raise SpecError("start: 'duration_s' must be seconds in 0..2592000 or null")
    spec["duration_s"] = None if duration_s is None else float(duration_s)
    workload = args.get("workload")
    if workload is not None:
        if not isinstance(workload, dict) or workload.get("kind") not in ("argv", "loadgen"):
            raise SpecError("start: 'workload' must be null or an object with kind 'argv' or 'loadgen'")
        if workload["kind"] == "argv":
            try:
                validate_argv_spec(workload)
            except WorkloadError as exc:
                raise SpecError("start: {}".format(exc)) from None
    spec["workload"] = workload
    meta = args.get("meta") or {}
    if not isinstance(meta, dict):
        raise SpecError("start: 'meta' must be an object")
    spec["meta"] = meta
    return spec


def _is_scalar(x: Any) -> bool:
    return x is None or isinstance(x, (str, bool)) or _is_num(x)


def _is_num(x: Any) -> bool:
    """A JSON number we can compute with: not bool, not NaN/inf (huge ints are fine, never floated)."""
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and math.isfinite(x))


def _clean(x: Any) -> Optional[float]:
    """A finite number or None (NaN/inf are not JSON and mean 'no value')."""
    return x if _is_num(x) else None


class Totals(object):
    """Running energy and power figures of one job, split at the idle -> load boundary."""

    def __init__(self) -> None:
        self.energy = RunningEnergy()
        self.samples = 0
        self.t_first: Optional[float] = None
        self.t_last: Optional[float] = None
        self.sum_w = 0.0
        self.n_w = 0
        self.max_w: Optional[float] = None
        self.counter0: Optional[float] = None
        self.counter_j: Optional[float] = None
        self.idle_sum_w = 0.0
        self.idle_n = 0
        self.idle_t_first: Optional[float] = None
        self.idle_t_last: Optional[float] = None
        self.idle_energy_j = 0.0  # trapezoid energy up to the last idle sample
        self.load_t0: Optional[float] = None
        self.read_errors = 0
        self.late_reads = 0
        self.skipped_ticks = 0

    def add(
        self, t: float, total_w: Optional[float], counter_j: Optional[float], idle: bool
    ) -> Optional[float]:
        """Account one sample; returns the counter energy relative to the job start (or None)."""
        self.samples += 1
        if self.t_first is None:
            self.t_first = t
        self.t_last = t
        self.energy.add(t, total_w)
        if total_w is not None:
            self.sum_w += total_w
            self.n_w += 1
            self.max_w = total_w if self.max_w is None else max(self.max_w, total_w)
            if idle:
                self.idle_sum_w += total_w
                self.idle_n += 1
                self.idle_t_last = t
                if self.idle_t_first is None:
                    self.idle_t_first = t
                self.idle_energy_j = self.energy.energy_j
        rel = None
        if counter_j is not None:
            if self.counter0 is None:
                self.counter0 = counter_j
            rel = counter_j - self.counter0
            self.counter_j = rel
        return rel

    def as_dict(self) -> Dict[str, Any]:
        """The figures the console shows live and job.json keeps (J, W, s)."""
        d: Dict[str, Any] = {
            "samples": self.samples,
            "t_s": self.t_last,
            "duration_s": (self.t_last - self.t_first) if self.t_first is not None else 0.0,
            "energy_j": self.energy.energy_j,
            "energy_counter_j": self.counter_j,
            "mean_w": self.sum_w / self.n_w if self.n_w else None,
            "max_w": self.max_w,
            "read_errors": self.read_errors,
            "late_reads": self.late_reads,
            "skipped_ticks": self.skipped_ticks,
            "idle_w": None,
            "idle_measured_s": None,
            "load_energy_j": None,
            "load_duration_s": None,
            "energy_net_j": None,
        }
        if self.load_t0 is not None and self.t_last is not None:
            # The load phase starts at the last idle sample so no interval is counted twice or lost.
            start = self.idle_t_last if self.idle_t_last is not None else self.t_first
            d["load_energy_j"] = self.energy.energy_j - self.idle_energy_j
            d["load_duration_s"] = self.t_last - start
        if self.idle_n:
            d["idle_w"] = self.idle_sum_w / self.idle_n
            d["idle_measured_s"] = self.idle_t_last - self.idle_t_first
            if d["load_energy_j"] is not None:
                d["energy_net_j"] = d["load_energy_j"] - d["idle_w"] * d["load_duration_s"]
        return d


class Job(object):
    """One measurement job. start() runs it in a thread; stop() ends it; status() reads it any time."""

    def __init__(
        self,
        job_id: str,
        spec: Dict[str, Any],
        sampler: Any,
        spool: JobSpool,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        listener: Optional[Listener] = None,
        sleep: Optional[Callable[[float], None]] = None,
        run_workload: Optional[Callable[..., Dict[str, Any]]] = None,
    ) -> None:
        self.job_id = job_id
        self.spec = spec
        self.sampler = sampler
        self.spool = spool
        self.clock = clock
        self.wall_clock = wall_clock
        self.listener = listener
        self._sleep = sleep  # tests drive a fake clock through this; None = wait on the stop event
        self._run_workload = run_workload  # loadgen.run_workload unless a test passes its own
        self._stop_evt = threading.Event()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self.state = "starting"
        self.error: Optional[str] = None
        self.stop_reason: Optional[str] = None
        self.t0: Optional[float] = None
        self.t0_wall: Optional[float] = None
        self.started_wall = wall_clock()
        self.ended_wall: Optional[float] = None
        self.totals = Totals()
        self.describe: Dict[str, Any] = {}
        self.workload_summary: Optional[Dict[str, Any]] = None
        self._idle = False
        self._end: Optional[str] = None  # why the loop ends: duration, workload_done, failed, stopped
        self._live_samples: List[List[Any]] = []
        self._live_queries: List[List[Any]] = []
        self._last_live = 0.0
        self._last_meta = 0.0
        self._notices_seen: Dict[str, int] = {}
        self._argv: Optional[ArgvWorkload] = None
        self._loadgen_thread: Optional[threading.Thread] = None
        self._loadgen_result: Optional[Dict[str, Any]] = None
        self._loadgen_error: Optional[str] = None
        self._loadgen_done = threading.Event()

    # -- control ------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Fix t0 and write job.json (in the caller's thread, so errors reach the start request).

        The sampler comes opened (registry.open_sampler opens it); the job closes it at its end.
        """
        try:
            self.describe = dict(self.sampler.describe())
        except Exception as exc:  # describe is informative only; a bug there must not stop a job
            self.describe = {"name": getattr(self.sampler, "name", "?"), "error": str(exc)}
        self.t0 = self.clock()
        self.t0_wall = self.wall_clock()
        self.spool.update_meta(
            job=self.job_id,
            spec=self.spec,
            device=self.spec["device"],
            state=self.state,
            t0_mono=self.t0,
            t0_wall=self.t0_wall,
            started_wall=self.started_wall,
            sampler=self.describe,
        )

    def start(self) -> None:
        """prepare() then run the job in a daemon thread."""
        if self.t0 is None:
            self.prepare()
        self._thread = threading.Thread(target=self.run, name="job-" + self.job_id, daemon=True)
        self._thread.start()

    def stop(self, reason: str = "stopped by request") -> None:
        """Ask the job to end (takes one last sample, ends the workload); returns at once."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop_evt.set()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the thread; True once it ended."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def mark(self, label: str) -> int:
        """Record an operator mark in the events stream; returns its seq."""
        return self._log("mark", label=label)[0]

    @property
    def active(self) -> bool:
        """True while the job is still sampling."""
        return self.state in ACTIVE_STATES

    def status(self) -> Dict[str, Any]:
        """Snapshot for the `status` and `jobs` ops."""
        return {
            "job": self.job_id,
            "device": self.spec["device"],
            "state": self.state,
            "error": self.error,
            "spec": self.spec,
            "t0_wall": self.t0_wall,
            "t0_mono": self.t0,
            "sampler": self.describe,
            "totals": self.totals.as_dict(),
            "workload": self._workload_status(),
            "last_seq": self.spool.last_seq(),
            "started_wall": self.started_wall,
            "ended_wall": self.ended_wall,
            "spool_error": self.spool.error,
        }

    # -- the thread ---------------------------------------------------------------------------

    def run(self) -> None:
        """The job body; never raises: an unexpected error fails the job with its samples kept."""
        try:
            if self.t0 is None:
                self.prepare()
            self._loop()
        except Exception as exc:
            self._fail("internal error in job: {}: {}".format(type(exc).__name__, exc))
            self._log("traceback", text=traceback.format_exc()[-2000:])
        finally:
            try:
                self._finish()
            except Exception as exc:
                # Never leave a job looking "running" forever: whatever broke, it has ended.
                self.error = self.error or "internal error while ending the job: {}".format(exc)
                self.state = "failed"
                self._publish({"event": "job", "state": "failed", "error": self.error})

    def _loop(self) -> None:
        interval = self.spec["interval_ms"] / 1000.0
        idle_s = self.spec["idle_s"]
        duration = self.spec["duration_s"]
        k_load = math.ceil(idle_s / interval - 1e-9) if idle_s > 0 else 0
        k_end = None
        k = 0
        if k_load > 0:
            self._idle = True
            self._set_state("idle", idle_s=idle_s)
        while True:
            deadline = self.t0 + k * interval
            now = self.clock()
            if deadline > now:
                self._wait(deadline - now)
            if self._stop_evt.is_set() and self._end is None:
                self._end = "stopped"  # one last sample below, and no workload is started
            if self._end is None and k == k_load:
                self._begin_load()
                if duration is not None:
                    k_end = k_load + math.ceil(duration / interval - 1e-9)
            if self._sample() - k * interval > interval / 2:
                self.totals.late_reads += 1  # recorded with its real time, counted for the record
            self._after_sample()
            if self._end is None and k_end is not None and k >= k_end:
                self._end = "duration"
            if self._end is not None:
                return
            k += 1
            now = self.clock()
            behind = int((now - self.t0) / interval) - k
            if behind >= 1:
                # Suspended or starved: skip the missed deadlines (counted), never read in a burst.
                # The load boundary and the end tick are never skipped over.
                for mark in (k_load, k_end):
                    if mark is not None and k <= mark < k + behind:
                        behind = mark - k
                k += behind
                self.totals.skipped_ticks += behind

    def _wait(self, seconds: float) -> bool:
        """Sleep until the next deadline; True when stop() was called meanwhile."""
        if self._sleep is None:
            return self._stop_evt.wait(seconds)
        if not self._stop_evt.is_set():
            self._sleep(seconds)
        return self._stop_evt.is_set()

    def _sample(self) -> float:
        try:
            r = self.sampler.read()
            now = self.clock()
            t = r.t if _is_num(r.t) and abs(r.t - now) < 10.0 else now
            rails = {str(k): _clean(v) for k, v in (r.rails or {}).items()}
            total_w = _clean(r.total_w)
            counter = _clean(r.energy_j)
        except Exception as exc:
            # A sensor hiccup is a gap (None), not a crash; said once per distinct message.
            self.totals.read_errors += 1
            t, rails, total_w, counter = self.clock(), {}, None, None
            self._notice("sampler read failed: {}".format(exc))
        t_s = round(t - self.t0, 6)
        rel = self.totals.add(t_s, total_w, counter, self._idle)
        row = self.spool.append("samples", [t_s, total_w, rails, rel])
        with self._lock:
            self._live_samples.append(row)
        return t_s

    def _after_sample(self) -> None:
        drain = getattr(self.sampler, "drain_notices", None)
        if drain is not None:
            try:
                for n in drain() or []:
                    self._notice(n if isinstance(n, str) else str(n))
            except Exception as exc:
                self._notice("sampler notices unreadable: {}".format(exc))
        self._check_workload()
        if self._stop_evt.is_set() and self._end is None:
            self._end = "stopped"
        now = self.clock()
        live_due = now - self._last_live >= LIVE_EVERY_S
        # Rows go to the file before they go live: a console never holds a row the device lost.
        err = self.spool.maybe_flush(now=now, write=live_due)
        if err and self._end != "failed":
            self._fail(
                "{}: sampling stopped, rows kept in memory; free space in {}".format(err, self.spool.path)
            )
        if live_due:
            self._last_live = now
            self._publish_rows()
        if now - self._last_meta >= META_EVERY_S:
            self._last_meta = now
            self.spool.update_meta(totals=self.totals.as_dict())

    # -- workload -----------------------------------------------------------------------------

    def _begin_load(self) -> None:
        self._idle = False
        self.totals.load_t0 = round(self.clock() - self.t0, 6)
        self._log("load_start", t_load_s=self.totals.load_t0)
        if self.state != "running":
            self._set_state("running")
        wl = self.spec.get("workload")
        if wl is None:
            return
        if wl["kind"] == "argv":
            self._argv = ArgvWorkload(wl, self.spool.path)
            try:
                pid = self._argv.start()
            except WorkloadError as exc:
                self._argv = None
                self._fail(str(exc))
                return
            # Recorded first: if the daemon dies, the next one can end this orphan (see recover()).
            self.spool.update_meta(workload=self._workload_status())
            self._set_load(1.0)
            self._log("workload_start", kind="argv", argv=self._argv.argv, pid=pid)
        else:
            self._start_loadgen(wl)

    def _start_loadgen(self, wl: Dict[str, Any]) -> None:
        run_workload = self._run_workload
        if run_workload is None:
            # In a child process: a LoadGen abort or a SUT crash must never take the daemon (and
            # every other job on the device) down with it; see agents/workload_proc.py.
            from agents.workload_proc import run_in_child

            run_workload = run_in_child

        def body() -> None:
            try:
                self._loadgen_result = run_workload(
                    wl, self.clock, self._emit_query, self._set_load, self._stop_evt.is_set
                )
            except Exception as exc:
                self._loadgen_error = "loadgen workload failed: {}: {}".format(type(exc).__name__, exc)
            finally:
                self._loadgen_done.set()

        self._loadgen_thread = threading.Thread(target=body, name="loadgen-" + self.job_id, daemon=True)
        self._loadgen_thread.start()
        self._log("workload_start", kind="loadgen", scenario=wl.get("scenario"))

    def _emit_query(
        self,
        query_id: Any,
        issue_t: float,
        done_t: Optional[float],
        ok: bool,
        extra: Optional[Dict[str, Any]] = None,
    ) -> None:
        """loadgen callback (its own thread): times are raw clock() values, made relative here."""
        done = round(done_t - self.t0, 6) if _is_num(done_t) else None
        row = self.spool.append(
            "queries", [query_id, round(issue_t - self.t0, 6), done, bool(ok), extra or {}]
        )
        with self._lock:
            self._live_queries.append(row)

    def _set_load(self, level: float) -> None:
        try:
            self.sampler.set_load(level)
        except Exception as exc:
            self._notice("sampler set_load failed: {}".format(exc))

    def _check_workload(self) -> None:
        if self._argv is not None and self._argv.returncode is None and self._argv.poll() is not None:
            self._set_load(0.0)
            self._log(
                "workload_exit",
                rc=self._argv.returncode,
                stderr_tail=self._argv.stderr_tail(),
                stdout_tail=self._argv.stdout_tail(),
            )
            failure = self._argv.failure()
            if failure:
                self._fail(failure)
            elif self._end is None:
                self._end = "workload_done"
        if self._loadgen_thread is not None and self._loadgen_done.is_set() and self.workload_summary is None:
            self._loadgen_thread = None
            self._set_load(0.0)
            self.workload_summary = self._loadgen_result or {}
            self._log("workload_exit", kind="loadgen", summary=self.workload_summary)
            if self._loadgen_error:
                self._fail(self._loadgen_error)
            elif self._end is None:
                self._end = "workload_done"

    def _end_workload(self) -> None:
        if self._argv is not None and self._argv.returncode is None:
            rc = self._argv.terminate()
            self._log(
                "workload_exit",
                rc=rc,
                terminated=True,
                stderr_tail=self._argv.stderr_tail(),
                stdout_tail=self._argv.stdout_tail(),
            )
        if self._loadgen_thread is not None:
            self._stop_evt.set()  # loadgen polls should_stop
            self._loadgen_done.wait(LOADGEN_JOIN_S)
            self._check_workload()

    def _workload_status(self) -> Optional[Dict[str, Any]]:
        if self._argv is not None:
            return {
                "kind": "argv",
                "rc": self._argv.returncode,
                "pid": self._argv.proc.pid if self._argv.proc else None,
                "proc_start": self._argv.proc_start,
            }
        if self.spec.get("workload"):
            return {"kind": self.spec["workload"]["kind"], "summary": self.workload_summary}
        return None

    # -- end ----------------------------------------------------------------------------------

    def _finish(self) -> None:
        try:
            self._end_workload()
        except Exception as exc:
            self._fail("cannot end workload: {}".format(exc))
        self._set_load(0.0)
        try:
            self.sampler.close()
        except Exception as exc:
            self._notice("sampler close failed: {}".format(exc))
        if self.error is not None:
            state = "failed"
        elif self._end == "stopped":
            state = "stopped"
        else:
            state = "finished"
        self.ended_wall = self.wall_clock()
        summary = self.totals.as_dict()
        self._log(
            "state",
            state=state,
            reason=self.stop_reason if state == "stopped" else self._end,
            error=self.error,
        )
        self.spool.maybe_flush(force=True)
        self._publish_rows()
        self.spool.update_meta(
            state=state,
            error=self.error,
            ended_wall=self.ended_wall,
            totals=summary,
            summary=summary,
            workload=self._workload_status(),
        )
        self.spool.close()
        self.state = state  # last: whoever sees the end state finds every row and job.json written
        self._publish({"event": "job", "state": state, "error": self.error, "summary": summary})

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
        self._end = "failed"
        self._log("error", message=message)

    # -- events -------------------------------------------------------------------------------

    def _set_state(self, state: str, **fields: Any) -> None:
        self.state = state
        self._log("state", state=state, **fields)
        self.spool.update_meta(state=state)
        msg = {"event": "job", "state": state, "t0_wall": self.t0_wall}
        msg.update(fields)
        self._publish(msg)

    def _log(self, row_kind: str, **fields: Any) -> List[Any]:
        """Append an event row to the spool and send it live at once (events are rare)."""
        t_s = round(self.clock() - self.t0, 6) if self.t0 is not None else 0.0
        row = self.spool.append("events", [t_s, row_kind, fields])
        self._publish({"event": "log", "rows": [row]})
        return row

    def _notice(self, text: str) -> None:
        """A sampler notice becomes one event row per distinct text (repeats are only counted)."""
        key = text[:200]
        n = self._notices_seen.get(key, 0)
        self._notices_seen[key] = n + 1
        if n == 0:
            self._log("notice", message=text)

    def _publish_rows(self) -> None:
        with self._lock:
            samples, self._live_samples = self._live_samples, []
            queries, self._live_queries = self._live_queries, []
        if samples:
            self._publish({"event": "samples", "rows": samples})
        if queries:
            self._publish({"event": "queries", "rows": queries})

    def _publish(self, msg: Dict[str, Any]) -> None:
        if self.listener is None:
            return
        out = {"type": "event", "job": self.job_id}
        out.update(msg)
        try:
            self.listener(out)
        except Exception:
            pass  # a broken subscriber must never stop sampling
