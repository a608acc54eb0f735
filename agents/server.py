"""Request dispatch for the agent daemon: the Agent (jobs, spool, subscribers) and one Connection
per client (a reader thread that dispatches, a writer thread with a bounded queue).

A handler that raises never takes the daemon down: the client gets an error "internal" with the
message. Live events go through a bounded per-client queue; a client that does not keep up loses
live events (never replies) and gets one "lagged" event, then backfills with `fetch`.
Python 3.6 compatible, stdlib only.
"""

import os
import platform
import queue
import socket
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from agents import AGENT_VERSION, monitor, protocol
from agents.jobs import ACTIVE_STATES, Job, SpecError, normalize_spec
from agents.samplers.base import SamplerError, SamplerUnavailable
from agents.spool import STREAMS, JobSpool, Spool, SpoolError
from agents.workload import terminate_orphan

QUEUE_MAX = 512  # live messages buffered per client before it is declared lagging
FETCH_LIMIT_MAX = 100000
FETCH_MAX_BYTES = protocol.MAX_LINE_BYTES // 2  # a fetch reply always fits in one line
STOP_WAIT_S = 3.0
OUTPUTS = ("stdout", "stderr")
OUTPUT_LIMIT = 256 * 1024  # bytes per `output` reply: fits one protocol line even if all escaped
SLOW_OPS = ("start", "stop", "probe")  # may take seconds (NVML init, tegrastats start, a job's end)
PRUNE_AFTER_S = 7 * 86400.0  # acked, finished spools are kept a week for a console that re-fetches

OpenSampler = Callable[..., Any]


class BadArgs(ValueError):
    """A request argument that is missing or of the wrong type (error code bad_args)."""


class OpError(Exception):
    """A request that cannot be served; carries the protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        Exception.__init__(self, message)
        self.code = code
        self.message = message


def default_open_sampler(
    device: str, interval_ms: float, clock: Optional[Callable[[], float]] = None, **opts: Any
):
    """agents.samplers.registry.open_sampler, imported when the first job starts."""
    from agents.samplers import registry

    return registry.open_sampler(device, interval_ms, clock=clock, **opts)


def probe_info() -> Dict[str, Any]:
    """What this machine can measure: {agent_version, python, host, samplers, devices}."""
    samplers: Dict[str, Optional[str]] = {}
    devices: List[Dict[str, Any]] = []
    try:
        from agents.samplers import registry

        samplers, devices = registry.probe()
    except Exception as exc:  # a broken sampler module must not hide the agent itself
        samplers = {"registry": "sampler registry unavailable: {}".format(exc)}
    return {
        "agent_version": AGENT_VERSION,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "samplers": samplers,
        "devices": devices,
    }


def _agent_path() -> str:
    """The zipapp we run from, or the source directory of the agents package."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return root if os.path.isfile(root) else os.path.join(root, "agents")


