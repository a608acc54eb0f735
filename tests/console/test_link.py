"""The protocol client: requests, events, protocol errors, reconnect with backfill, state."""

from __future__ import annotations

import re
import threading
import time

import pytest

from agents import protocol as P
from console.errors import AgentError, HostError
from console.link import Link, LinkTimeouts, backoff_delay
from console.store import SeqSet
from tests.console.fake_agent import FakeAgent

FAST = LinkTimeouts(connect_timeout_s=3, request_timeout_s=3, stall_after_s=2, lost_after_s=60,
                    reconnect_on_stall_s=600, backoff_initial_s=0.05, backoff_max_s=0.2)


class MemorySink:
    """Collects rows like the store does (idempotent by seq) and counts every row offered."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[int, list]] = {s: {} for s in P.STREAMS}
        self.seen = {s: SeqSet() for s in P.STREAMS}
        self.offered = 0
        self.events: list[dict] = []
        self.lock = threading.Lock()

    def last_seq(self, stream: str) -> int:
        return self.seen[stream].contiguous

    def add_rows(self, stream: str, rows: list) -> int:
        with self.lock:
            self.offered += len(rows)
            fresh = [r for r in rows if self.seen[stream].add(r[0])]
            for r in fresh:
                assert r[0] not in self.rows[stream], "duplicate stored"
                self.rows[stream][r[0]] = r
            return len(fresh)

    def event(self, kind: str, **fields) -> None:
        self.events.append({"kind": kind, **fields})


def _wait(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def agent():
    a = FakeAgent()
    yield a
    a.close()


def test_connect_checks_hello_and_requests_get_replies(agent):
    link = Link("fake", agent.transport, timeouts=FAST)
    try:
        hello = link.connect()
        assert hello["v"] == P.PROTOCOL_VERSION
        probe = link.call("probe")
        assert probe["devices"][0]["id"] == "sim:jetson-agx-orin-64gb"
        assert link.state().kind == "connected"
    finally:
        link.close()


def test_agent_error_reply_raises_agent_error_with_code(agent):
    link = Link("fake", agent.transport, timeouts=FAST)
    try:
        link.connect()
        with pytest.raises(AgentError, match="no_such_device"):
            link.call("start", {"device": "nvml:7"})
    finally:
        link.close()


def test_protocol_errors_are_counted_and_the_link_stays_up(agent):
    link = Link("fake", agent.transport, timeouts=FAST)
    try:
        link.connect()
        agent.send_raw(b"not json\n" + b"x" * (P.MAX_LINE_BYTES + 10) + b"\n[1,2]\n")
        assert link.call("ping")["t_wall"] > 0
        assert link.protocol_errors == 3
        assert link.state().kind == "connected"
    finally:
        link.close()


def test_a_different_protocol_version_is_refused_with_a_clear_error():
    agent = FakeAgent(protocol_v=99)
    link = Link("old", agent.transport, timeouts=FAST)
    try:
        with pytest.raises(HostError, match="protocol v99"):
            link.connect()
        assert link.state().kind == "error"
    finally:
        link.close()
        agent.close()


def test_reconnect_backfills_the_gap_with_contiguous_seqs_and_no_duplicates(agent):
    reachable = threading.Event()
    reachable.set()

    def factory():
        if not reachable.is_set():
            raise OSError("network unreachable")
        return agent.transport()

    link = Link("fake", factory, timeouts=FAST)
    sink = MemorySink()
    try:
        link.connect()
        _wait(lambda: agent.conns and agent.conns[0].subscribed)
        args = {"device": "sim:jetson-agx-orin-64gb", "interval_ms": 5, "duration_s": 1.2}
        job = link.call("start", args)["job"]
        link.track(job, sink)
        assert _wait(lambda: sink.seen["samples"].contiguous > 20)
        reachable.clear()
        agent.mute.set()  # rows from now on reach the spool only
        agent.drop()  # the connection dies
        time.sleep(0.3)
        agent.mute.clear()
        reachable.set()
        assert _wait(lambda: agent.jobs[job].state == "finished", 5)
        assert _wait(lambda: any(e["kind"] == "reconnect" for e in sink.events), 5)
        assert _wait(lambda: sink.last_seq("samples") == agent.jobs[job].spool["samples"][-1][0], 5)
        spooled = [r[0] for r in agent.jobs[job].spool["samples"]]
        assert sorted(sink.rows["samples"]) == spooled == list(range(len(spooled)))
        ev = next(e for e in sink.events if e["kind"] == "reconnect")
        assert ev["samples_backfilled"] > 0
        assert link.reconnects >= 1 and agent.connects >= 2
    finally:
        link.close()


def test_state_reports_reconnecting_with_attempt_then_lost():
    now = [1000.0]
    timeouts = LinkTimeouts(connect_timeout_s=1, backoff_initial_s=0.02, backoff_max_s=0.02, lost_after_s=30)

    def refuse():
        raise OSError("connection refused")

    link = Link("down", refuse, timeouts=timeouts, clock=lambda: now[0])
    try:
        link.start()
        assert _wait(lambda: link.state().attempt >= 2)
        st = link.state()
        assert st.kind == "reconnecting"
        assert re.fullmatch(r"reconnecting in \d+ s \(attempt \d+\)", st.describe())
        now[0] += 31
        assert link.state().kind == "lost"
        assert link.state().describe().startswith("lost: away for 3")
    finally:
        link.close()


def test_state_reports_stalled_after_silence_with_injected_clock(agent):
    now = [50.0]
    timeouts = LinkTimeouts(connect_timeout_s=3, stall_after_s=10, lost_after_s=100, reconnect_on_stall_s=1e9)
    link = Link("quiet", agent.transport, timeouts=timeouts, clock=lambda: now[0])
    try:
        link.connect()
        assert link.state().kind == "connected"
        now[0] += 15
        st = link.state()
        assert st.kind == "stalled" and st.describe().startswith("stalled: no data for 15 s")
        now[0] += 100
        assert link.state().kind == "lost"
    finally:
        link.close()


def test_backoff_grows_exponentially_is_capped_and_jittered():
    assert backoff_delay(1, 0.5, 30, rnd=lambda: 0.5) == 0.5
    assert backoff_delay(4, 0.5, 30, rnd=lambda: 0.5) == 4.0
    assert backoff_delay(20, 0.5, 30, rnd=lambda: 1.0) == 30.0
    lows = {backoff_delay(3, 1.0, 30, rnd=lambda: 0.0), backoff_delay(3, 1.0, 30, rnd=lambda: 1.0)}
    assert lows == {3.0, 5.0}


def test_a_request_while_disconnected_fails_fast():
    link = Link("never", lambda: (_ for _ in ()).throw(OSError("no route")), timeouts=FAST)
    try:
        with pytest.raises(HostError, match="not connected"):
            link.request("ping").result(timeout=1)
    finally:
        link.close()


def test_a_bridge_that_dies_before_hello_reports_its_stderr():
    import subprocess

    from console.transport.base import Transport
    from console.transport.local import ProcessChannel

    class Broken(Transport):
        name = "broken"

        def open_bridge(self):
            proc = subprocess.Popen(["sh", "-c", "echo 'python3: not found' >&2; exit 127"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            return ProcessChannel(proc, "broken bridge")

        def close(self):
            pass

    link = Link("broken", Broken, timeouts=FAST)
    try:
        with pytest.raises(HostError, match="python3: not found"):
            link.connect(timeout_s=1.0)
    finally:
        link.close()


def test_a_lagged_notice_triggers_a_backfill_of_the_dropped_rows(agent):
    link = Link("fake", agent.transport, timeouts=FAST)
    sink = MemorySink()
    try:
        link.connect()
        assert _wait(lambda: agent.conns and agent.conns[0].subscribed)
        agent.mute.set()  # the daemon drops live rows for this client...
        args = {"device": "sim:jetson-agx-orin-64gb", "interval_ms": 5, "duration_s": 0.3}
        job = link.call("start", args)["job"]
        link.track(job, sink)
        assert _wait(lambda: agent.jobs[job].state == "finished")
        assert sink.seen["samples"].contiguous == -1
        agent.broadcast(P.event("lagged", jobs=[job], dropped=60))  # ...and says so
        assert _wait(lambda: sink.last_seq("samples") == agent.jobs[job].spool["samples"][-1][0])
        assert any(e["kind"] == "lagged" and e["dropped"] == 60 for e in sink.events)
    finally:
        link.close()


def test_a_silent_connection_is_reported_stalled_then_replaced_and_backfilled(agent):
    timeouts = LinkTimeouts(connect_timeout_s=3, request_timeout_s=3, stall_after_s=0.3, lost_after_s=60,
                            reconnect_on_stall_s=1.0, backoff_initial_s=0.05, backoff_max_s=0.1)
    link = Link("fake", agent.transport, timeouts=timeouts)
    sink = MemorySink()
    try:
        link.connect()
        assert _wait(lambda: agent.conns and agent.conns[0].subscribed)
        args = {"device": "sim:jetson-agx-orin-64gb", "interval_ms": 5, "duration_s": 2.0}
        job = link.call("start", args)["job"]
        link.track(job, sink)
        assert _wait(lambda: sink.seen["samples"].contiguous > 10)
        agent.freeze()
        assert _wait(lambda: link.state().kind == "stalled", 2)
        pattern = r"stalled: no data for \d+ s \(last sample \d\d:\d\d:\d\d UTC\)"
        assert re.match(pattern, link.state().describe())
        assert _wait(lambda: any(e["kind"] == "reconnect" for e in sink.events), 5)
        assert _wait(lambda: agent.jobs[job].state == "finished", 5)
        assert _wait(lambda: sink.last_seq("samples") == agent.jobs[job].spool["samples"][-1][0], 5)
        assert sorted(sink.rows["samples"]) == list(range(len(agent.jobs[job].spool["samples"])))
    finally:
        link.close()
