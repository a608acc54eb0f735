"""The load generator: MLPerf-style scenarios and the cost study's request patterns, on the device.

    run_workload(spec, clock, emit_query, set_load, should_stop) -> summary dict

Scenarios (spec["scenario"]):
  singlestream  `queries` queries back to back, one sample each
  multistream   `queries` queries back to back, `samples_per_query` samples each (default 8)
  offline       all `queries` issued at once to a pool of `workers` threads
  server        Poisson arrivals at `qps` (seeded), served by a pool of `workers` threads
  gaps          `queries` requests one at a time with idle gaps uniform in [min_ms, max_ms]
  bursts        `bursts` bursts of `burst_size` requests issued together, `pause_ms` between bursts
  batch         one query of `batch_size` samples (default `queries`)

Every query is reported once through emit_query(query_id, issue_t, done_t, ok, extra) with times
from `clock` (the clock that stamps the power samples), so energy per query is exact. A query that
fails gets ok=False and extra["error"]; the run goes on unless spec["on_error"] == "stop".
set_load(level) follows how busy the SUT is (busy workers / workers) so the sim sampler's power
follows the workload. should_stop() is checked between queries and inside every wait.

The real MLPerf LoadGen (`mlperf_loadgen`) drives the four MLPerf scenarios when it can be imported
and spec["generator"] is "auto" (default) or "mlperf"; "builtin" forces ours. The summary says
which ran (`generator`) and, for LoadGen, where its logs are (`log_dir`).
Stdlib only, CPython 3.6.
"""

import os
import queue
import random
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from agents.sut import Sut, SutError, make_sut

MLPERF_SCENARIOS = ("singlestream", "multistream", "offline", "server")
PATTERNS = ("gaps", "bursts", "batch")
SCENARIOS = MLPERF_SCENARIOS + PATTERNS
GENERATORS = ("auto", "mlperf", "builtin")
WAIT_SLICE_S = 0.05  # longest sleep between two should_stop() checks
MAX_ERRORS_LISTED = 5

EmitQuery = Callable[[int, float, float, bool, Dict[str, Any]], None]


class WorkloadSpecError(ValueError):
    """A loadgen spec that cannot run; the message names the key and the value."""


class LoadgenError(RuntimeError):
    """The workload could not start or run at all (the SUT did not start, LoadGen missing...)."""


def run_workload(
    spec: Dict[str, Any],
    clock: Callable[[], float],
    emit_query: EmitQuery,
    set_load: Callable[[float], None],
    should_stop: Callable[[], bool],
) -> Dict[str, Any]:
    """Run one loadgen workload to the end (or until should_stop()); returns its summary dict."""
    params = normalize_spec(spec)
    lg = _import_loadgen() if _wants_mlperf(params) else None
    if params["generator"] == "mlperf" and lg is None:
        raise LoadgenError("generator 'mlperf' asked but mlperf_loadgen cannot be imported here "
                           "(pip install mlcommons-loadgen, or use generator 'auto'/'builtin')")
    sut = make_sut(spec.get("sut"), clock)
    sut.should_stop = should_stop
    try:
        sut.open()
    except SutError as exc:
        raise LoadgenError("the SUT did not start: {}".format(exc)) from None
    run = _Run(params, sut, clock, emit_query, set_load, should_stop)
    try:
        run.warm_up()
        if lg is not None:
            run.run_mlperf(lg)
        else:
            run.run_builtin()
    finally:
        sut.close()
        set_load(0.0)
    return run.summary()


def _positive(spec: Dict[str, Any], key: str, default: Any, kind: type = float, zero_ok: bool = False) -> Any:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WorkloadSpecError("loadgen {} must be a number, got {!r}".format(key, value))
    if kind is int and value != int(value):
        raise WorkloadSpecError("loadgen {} must be a whole number, got {!r}".format(key, value))
    if value < 0 or (value == 0 and not zero_ok):
        raise WorkloadSpecError("loadgen {} must be {}, got {!r}".format(
            key, ">= 0" if zero_ok else "> 0", value))
    return kind(value)


