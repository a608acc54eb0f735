"""The protocol client: one Link per host, over a Channel from its Transport.

A supervisor thread connects (open_bridge, wait for the hello), then reads lines with
agents.protocol.LineReader and dispatches them: replies resolve request Futures, events go to the
tracked job's sink and to listeners. When the stream ends it reconnects with capped exponential
backoff plus jitter; after each (re)connect a short-lived thread resubscribes and backfills every
tracked job with `fetch` from the sink's last stored seq, so a gap is filled exactly once (the
store is idempotent by seq). A heartbeat pings a quiet link; no data for `stall_after_s` is
"stalled", away for `lost_after_s` is "lost" (still retrying). All times come from `clock`.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol

from agents import AGENT_VERSION
from agents import protocol as P
from console.errors import AgentError, HostError, WattlabError
from console.transport.base import Channel, Transport

FETCH_LIMIT = 5000


@dataclass(frozen=True)
class LinkTimeouts:
    """Per-host timeouts (lab file keys of the same names), seconds."""

    connect_timeout_s: float = 15.0  # open the bridge and get the hello
    request_timeout_s: float = 30.0  # a reply to one request
    stall_after_s: float = 10.0  # no data for this long: "stalled"
    lost_after_s: float = 300.0  # away (disconnected or stalled) this long: "lost"
    reconnect_on_stall_s: float = 30.0  # stalled this long: drop the channel and reconnect
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0


def backoff_delay(attempt: int, initial_s: float, cap_s: float,
                  rnd: Callable[[], float] = random.random) -> float:
    """Delay before reconnect attempt `attempt` (1-based): initial * 2^(k-1), capped, with +-25 % jitter."""
    base = min(cap_s, initial_s * (2 ** max(0, attempt - 1)))
    return max(0.0, min(cap_s, base * (0.75 + 0.5 * rnd())))


class JobSink(Protocol):
    """Where a tracked job's rows go (store.RunWriter satisfies it through runner.JobRecorder)."""

    def last_seq(self, stream: str) -> int: ...

    def add_rows(self, stream: str, rows: list) -> int: ...

    def event(self, kind: str, **fields: Any) -> None: ...


@dataclass(frozen=True)
class LinkState:
    """What the link is doing now, for the fleet/TUI ("reconnecting in 4 s (attempt 3)")."""

    kind: str  # connecting | connected | reconnecting | stalled | lost | error | closed
    attempt: int = 0
    reconnect_in_s: float | None = None
    stalled_for_s: float | None = None
    away_for_s: float | None = None
    last_data_wall: float | None = None
    last_sample_wall: float | None = None
    message: str | None = None

    def describe(self) -> str:
        """One human line."""
        if self.kind == "reconnecting":
            return f"reconnecting in {self.reconnect_in_s or 0:.0f} s (attempt {self.attempt})"
        if self.kind == "stalled":
            return f"stalled: no data for {self.stalled_for_s or 0:.0f} s" + _last_good(self.last_sample_wall)
        if self.kind == "lost":
            return f"lost: away for {self.away_for_s or 0:.0f} s" + _last_good(self.last_sample_wall)
        return self.kind + (f": {self.message}" if self.message and self.kind == "error" else "")


def _last_good(wall: float | None) -> str:
    if wall is None:
        return ""
    return time.strftime(" (last sample %H:%M:%S UTC)", time.gmtime(wall))


EventListener = Callable[[dict], None]