def new_job_id(wall: float) -> str:
    """A sortable, unique-enough id: UTC time plus 6 random hex digits."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(wall)) + "-" + os.urandom(3).hex()


def _arg(args: Dict[str, Any], name: str, kind: Any, default: Any = None, required: bool = False) -> Any:
    value = args.get(name, default)
    if value is None:
        if required:
            raise BadArgs("missing argument {!r}".format(name))
        return None
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, (int, float)))
    if not ok:
        raise BadArgs("argument {!r} has the wrong type ({})".format(name, type(value).__name__))
    return value


class Agent(object):
    """The daemon's state. handle() turns one request message into one reply or error message."""

    def __init__(
        self,
        home: str,
        open_sampler: Optional[OpenSampler] = None,
        probe: Optional[Callable[[], Dict[str, Any]]] = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        spool: Optional[Spool] = None,
    ) -> None:
        self.home = home
        self.spool = spool or Spool(os.path.join(home, "jobs"))
        self.open_sampler = open_sampler or default_open_sampler
        self.probe = probe or probe_info
        self.clock = clock
        self.wall_clock = wall_clock
        self.jobs: Dict[str, Job] = {}
        self._stored: Dict[str, JobSpool] = {}
        self._lock = threading.RLock()  # jobs and stored spools
        self._clients_lock = threading.Lock()  # never held while anything slow runs: publish takes it
        self._starting: Set[str] = set()
        self.clients: Set["Connection"] = set()
        self.client_queue_max = QUEUE_MAX
        self.shutdown_requested = threading.Event()
        self.hello = protocol.hello(
            AGENT_VERSION,
            platform.python_version(),
            socket.gethostname(),
            os.getpid(),
            {
                "ops": list(protocol.OPS),
                "streams": list(STREAMS),
                "max_line": protocol.MAX_LINE_BYTES,
                # what code this daemon runs (a zipapp path carries its content hash): a console
                # that deployed a newer agent can see an old daemon and stop it once it is idle
                "agent_path": _agent_path(),
            },
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def recover(self) -> List[str]:
        """Mark jobs whose spool says active but that no thread runs (daemon restarted) interrupted."""
        marked = []
        for job_id in self.spool.job_ids():
            if job_id in self.jobs:
                continue
            try:
                js = self.spool.open(job_id)
            except SpoolError:
                continue
            if js.meta.get("state") in ACTIVE_STATES:
                # When it died is unknown (after a reboot the monotonic clock restarted too):
                # the interruption is placed at the last stored sample.
                t_s = _last_sample_t(js)
                wl = js.meta.get("workload") or {}
                if wl.get("kind") == "argv" and wl.get("rc") is None and isinstance(wl.get("pid"), int):
                    # A benchmark left running would skew every later measurement on this device.
                    if terminate_orphan(wl["pid"], wl.get("proc_start")):
                        js.append(
                            "events",
                            [
                                t_s,
                                "workload_exit",
                                {
                                    "pid": wl["pid"],
                                    "terminated": True,
                                    "reason": "orphaned by the agent daemon",
                                },
                            ],
                        )
                js.append(
                    "events", [t_s, "state", {"state": "interrupted", "reason": "agent daemon restarted"}]
                )
                js.maybe_flush(force=True)
                js.update_meta(
                    state="interrupted",
                    ended_wall=self.wall_clock(),
                    error="interrupted: the agent daemon stopped while the job ran",
                )
                marked.append(job_id)
            js.close()
        return marked

    def prune(self, older_than_s: float = PRUNE_AFTER_S) -> List[str]:
        """Delete finished jobs the console acknowledged completely and that ended long ago."""
        removed = []
        now = self.wall_clock()
        for job_id in self.spool.job_ids():
            if job_id in self.jobs:
                continue
            try:
                js = self.spool.open(job_id)
            except SpoolError:
                continue
            ended = js.meta.get("ended_wall")
            old = isinstance(ended, (int, float)) and now - ended > older_than_s
            if old and js.finished() and js.fully_acked():  # cheap checks first: acks open the streams
                self.spool.remove(js)
                removed.append(job_id)
            else:
                js.close()
        return removed

    def active_jobs(self) -> List[Job]:
        """Jobs still sampling."""
        with self._lock:
            return [j for j in self.jobs.values() if j.active]

    def stop_all(self, reason: str, timeout: float = 10.0) -> None:
        """Stop every running job and wait for them to write their end state."""
        jobs = self.active_jobs()
        for j in jobs:
            j.stop(reason)
        deadline = time.monotonic() + timeout
        for j in jobs:
            j.join(max(0.0, deadline - time.monotonic()))

    # -- live events --------------------------------------------------------------------------

    def publish(self, msg: Dict[str, Any]) -> None:
        """Send one live event to every subscribed client (never blocks)."""
        with self._clients_lock:
            clients = [c for c in self.clients if c.subscribed]
        if not clients:
            return  # nobody listens: do not even encode
        try:
            data = protocol.encode(msg)
        except (protocol.ProtocolError, ValueError, TypeError):
            return  # a batch too big or unencodable: the spool has it, fetch will return it
        job = msg.get("job")
        for c in clients:
            c.offer(job, data)

    # -- dispatch -----------------------------------------------------------------------------

    def handle(self, msg: Dict[str, Any], client: Optional["Connection"] = None) -> Dict[str, Any]:
        """One request -> one reply or error message. Never raises."""
        rid = msg.get("id")
        op = msg.get("op")
        handler = getattr(self, "op_" + op, None) if op in protocol.OPS else None
        if handler is None:
            return protocol.error(
                rid, protocol.E_UNKNOWN_OP, "unknown op {!r}; known: {}".format(op, ", ".join(protocol.OPS))
            )
        try:
            return protocol.reply(rid, handler(msg.get("args") or {}, client))
        except (BadArgs, SpecError) as exc:
            return protocol.error(rid, protocol.E_BAD_ARGS, "{}: {}".format(op, exc))
        except OpError as exc:
            return protocol.error(rid, exc.code, exc.message)
        except Exception as exc:
            tb = traceback.format_exc(limit=4)
            return protocol.error(
                rid, protocol.E_INTERNAL, "{} failed: {}: {}\n{}".format(op, type(exc).__name__, exc, tb)
            )

    def op_hello(self, args: Dict[str, Any], client: Any) -> Dict[str, Any]:
        """`hello` -> the hello message again."""
        return dict(self.hello)

    def op_probe(self, args: Dict[str, Any], client: Any) -> Dict[str, Any]:
        """`probe` -> samplers and devices usable here."""
        return self.probe()

    def op_ping(self, args: Dict[str, Any], client: Any) -> Dict[str, Any]:
        """`ping` -> the device's monotonic and wall clocks (the console estimates the offset)."""
        return {"t_mono": self.clock(), "t_wall": self.wall_clock()}

    def op_shutdown(self, args: Dict[str, Any], client: Any) -> Dict[str, Any]:
        """`shutdown` -> {}; the daemon stops its jobs and exits right after replying."""
        self.shutdown_requested.set()
        return {}

    def op_start(self, args: Dict[str, Any], client: Any) -> Dict[str, Any]:
        """`start` -> {job, t0_wall, t0_mono, sampler}; the job runs in its own thread."""
        spec = normalize_spec(args)
        if self.shutdown_requested.is_set():
            raise OpError(protocol.E_INTERNAL, "the agent daemon is shutting down; start the job again")
        job_id = _arg(args, "job_id", str) or new_job_id(self.wall_clock())
        with self._lock:
            try:
                exists = job_id in self.jobs or job_id in self._starting or self.spool.exists(job_id)
            except SpoolError as exc:
                raise BadArgs(str(exc)) from None
            if exists:
                raise BadArgs("job id {!r} is already used".format(job_id))
            self._starting.add(job_id)
        try:
            # Outside the lock: opening NVML or starting tegrastats can take a second, and
            # nothing else (status, live events of other jobs) may wait for it.
            sampler = self._open_sampler(spec)
            try:
                js = self.spool.create(job_id, {"job": job_id, "spec": spec, "state": "starting"})
            except SpoolError as exc:
                _close_quietly(sampler)
                raise OpError(protocol.E_INTERNAL, str(exc)) from None
            job = Job(job_id, spec, sampler, js, self.clock, self.wall_clock, listener=self.publish)
            try:
                job.prepare()
            except Exception as exc:
                js.update_meta(state="failed", error=str(exc))
                js.close()
                _close_quietly(sampler)
                raise OpError(protocol.E_INTERNAL, "job {}: cannot start: {}".format(job_id, exc)) from None
            with self._lock:
                self.jobs[job_id] = job
        finally:
            with self._lock:
                self._starting.discard(job_id)
        job.start()
        if self.shutdown_requested.is_set():
            job.stop("agent daemon stopping")  # raced with shutdown: end it cleanly, not half-way
        return {"job": job_id, "t0_wall": job.t0_wall, "t0_mono": job.t0, "sampler": job.describe}

    def _open_sampler(self, spec: Dict[str, Any]) -> Any:
        """An opened sampler for the spec; sampler errors become protocol error codes."""
        device = spec["device"]
        opts = dict(spec.get("sampler_opts") or {})
        if spec["sampler"]:
            opts["sampler"] = spec["sampler"]
        try:
            return self.open_sampler(device, spec["interval_ms"], clock=self.clock, **opts)
        except TypeError as exc:  # an option of the wrong type for this sampler
            raise BadArgs("sampler_opts {} rejected by device {!r}: {}".format(opts, device, exc)) from None
        except (LookupError, SamplerUnavailable, ValueError) as exc:
            raise OpError(protocol.E_NO_SUCH_DEVICE, "device {!r}: {}".format(device, exc)) from None
        except SamplerError as exc:
            raise OpError(protocol.E_SAMPLER, "device {!r}: {}".format(device, exc)) from None

    def op_stop(self, args: Dict[str, Any], client: Any) -> Dict[str, Any]:
        """`stop {job}` -> {job, state}, waiting up to STOP_WAIT_S for the end state."""
        job_id = _arg(args, "job", str, required=True)
        job = self.jobs.get(job_id)
        if job is None:
            return {"job": job_id, "state": self._stored_spool(job_id).meta.get("state")}
        job.stop()
        job.join(STOP_WAIT_S)
        return {"job": job_id, "state": job.state}

    def op_mark(self, args: Dict[str, Any], client: Any) -> Dict[str, Any]:
        """`mark {job, label}` -> {seq} of the mark row in the events stream."""
        job_id = _arg(args, "job", str, required=True)
        label = _arg(args, "label", str, required=True)
        job = self.jobs.get(job_id)
        if job is None or not job.active:
            raise BadArgs("job {} is not running; marks go into running jobs only".format(job_id))
        return {"seq": job.mark(label)}

    def op_status(self, args: Dict[str, Any], client: Any) -> Dict[str, Any]:
        """`status {job}` -> state, spec, sampler and running totals of a live or stored job."""
        job_id = _arg(args, "job", str, required=True)
        job = self.jobs.get(job_id)
        if job is not None:
            return job.status()
        return _stored_status(self._stored_spool(job_id))

    def op_jobs(self, args: Dict[str, Any], client: Any) -> Dict[str, Any]:
        """`jobs` -> every job this agent knows, live and stored, with its last seq per stream."""
        out = []
        for job_id in sorted(set(self.spool.job_ids()) | set(self.jobs)):
            job = self.jobs.get(job_id)
            try:
                st = job.status() if job is not None else _stored_status(self._stored_spool(job_id))
            except OpError:
                continue  # forgotten meanwhile
            out.append(
                {
                    k: st.get(k)
                    for k in ("job", "device", "state", "error", "last_seq", "started_wall", "ended_wall")
                }
            )
        return {"jobs": out}

    def op_fetch(self, args: Dict[str, Any], client: Any) -> Dict[str, Any]:
        """`fetch {job, stream, after_seq, limit}` -> rows after after_seq, and whether that is all."""
        job_id = _arg(args, "job", str, required=True)
        stream = _arg(args, "stream", str, "samples")
        if stream not in STREAMS:
            raise BadArgs("stream must be one of {}".format(", ".join(STREAMS)))
        after = _arg(args, "after_seq", int, -1)
        limit = _arg(args, "limit", int, 10000)
        if limit < 1 or limit > FETCH_LIMIT_MAX:
            raise BadArgs("limit must be in 1..{}".format(FETCH_LIMIT_MAX))
        job = self.jobs.get(job_id)
        js = job.spool if job is not None else self._stored_spool(job_id)
        rows = js.read(stream, after, limit, FETCH_MAX_BYTES)
        last = js.last_seq()[stream]
        active = job is not None and job.active
        upto = rows[-1][0] if rows else after
        return {
            "job": job_id,
            "stream": stream,
            "rows": rows,
            "last_seq": last,
            "done": (not active) and upto >= last,
        }

    def op_ack(self, args: Dict[str, Any], client: Any) -> Dict[str, Any]:
        """`ack {job, stream, upto_seq}` -> {}; the console stored the rows up to upto_seq."""
        job_id = _arg(args, "job", str, required=True)
        stream = _arg(args, "stream", str, required=True)
        upto = _arg(args, "upto_seq", int, required=True)
        if stream not in STREAMS:
            raise BadArgs("stream must be one of {}".format(", ".join(STREAMS)))
        job = self.jobs.get(job_id)
        js = job.spool if job is not None else self._stored_spool(job_id)
        js.ack(stream, min(upto, js.last_seq()[stream]))
        return {}

    def op_forget(self, args: Dict[str, Any], client: Any) -> Dict[str, Any]:
        """`forget {job}` -> {}; deletes a finished job whose every row was acked."""
        job_id = _arg(args, "job", str, required=True)
        with self._lock:
            job = self.jobs.get(job_id)
            if job is not None and job.active:
                raise BadArgs("job {} is {}: stop it before forgetting it".format(job_id, job.state))
            js = job.spool if job is not None else self._stored_spool(job_id)
            try:
                self.spool.remove(js)
            except SpoolError as exc:
                raise BadArgs(str(exc)) from None
            self.jobs.pop(job_id, None)
            self._stored.pop(job_id, None)
        return {}

    def op_output(self, args: Dict[str, Any], client: Any) -> Dict[str, Any]:
        """A slice of an argv workload's stdout or stderr (for parsing trtexec/llama-bench output)."""
        job_id = _arg(args, "job", str, required=True)
        which = _arg(args, "which", str, "stdout")
        if which not in OUTPUTS:
            raise BadArgs("which must be one of {}".format(", ".join(OUTPUTS)))
        offset = _arg(args, "offset", int, 0)
        limit = _arg(args, "limit", int, OUTPUT_LIMIT)
        if offset < 0 or not 1 <= limit <= OUTPUT_LIMIT:
            raise BadArgs("offset must be >= 0 and limit in 1..{}".format(OUTPUT_LIMIT))
        job = self.jobs.get(job_id)
        js = job.spool if job is not None else self._stored_spool(job_id)
        data, size = read_output(os.path.join(js.path, "workload." + which), offset, limit)
        active = job is not None and job.active
        next_offset = offset + len(data)
        # bytes are cut anywhere; a client decoding UTF-8 should join slices before decoding
        return {
            "job": job_id,
            "which": which,
            "offset": offset,
            "data": data.decode("utf-8", "replace"),
            "next_offset": next_offset,
            "size": size,
            "eof": (not active) and next_offset >= size,
        }

    def op_monitor(self, args: Dict[str, Any], client: Any) -> Dict[str, Any]:
        """`monitor {devices|null, interval_ms}` -> {devices, interval_ms}; idle devices' power read
        every interval_ms and pushed to this client only (agents/monitor.py); devices=[] stops it."""
        try:
            devices, interval_ms = monitor.parse_args(args)
        except ValueError as exc:
            raise BadArgs(str(exc)) from None
        if client is None:
            raise BadArgs("monitor streams to a connected client only")
        old = client.monitor
        if old is not None:
            old.stop()  # a new request replaces the previous one
        client.monitor = None
        if devices == []:
            return {"devices": [], "interval_ms": interval_ms}
        client.monitor = monitor.Monitor(
            devices,
            interval_ms,
            self.open_sampler,
            lambda: {j.spec["device"]: j.job_id for j in self.active_jobs()},
            client.push,
            client.closed,
            clock=self.clock,
            wall_clock=self.wall_clock,
            probe=self.probe,
        ).start()
        return {"devices": devices, "interval_ms": interval_ms}

    def op_subscribe(self, args: Dict[str, Any], client: Any) -> Dict[str, Any]:
        """`subscribe {jobs|null}` -> {}; live events for those jobs (null: all) on this connection."""
        jobs = args.get("jobs")
        if jobs is not None and not (isinstance(jobs, list) and all(isinstance(j, str) for j in jobs)):
            raise BadArgs("jobs must be a list of job ids or null (all jobs)")
        if client is not None:
            client.subscription = None if jobs is None else set(jobs)
            client.subscribed = True
        return {}

    # -- helpers ------------------------------------------------------------------------------

    def _stored_spool(self, job_id: str) -> JobSpool:
        with self._lock:
            js = self._stored.get(job_id)
            if js is not None:
                return js
            try:
                if not self.spool.exists(job_id):
                    raise OpError(protocol.E_NO_SUCH_JOB, "no job {!r} on this agent".format(job_id))
                js = self.spool.open(job_id)
            except SpoolError as exc:
                raise OpError(protocol.E_NO_SUCH_JOB, str(exc)) from None
            self._stored[job_id] = js
            return js


def read_output(path: str, offset: int, limit: int) -> Tuple[bytes, int]:
    """(bytes at offset, at most limit; file size). A job without that output gives (b"", 0)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(min(offset, size))
            return f.read(limit), size
    except FileNotFoundError:
        return b"", 0


def _last_sample_t(js: JobSpool) -> float:
    last = js.last_seq()["samples"]
    rows = js.read("samples", last - 1, 1) if last >= 0 else []
    t = rows[0][1] if rows else 0.0
    return t if isinstance(t, (int, float)) else 0.0


def _close_quietly(sampler: Any) -> None:
    try:
        sampler.close()
    except Exception:
        pass  # the start already failed; its error is the one to report


def _stored_status(js: JobSpool) -> Dict[str, Any]:
    m = js.meta
    return {
        "job": js.job_id,
        "device": m.get("device") or (m.get("spec") or {}).get("device"),
        "state": m.get("state"),
        "error": m.get("error"),
        "spec": m.get("spec"),
        "t0_wall": m.get("t0_wall"),
        "t0_mono": m.get("t0_mono"),
        "sampler": m.get("sampler"),
        "totals": m.get("totals") or {},
        "workload": m.get("workload"),
        "last_seq": js.last_seq(),
        "started_wall": m.get("started_wall"),
        "ended_wall": m.get("ended_wall"),
        "acked": m.get("acked") or {},
    }


class Connection(object):
    """One client on a stream socket: hello first, then requests in, replies and events out."""

    def __init__(self, sock: socket.socket, agent: Agent, queue_max: int = QUEUE_MAX) -> None:
        self.sock = sock
        self.agent = agent
        self.subscribed = False
        self.subscription: Optional[Set[str]] = None  # None with subscribed=True: every job
        self._q: "queue.Queue[Optional[bytes]]" = queue.Queue(maxsize=queue_max)
        self._lag_lock = threading.Lock()
        self._lagged: Set[str] = set()
        self._lag_dropped = 0
        self.closed = threading.Event()
        self.monitor: Optional[Any] = None  # agents.monitor.Monitor while this client asked for one

    # -- outgoing -----------------------------------------------------------------------------

    def send(self, msg: Dict[str, Any]) -> None:
        """Queue a reply/error (blocks this client's reader only if its queue is full)."""
        try:
            data = protocol.encode(msg)
        except (protocol.ProtocolError, ValueError, TypeError) as exc:
            data = protocol.encode(
                protocol.error(msg.get("id"), protocol.E_INTERNAL, "reply not encodable: {}".format(exc))
            )
        while not self.closed.is_set():
            try:
                self._q.put(data, timeout=0.5)
                return
            except queue.Full:
                continue

    def offer(self, job: Optional[str], data: bytes) -> None:
        """A live event for this client if it subscribed to `job`; dropped (and noted) when lagging."""
        if not self.subscribed or self.closed.is_set():
            return
        if self.subscription is not None and job not in self.subscription:
            return
        with self._lag_lock:
            if self._lagged:
                self._lagged.add(job or "")
                self._lag_dropped += 1
                return
            try:
                self._q.put_nowait(data)
            except queue.Full:
                self._lagged.add(job or "")
                self._lag_dropped += 1

    def push(self, msg: Dict[str, Any]) -> None:
        """A live event for this client only (monitor readings); dropped when its queue is full."""
        if self.closed.is_set():
            return
        try:
            self._q.put_nowait(protocol.encode(msg))
        except (queue.Full, protocol.ProtocolError, ValueError, TypeError):
            pass  # not spooled and not needed later: the next reading replaces it

    def _writer(self) -> None:
        try:
            while True:
                data = self._q.get()
                if data is None:
                    return
                self.sock.sendall(data)
                # While lagging, offers are dropped, so the queue only drains; once what was queued
                # before the drops is out, say so once and accept live events again.
                if self._lagged and self._q.empty():
                    with self._lag_lock:
                        jobs, self._lagged = sorted(j for j in self._lagged if j), set()
                        dropped, self._lag_dropped = self._lag_dropped, 0
                    note = protocol.event(
                        "lagged",
                        None,
                        jobs=jobs,
                        dropped=dropped,
                        hint="live events were dropped; fetch from your last seq",
                    )
                    self.sock.sendall(protocol.encode(note))
        except OSError:
            pass  # the client went away
        finally:
            self.close()

    # -- incoming -----------------------------------------------------------------------------

    def serve(self) -> None:
        """Run until the client disconnects (call in the connection's own thread)."""
        writer = threading.Thread(target=self._writer, name="client-writer", daemon=True)
        writer.start()
        self.send(self.agent.hello)
        reader = protocol.LineReader()
        try:
            while not self.closed.is_set():
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                for msg in reader.feed(data):
                    self._dispatch(msg)
        finally:
            self.close()
            writer.join(2.0)

    def _dispatch(self, msg: Any) -> None:
        if isinstance(msg, protocol.ProtocolError):
            self.send(protocol.error(None, msg.code, msg.message))
            return
        if msg.get("type") != "request":
            self.send(
                protocol.error(
                    msg.get("id"),
                    protocol.E_BAD_MESSAGE,
                    "the agent accepts only requests, got {!r}".format(msg.get("type")),
                )
            )
            return
        if msg.get("op") in SLOW_OPS:
            # Replies carry ids, so a slow op answers later and the client's other requests
            # (status polls, fetch) are not stuck behind a sampler start or a job's end.
            t = threading.Thread(target=lambda: self.send(self.agent.handle(msg, self)), daemon=True)
            t.start()
            return
        self.send(self.agent.handle(msg, self))

    def drain_and_close(self, timeout: float = 1.0) -> None:
        """Let the writer send what is queued (the shutdown reply, final job events), then close."""
        deadline = time.monotonic() + timeout
        while not self.closed.is_set() and not self._q.empty() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.close()

    def close(self) -> None:
        """Close the socket and stop the writer; safe to call from any thread, twice."""
        if self.closed.is_set():
            return
        self.closed.set()
        if self.monitor is not None:
            # Now, not at its next tick: a daemon exiting right after must not orphan a tegrastats child.
            self.monitor.stop()
        try:
            self._q.put_nowait(None)
        except queue.Full:
            pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def serve_connection(sock: socket.socket, agent: Agent) -> Tuple[threading.Thread, Connection]:
    """Start a thread serving one accepted socket; it unregisters itself when the client leaves."""
    conn = Connection(sock, agent, agent.client_queue_max)
    with agent._clients_lock:
        agent.clients.add(conn)

    def run() -> None:
        try:
            conn.serve()
        finally:
            with agent._clients_lock:
                agent.clients.discard(conn)

    t = threading.Thread(target=run, name="client", daemon=True)
    t.start()
    return t, conn