def normalize_spec(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Validated parameters with defaults filled in; raises WorkloadSpecError naming the bad key."""
    scenario = str(spec.get("scenario", "")).lower()
    if scenario not in SCENARIOS:
        raise WorkloadSpecError("loadgen scenario must be one of {}, got {!r}".format(
            ", ".join(SCENARIOS), spec.get("scenario")))
    generator = spec.get("generator", "auto")
    if generator not in GENERATORS:
        raise WorkloadSpecError(
            "loadgen generator must be auto, mlperf or builtin, got {!r}".format(generator))
    if generator == "mlperf" and scenario not in MLPERF_SCENARIOS:
        raise WorkloadSpecError("loadgen generator 'mlperf' runs only {}; {!r} is a pattern of the builtin "
                                "generator".format(", ".join(MLPERF_SCENARIOS), scenario))
    on_error = spec.get("on_error", "continue")
    if on_error not in ("continue", "stop"):
        raise WorkloadSpecError("loadgen on_error must be 'continue' or 'stop', got {!r}".format(on_error))
    seed = spec.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise WorkloadSpecError("loadgen seed must be an integer, got {!r}".format(seed))
    p: Dict[str, Any] = {
        "scenario": scenario,
        "generator": generator,
        "on_error": on_error,
        "seed": seed,
        "queries": _positive(spec, "queries", 64, int),
        "sample_count": _positive(spec, "sample_count", 1024, int),
        "workers": _positive(spec, "workers", 4, int),
        "log_dir": spec.get("log_dir"),
        "warmup": _positive(spec, "warmup", 0, int, zero_ok=True),
        "max_duration_s": None,
    }
    if spec.get("max_duration_s") is not None:
        p["max_duration_s"] = _positive(spec, "max_duration_s", None)
    if scenario == "multistream":
        p["samples_per_query"] = _positive(spec, "samples_per_query", 8, int)
    elif scenario == "server":
        p["qps"] = _positive(spec, "qps", 10.0)
    elif scenario == "gaps":
        p["min_ms"] = _positive(spec, "min_ms", 0.0, zero_ok=True)
        p["max_ms"] = _positive(spec, "max_ms", 1000.0, zero_ok=True)
        if p["max_ms"] < p["min_ms"]:
            raise WorkloadSpecError(
                "loadgen max_ms ({}) is below min_ms ({})".format(p["max_ms"], p["min_ms"]))
    elif scenario == "bursts":
        p["bursts"] = _positive(spec, "bursts", 10, int)
        p["burst_size"] = _positive(spec, "burst_size", 10, int)
        p["pause_ms"] = _positive(spec, "pause_ms", 1000.0, zero_ok=True)
        p["queries"] = p["bursts"] * p["burst_size"]
        if "workers" not in spec:  # a burst is issued at once: one worker per request
            p["workers"] = p["burst_size"]
    elif scenario == "batch":
        p["batch_size"] = _positive(spec, "batch_size", p["queries"], int)
    return p


def _wants_mlperf(params: Dict[str, Any]) -> bool:
    return params["scenario"] in MLPERF_SCENARIOS and params["generator"] in ("auto", "mlperf")


def _import_loadgen() -> Any:
    try:
        import mlperf_loadgen  # optional: no aarch64 wheels, built from source on a Jetson
    except ImportError:
        return None
    return mlperf_loadgen


class _Load(object):
    """Busy-worker count -> set_load(busy / capacity), serialised so levels arrive in order."""

    def __init__(self, set_load: Callable[[float], None], capacity: int) -> None:
        self._set_load = set_load
        self.capacity = max(1, capacity)
        self._busy = 0
        self._lock = threading.Lock()

    def change(self, delta: int) -> None:
        with self._lock:
            self._busy += delta
            self._set_load(min(1.0, self._busy / float(self.capacity)))


class _Pool(object):
    """Worker threads running queued queries; `done` callbacks let LoadGen hear of completions."""

    def __init__(self, run: "_Run", workers: int) -> None:
        self._run = run
        self._queue: "queue.Queue[Any]" = queue.Queue()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        for t in self._threads:
            t.start()

    def submit(self, qid: int, samples: List[int], issue_t: float, extra: Optional[Dict[str, Any]] = None,
               done: Optional[Callable[[], None]] = None) -> None:
        self._queue.put((qid, samples, issue_t, extra, done))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                qid, samples, issue_t, extra, done = item
                try:
                    if self._run.stopping():
                        with self._run.lock:
                            self._run.not_run += 1  # stopped: not run, not reported as a query
                    else:
                        self._run.query(qid, samples, issue_t, extra)
                except Exception as exc:  # emit failed (spool): a dead worker would hang drain()
                    self._run.crash(exc)
                finally:
                    if done is not None:
                        done()
            finally:
                self._queue.task_done()

    def drain(self) -> None:
        """Block until every submitted query ran (or was skipped because the run is stopping)."""
        self._queue.join()

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()


class _Run(object):
    """State of one workload run: the SUT, counters, the query recorder and the scenarios."""

    def __init__(self, params: Dict[str, Any], sut: Sut, clock: Callable[[], float], emit: EmitQuery,
                 set_load: Callable[[float], None], should_stop: Callable[[], bool]) -> None:
        self.p = params
        self.sut = sut
        self.clock = clock
        self._emit = emit
        self._should_stop = should_stop
        self.rng = random.Random(params["seed"])
        # A SUT that cannot take overlapping calls (one server process) gets one worker.
        pooled = params["scenario"] in ("offline", "server", "bursts")
        self.workers = params["workers"] if sut.concurrent and pooled else 1
        self._set_load = set_load
        self.load = _Load(set_load, 1)
        self.generator = "builtin"
        self.log_dir: Optional[str] = None
        self.mlperf_result: Optional[str] = None
        self.lock = threading.Lock()
        self.ok = 0
        self.failed = 0
        self.not_run = 0
        self.errors: Dict[str, int] = {}
        self.first_error: Optional[str] = None
        self.stop_reason: Optional[str] = None
        self.crashed: Optional[Exception] = None
        self.deadline: Optional[float] = None
        self.warmup_errors = 0
        self.first_warmup_error: Optional[str] = None
        self.latencies_ms: List[float] = []
        self.t_start = clock()
        self.t_end = self.t_start

    # --- recording ---------------------------------------------------------------------------

    def crash(self, exc: Exception) -> None:
        """A worker could not record a query: stop the run; run_builtin/run_mlperf raise it after."""
        with self.lock:
            if self.crashed is None:
                self.crashed = exc
                self.stop_reason = "internal error: {!r}".format(exc)

    def _raise_crash(self) -> None:
        if self.crashed is not None:
            raise LoadgenError("recording a query failed: {!r}".format(self.crashed))

    def stopping(self) -> bool:
        if self.stop_reason is None:
            if self._should_stop():
                self.stop_reason = "stop requested"
            elif self.deadline is not None and self.clock() >= self.deadline:
                self.stop_reason = "max_duration_s reached"
        return self.stop_reason is not None

    def start_clock(self) -> None:
        self.t_start = self.clock()
        if self.p["max_duration_s"] is not None:
            self.deadline = self.t_start + self.p["max_duration_s"]

    def warm_up(self) -> None:
        """`warmup` unrecorded queries first (model load, caches): power shows them before query 0."""
        for i in range(self.p["warmup"]):
            if self.stopping():
                return
            self.load.change(+1)
            try:
                # Not from self.rng, so the measured queries get the same samples with or without warm-up.
                self.sut.infer([i % self.p["sample_count"]])
            except Exception as exc:  # recorded, not raised: the measured queries will say more
                self.warmup_errors += 1
                self.first_warmup_error = self.first_warmup_error or str(exc)
            finally:
                self.load.change(-1)

    def query(self, qid: int, samples: List[int], issue_t: float,
              extra: Optional[Dict[str, Any]] = None) -> None:
        """Run one query on the SUT and report it; a failure is recorded, never raised."""
        self.load.change(+1)
        start_t = self.clock()
        try:
            info = self.sut.infer(samples)
            ok = True
        except SutError as exc:
            info, ok = {"error": str(exc)}, False
        except Exception as exc:  # a bug in an adapter must not lose the run: mark the query
            info, ok = {"error": "internal error in the {} sut: {!r}".format(self.sut.kind, exc)}, False
        finally:
            self.load.change(-1)
        done_t = self.clock()
        out = dict(extra or {})
        out.update(info)
        if len(samples) > 1:
            out["samples"] = len(samples)
        else:
            out["sample"] = samples[0]
        if start_t - issue_t > 1e-4:  # queued before a worker took it (Offline, Server, bursts)
            out["wait_ms"] = round((start_t - issue_t) * 1000.0, 3)
        with self.lock:
            if ok:
                self.ok += 1
                self.latencies_ms.append((done_t - issue_t) * 1000.0)
            else:
                self.failed += 1
                msg = out["error"]
                self.errors[msg] = self.errors.get(msg, 0) + 1
                if self.first_error is None:
                    self.first_error = "query {}: {}".format(qid, msg)
                if self.p["on_error"] == "stop" and self.stop_reason is None:
                    self.stop_reason = "on_error=stop after query {} failed".format(qid)
            self._emit(qid, issue_t, done_t, ok, out)

    def samples(self, n: int) -> List[int]:
        return [self.rng.randrange(self.p["sample_count"]) for _ in range(n)]

    def wait_until(self, t: float) -> bool:
        """Sleep until clock() >= t in short slices; False as soon as the run is stopping."""
        while True:
            now = self.clock()
            if self.stopping():
                return False
            if now >= t:
                return True
            time.sleep(min(WAIT_SLICE_S, t - now))

    # --- built-in generator ------------------------------------------------------------------

    def run_builtin(self) -> None:
        scenario = self.p["scenario"]
        self.start_clock()
        getattr(self, "_run_" + scenario)()
        self.t_end = self.clock()
        self._raise_crash()

    def _sequential(self, per_query: int) -> None:
        for qid in range(self.p["queries"]):
            if self.stopping():
                break
            self.query(qid, self.samples(per_query), self.clock())

    def _run_singlestream(self) -> None:
        self._sequential(1)

    def _run_multistream(self) -> None:
        self._sequential(self.p["samples_per_query"])

    def _run_batch(self) -> None:
        if not self.stopping():
            self.query(0, self.samples(self.p["batch_size"]), self.clock())

    def _run_gaps(self) -> None:
        for qid in range(self.p["queries"]):
            if qid > 0:
                gap_ms = self.rng.uniform(self.p["min_ms"], self.p["max_ms"])
                if not self.wait_until(self.clock() + gap_ms / 1000.0):
                    break
            if self.stopping():
                break
            self.query(qid, self.samples(1), self.clock())

    def _pooled(self, body: Callable[["_Pool"], None]) -> None:
        self.load = _Load(self._set_load, self.workers)
        pool = _Pool(self, self.workers)
        try:
            body(pool)
            pool.drain()
        finally:
            pool.close()

    def _run_offline(self) -> None:
        def body(pool: _Pool) -> None:
            issue_t = self.clock()  # MLPerf Offline: every sample is issued at once
            for qid in range(self.p["queries"]):
                pool.submit(qid, self.samples(1), issue_t)
        self._pooled(body)

    def _run_server(self) -> None:
        def body(pool: _Pool) -> None:
            t0 = self.clock()
            t_next = t0
            for qid in range(self.p["queries"]):
                t_next += self.rng.expovariate(self.p["qps"])  # Poisson arrivals: exponential gaps
                if not self.wait_until(t_next):
                    break
                pool.submit(qid, self.samples(1), self.clock())
        self._pooled(body)

    def _run_bursts(self) -> None:
        def body(pool: _Pool) -> None:
            qid = 0
            for burst in range(self.p["bursts"]):
                if burst > 0 and not self.wait_until(self.clock() + self.p["pause_ms"] / 1000.0):
                    return
                issue_t = self.clock()
                for _ in range(self.p["burst_size"]):
                    pool.submit(qid, self.samples(1), issue_t, {"burst": burst})
                    qid += 1
                pool.drain()  # the pause starts when the burst's last answer is in
        self._pooled(body)

    # --- real MLPerf LoadGen -----------------------------------------------------------------

    def run_mlperf(self, lg: Any) -> None:
        """Let LoadGen schedule the queries; our pool runs them and reports each to LoadGen."""
        import array

        p = self.p
        self.generator = "mlperf_loadgen"
        scenario = p["scenario"]
        if scenario in ("singlestream", "multistream"):
            self.workers = 1  # LoadGen issues the next query only when this one completes
        log_dir = p["log_dir"] or tempfile.mkdtemp(prefix="wattlab-mlperf-")
        os.makedirs(log_dir, exist_ok=True)  # LoadGen aborts the process if outdir is missing
        self.log_dir = log_dir
        settings = lg.TestSettings()
        settings.scenario = {
            "singlestream": lg.TestScenario.SingleStream,
            "multistream": lg.TestScenario.MultiStream,
            "offline": lg.TestScenario.Offline,
            "server": lg.TestScenario.Server,
        }[scenario]
        settings.mode = lg.TestMode.PerformanceOnly
        # Exactly `queries` queries: min = max count and no minimum duration.
        settings.min_query_count = settings.max_query_count = p["queries"]
        settings.min_duration_ms = 0
        if p["max_duration_s"] is not None:
            settings.max_duration_ms = int(p["max_duration_s"] * 1000)
        settings.qsl_rng_seed = settings.sample_index_rng_seed = settings.schedule_rng_seed = p["seed"]
        if scenario == "multistream":
            settings.multi_stream_samples_per_query = p["samples_per_query"]
        if scenario == "server":
            settings.server_target_qps = p["qps"]
        if scenario == "offline":
            settings.offline_expected_qps = float(p["queries"])
        perf_count = min(p["sample_count"], 1024)
        settings.performance_sample_count_override = perf_count
        log = lg.LogSettings()
        log.log_output.outdir = log_dir
        buf = array.array("B", [0])
        ptr, size = buf.buffer_info()
        counter = [0]

        def complete(samples: List[Any]) -> Callable[[], None]:
            def done() -> None:
                lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, ptr, size) for s in samples])
            return done

        def issue(samples: List[Any]) -> None:
            issue_t = self.clock()
            # MultiStream: one query of N samples; the others: one query per sample.
            groups = [samples] if scenario == "multistream" else [[s] for s in samples]
            for group in groups:
                with self.lock:
                    qid = counter[0]
                    counter[0] += 1
                pool.submit(qid, [s.index for s in group], issue_t, None, complete(group))

        self.load = _Load(self._set_load, self.workers)
        pool = _Pool(self, self.workers)
        sut_h = lg.ConstructSUT(issue, lambda: None)
        qsl_h = lg.ConstructQSL(p["sample_count"], perf_count, lambda idx: None, lambda idx: None)
        self.start_clock()
        try:
            # An audit.config in the working directory would turn this into a compliance test;
            # point LoadGen at one in our own (empty) log directory instead.
            lg.StartTestWithLogSettings(sut_h, qsl_h, settings, log, os.path.join(log_dir, "audit.config"))
        finally:
            self.t_end = self.clock()
            lg.DestroyQSL(qsl_h)
            lg.DestroySUT(sut_h)
            pool.close()
        self.mlperf_result = _mlperf_result(log_dir)
        self._raise_crash()

    # --- summary -----------------------------------------------------------------------------

    def summary(self) -> Dict[str, Any]:
        errors = sorted(self.errors.items(), key=lambda kv: -kv[1])[:MAX_ERRORS_LISTED]
        duration = max(0.0, self.t_end - self.t_start)
        issued = self.ok + self.failed
        out: Dict[str, Any] = {
            "generator": self.generator,
            "scenario": self.p["scenario"],
            "params": {k: v for k, v in self.p.items() if k not in ("scenario", "generator", "log_dir")},
            "sut": self.sut.describe(),
            "workers": self.workers,
            "queries_planned": self.p["queries"] if self.p["scenario"] != "batch" else 1,
            "queries_issued": issued,
            "queries_ok": self.ok,
            "queries_failed": self.failed,
            "queries_not_run": self.not_run,
            "errors": [{"error": msg, "count": n} for msg, n in errors],
            "first_error": self.first_error,
            "stopped": self.stop_reason,
            "duration_s": duration,
            "qps": issued / duration if duration > 0 else None,
            "latency_ms": percentiles(self.latencies_ms),
        }
        if self.p["warmup"]:
            out["warmup"] = {"queries": self.p["warmup"], "failed": self.warmup_errors,
                             "first_error": self.first_warmup_error}
        if self.generator == "mlperf_loadgen":
            out["log_dir"] = self.log_dir
            out["mlperf_result"] = self.mlperf_result
        return out


def percentiles(values: List[float]) -> Optional[Dict[str, float]]:
    """p50/p90/p99 (linear interpolation, as numpy's default), max and mean; None when empty."""
    if not values:
        return None
    xs = sorted(values)

    def pct(q: float) -> float:
        pos = (len(xs) - 1) * q
        lo = int(pos)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

    return {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": xs[-1], "mean": sum(xs) / len(xs)}


def _mlperf_result(log_dir: str) -> Optional[str]:
    """"VALID"/"INVALID" from LoadGen's summary log (the full parse is the console's job)."""
    try:
        with open(os.path.join(log_dir, "mlperf_log_summary.txt")) as fh:
            for line in fh:
                if line.startswith("Result is"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None