class Link:
    """Protocol client for one host; thread-safe. start() connects in the background, connect() waits."""

    def __init__(self, name: str, transport_factory: Callable[[], Transport], *,
                 timeouts: LinkTimeouts | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, rnd: Callable[[], float] = random.random) -> None:
        self.name = name
        self._factory = transport_factory
        self.timeouts = timeouts or LinkTimeouts()
        self._clock = clock
        self._wall = wall
        self._rnd = rnd
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[Future, str]] = {}
        self._listeners: list[EventListener] = []
        self._state_listeners: list[Callable[[], None]] = []
        self._sinks: dict[str, JobSink] = {}
        self._channel: Channel | None = None
        self._transport: Transport | None = None
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._kind = "connecting"
        self._fatal: str | None = None
        self._message: str | None = None
        self._attempt = 0
        self._next_try: float | None = None
        self._away_since: float | None = self._clock()
        self._last_data: float | None = None
        self._last_sample_wall: float | None = None
        self.hello: dict[str, Any] | None = None
        self.protocol_errors = 0
        self.last_protocol_error: str | None = None
        self.reconnects = 0

    # -- lifecycle --
    def start(self) -> Link:
        """Connect in a background thread (retrying with backoff); returns at once."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._supervise, name=f"link {self.name}", daemon=True)
                self._thread.start()
        return self

    def connect(self, timeout_s: float | None = None) -> dict[str, Any]:
        """Start and wait for the first hello; raises HostError if it does not come in time."""
        self.start()
        limit = self.timeouts.connect_timeout_s if timeout_s is None else timeout_s
        if not self._connected.wait(limit) or self.hello is None:
            reason = self._fatal or self._message or "no hello from the agent"
            raise HostError(self.name, f"cannot connect within {limit:g} s: {reason}")
        return self.hello

    def close(self) -> None:
        """Stop the link; jobs keep running on the host (they live in the agent daemon)."""
        self._stop.set()
        with self._lock:
            self._kind = "closed"
            channel, transport = self._channel, self._transport
        if channel is not None:
            _close_quietly(channel)
        if transport is not None:
            try:
                transport.close()
            except Exception:  # closing must not raise over a dead host
                pass
        self._fail_pending("link closed")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- requests --
    def request(self, op: str, args: dict[str, Any] | None = None) -> Future:
        """Send one request; the Future gets the result dict or an AgentError/HostError."""
        fut: Future = Future()
        rid = next(self._ids)
        with self._lock:
            channel = self._channel if self._connected.is_set() else None
            if channel is None:
                fut.set_exception(HostError(self.name, f"not connected ({self.state().describe()})"))
                return fut
            self._pending[rid] = (fut, op)
        try:
            channel.send(P.encode(P.request(rid, op, args or {})))
        except (OSError, P.ProtocolError) as exc:
            with self._lock:
                self._pending.pop(rid, None)
            if not fut.done():
                fut.set_exception(HostError(self.name, f"cannot send {op}: {exc}"))
        return fut

    def call(self, op: str, args: dict[str, Any] | None = None,
             timeout_s: float | None = None) -> dict[str, Any]:
        """Request and wait for the reply (request_timeout_s by default)."""
        limit = self.timeouts.request_timeout_s if timeout_s is None else timeout_s
        fut = self.request(op, args)
        try:
            return fut.result(timeout=limit)
        except FutureTimeout:
            with self._lock:  # a reply that never comes must not stay pending forever
                for rid, (pending, _op) in list(self._pending.items()):
                    if pending is fut:
                        del self._pending[rid]
            raise HostError(self.name, f"no reply to {op!r} within {limit:g} s") from None

    # -- events and jobs --
    def add_listener(self, listener: EventListener) -> None:
        """Call listener(event_dict) for every event (from the reader thread: keep it short)."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def add_state_listener(self, listener: Callable[[], None]) -> None:
        """Call listener() whenever the connection state changes."""
        with self._lock:
            self._state_listeners.append(listener)

    def track(self, job: str, sink: JobSink) -> None:
        """Route the job's live rows to sink and backfill it after every reconnect."""
        with self._lock:
            self._sinks[job] = sink

    def untrack(self, job: str) -> None:
        with self._lock:
            self._sinks.pop(job, None)

    def backfill(self, job: str, sink: JobSink | None = None) -> dict[str, int]:
        """Fetch each stream of job after the sink's last stored seq until done; new rows per stream."""
        sink = sink or self._sinks.get(job)
        stored = {stream: 0 for stream in P.STREAMS}
        if sink is None:
            return stored
        for stream in P.STREAMS:
            after = sink.last_seq(stream)
            while not self._stop.is_set():
                args = {"job": job, "stream": stream, "after_seq": after, "limit": FETCH_LIMIT}
                res = self.call("fetch", args)
                rows = res.get("rows") or []
                if rows:
                    stored[stream] += sink.add_rows(stream, rows)
                    after = max(int(r[0]) for r in rows)
                if res.get("done", True) or not rows:
                    break
        return stored

    # -- state --
    def state(self) -> LinkState:
        """The current state, computed from timestamps (cheap, lock-light)."""
        now = self._clock()
        with self._lock:
            kind, attempt, next_try = self._kind, self._attempt, self._next_try
            away_since, last_data = self._away_since, self._last_data
            message = self._fatal or self._message
        last_data_wall = None if last_data is None else self._wall() - (now - last_data)
        if kind in ("error", "closed"):
            return LinkState(kind, attempt, message=message, last_sample_wall=self._last_sample_wall)
        t = self.timeouts
        if kind == "connected" and last_data is not None and now - last_data >= t.stall_after_s:
            stalled = now - last_data
            if stalled >= t.lost_after_s:
                return LinkState("lost", attempt, away_for_s=stalled, stalled_for_s=stalled,
                                 last_data_wall=last_data_wall, last_sample_wall=self._last_sample_wall)
            return LinkState("stalled", attempt, stalled_for_s=stalled, last_data_wall=last_data_wall,
                             last_sample_wall=self._last_sample_wall)
        retry_in = None if next_try is None else max(0.0, next_try - now)
        away = kind in ("connecting", "reconnecting") and away_since is not None
        if away and now - away_since >= t.lost_after_s:
            return LinkState("lost", attempt, away_for_s=now - away_since, reconnect_in_s=retry_in,
                             last_data_wall=last_data_wall, last_sample_wall=self._last_sample_wall,
                             message=message)
        return LinkState(kind, attempt, reconnect_in_s=retry_in, last_data_wall=last_data_wall,
                         last_sample_wall=self._last_sample_wall, message=message)

    # -- internals --
    def _set(self, **fields: Any) -> None:
        with self._lock:
            for key, value in fields.items():
                setattr(self, "_" + key, value)
            listeners = list(self._state_listeners)
        for listener in listeners:
            listener()

    def _supervise(self) -> None:
        while not self._stop.is_set():
            ok = self._run_once()
            if self._stop.is_set() or self._fatal:
                break
            self._connected.clear()
            self._fail_pending("connection lost")
            attempt = self._attempt + 1
            t = self.timeouts
            delay = backoff_delay(attempt, t.backoff_initial_s, t.backoff_max_s, self._rnd)
            if ok:  # we had a working link: note when it went away
                self._set(away_since=self._clock())
            self._set(kind="reconnecting", attempt=attempt, next_try=self._clock() + delay)
            if self._stop.wait(delay):
                break
        self._connected.clear()

    def _run_once(self) -> bool:
        """One connection: open, hello, read until the stream ends. True when a hello was received."""
        try:
            transport = self._factory()
            with self._lock:
                previous, self._transport = self._transport, transport
            if previous is not None and previous is not transport:
                # a factory that builds a new transport per attempt (runner.transport_factory) would
                # otherwise leave every dropped SSH connection, and its sshd session, open for good
                _close_transport_quietly(previous)
            channel = _open_with_timeout(transport, self.timeouts.connect_timeout_s)
        except HostError as exc:
            self._set(message=exc.what)
            # A refused host key (exit code 3) never heals by retrying.
            if getattr(exc, "fatal", False) or exc.exit_code == 3:
                self._set(kind="error", fatal=exc.what)
            return False
        except Exception as exc:  # any transport failure means "retry later"
            self._set(message=f"{type(exc).__name__}: {exc}")
            return False
        with self._lock:
            self._channel = channel
        reader = P.LineReader()
        hello_timer = threading.Timer(self.timeouts.connect_timeout_s, self._hello_timeout, args=(channel,))
        hello_timer.daemon = True
        hello_timer.start()
        heartbeat = threading.Thread(target=self._heartbeat, args=(channel,), name=f"heartbeat {self.name}",
                                     daemon=True)
        got_hello = False
        try:
            for chunk in channel:
                self._last_data = self._clock()
                for msg in reader.feed(chunk):
                    if isinstance(msg, P.ProtocolError):
                        self._protocol_error(str(msg))
                        continue
                    if msg["type"] == "hello" and not got_hello:
                        hello_timer.cancel()
                        if not self._check_hello(msg):
                            _close_quietly(channel)
                            return False
                        got_hello = True
                        heartbeat.start()
                        self._on_connected(msg)
                    else:
                        self._dispatch(msg)
        except Exception as exc:  # a broken transport is a disconnect, not a crash
            self._set(message=f"{type(exc).__name__}: {exc}")
        finally:
            timed_out = hello_timer.finished.is_set()  # the timer already said "no hello within ..."
            hello_timer.cancel()
            if not got_hello and not self._fatal and not timed_out:
                tail = _stderr_of(channel)
                self._set(message="the agent bridge ended before its hello" + (f": {tail}" if tail else ""))
            _close_quietly(channel)
            with self._lock:
                self._channel = None
        return got_hello

    def _hello_timeout(self, channel: Channel) -> None:
        self._set(message=f"no hello within {self.timeouts.connect_timeout_s:g} s")
        _close_quietly(channel)

    def _check_hello(self, msg: dict) -> bool:
        if msg.get("v") != P.PROTOCOL_VERSION:
            self._set(kind="error", fatal=f"agent speaks protocol v{msg.get('v')}, this console "
                      f"v{P.PROTOCOL_VERSION}; redeploy the agent")
            self._connected.set()  # wake connect() so it reports the error
            return False
        if msg.get("agent_version") != AGENT_VERSION:
            self._set(message=f"agent {msg.get('agent_version')} differs from console {AGENT_VERSION}")
        return True

    def _on_connected(self, hello: dict) -> None:
        first = self.hello is None
        self.hello = hello
        self._connected.set()  # before the state listeners run: they may send requests at once
        self._set(kind="connected", attempt=0, next_try=None, away_since=None, fatal=None, message=None)
        if not first:
            self.reconnects += 1
        # Requests need the reader running, so resubscribe + backfill happen on their own thread.
        threading.Thread(target=self._after_connect, args=(not first,), name=f"backfill {self.name}",
                         daemon=True).start()

    def _after_connect(self, reconnected: bool) -> None:
        try:
            self.call("subscribe", {"jobs": None})
            if not reconnected:
                return
            with self._lock:
                sinks = dict(self._sinks)
            for job, sink in sinks.items():
                stored = self.backfill(job, sink)
                sink.event("reconnect", host=self.name, attempt=self.reconnects,
                           samples_backfilled=stored["samples"], queries_backfilled=stored["queries"])
        except Exception as exc:  # the next reconnect retries the backfill
            self._set(message=f"resubscribe/backfill failed: {exc}")

    def _heartbeat(self, channel: Channel) -> None:
        """Ping a quiet link so silence means a stall, and drop a long-stalled channel to reconnect."""
        t = self.timeouts
        period = max(0.05, t.stall_after_s / 3)
        while not self._stop.wait(period) and not channel.closed:
            quiet = self._clock() - (self._last_data or self._clock())
            if quiet >= t.reconnect_on_stall_s:
                self._set(message=f"no data for {quiet:.0f} s: reconnecting")
                _close_quietly(channel)
                return
            if quiet >= period:
                self.request("ping")  # the reply (or its absence) is what we watch

    def _dispatch(self, msg: dict) -> None:
        kind = msg["type"]
        if kind in ("reply", "error"):
            with self._lock:
                entry = self._pending.pop(msg.get("id"), None) if msg.get("id") is not None else None
            if entry is None:
                if kind == "error":
                    self._protocol_error(f"{msg.get('code')}: {msg.get('message')}")
                return
            fut, _op = entry
            if kind == "reply":
                fut.set_result(msg.get("result") or {})
            else:
                fut.set_exception(AgentError(self.name, str(msg.get("code")), str(msg.get("message"))))
            return
        if kind != "event":
            return
        if msg.get("event") == "lagged":
            self._on_lagged(msg)
        self._route_event(msg)
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(msg)
            except Exception as exc:  # a faulty listener must not kill the link
                self._set(message=f"event listener failed: {exc}")

    def _on_lagged(self, msg: dict) -> None:
        """The agent dropped live events for us (our queue overflowed): backfill the jobs concerned."""
        named = [j for j in (msg.get("jobs") or []) if isinstance(j, str)]
        with self._lock:
            sinks = {j: s for j, s in self._sinks.items() if not named or j in named}

        def run() -> None:
            for job, sink in sinks.items():
                try:
                    stored = self.backfill(job, sink)
                    sink.event("lagged", host=self.name, dropped=msg.get("dropped"),
                               samples_backfilled=stored["samples"])
                except Exception as exc:  # the reconnect/final backfill will retry
                    self._set(message=f"backfill after lag failed: {exc}")

        if sinks:
            threading.Thread(target=run, name=f"lag backfill {self.name}", daemon=True).start()

    def _route_event(self, msg: dict) -> None:
        name, job = msg.get("event"), msg.get("job")
        sink = self._sinks.get(job) if job else None
        if name == "samples":
            self._last_sample_wall = self._wall()
        if sink is None:
            return
        stream = {"samples": "samples", "queries": "queries", "log": "events"}.get(name or "")
        if stream is not None:
            rows = msg.get("rows") or []
            try:
                if stream == "samples":
                    for row in rows:
                        P.parse_sample_row(row)
                sink.add_rows(stream, rows)
            except P.ProtocolError as exc:
                self._protocol_error(f"bad {stream} row from job {job}: {exc}")
            except WattlabError as exc:  # a sink that cannot store (disk full, closed run) keeps the link
                self._set(message=f"job {job}: rows not stored: {exc}")

    def _protocol_error(self, text: str) -> None:
        with self._lock:
            self.protocol_errors += 1
            self.last_protocol_error = text
        self._set(message=f"protocol error: {text}")

    def _fail_pending(self, why: str) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for fut, op in pending.values():
            if not fut.done():
                fut.set_exception(HostError(self.name, f"{why} before the reply to {op!r}"))


def _close_quietly(channel: Channel) -> None:
    """Close a channel whose connection may already be dead (paramiko raises EOFError then): a failing
    close must never kill the reader, the heartbeat or a caller's cleanup."""
    try:
        channel.close()
    except Exception:
        pass


def _close_transport_quietly(transport: Transport) -> None:
    try:
        transport.close()
    except Exception:  # closing must not raise over a dead host
        pass


def _open_with_timeout(transport: Transport, timeout_s: float) -> Channel:
    """transport.open_bridge() bounded by timeout_s (a hung SSH connect must not hang the link)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["channel"] = transport.open_bridge()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="open_bridge", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        where = getattr(transport, "name", "host")
        raise HostError(where, f"opening the agent bridge took over {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["channel"]


def _stderr_of(channel: Channel) -> str:
    """What the bridge wrote on stderr, where the channel keeps it (local and SSH channels do)."""
    for name in ("stderr_text", "stderr_tail"):
        value = getattr(channel, name, None)
        if callable(value):
            try:
                value = value()
            except Exception:  # diagnostics only
                return ""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and value.strip():
            return value.strip()[-300:]
    return ""
