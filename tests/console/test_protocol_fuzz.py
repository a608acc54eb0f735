"""Fuzz a running agent daemon: random bytes, huge lines, wrong types and unknown ops never crash it,
never make a handler fail with "internal", and it still answers ping after every example."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agents import protocol
from agents.daemon import Daemon, connect
from agents.samplers.base import SamplerUnavailable
from agents.server import Agent

FUZZ_OPS = [op for op in protocol.OPS if op != "shutdown"] + ["", "nope", "START", "op_start", "__init__"]
ARG_KEYS = [
    "job",
    "stream",
    "after_seq",
    "limit",
    "device",
    "interval_ms",
    "idle_s",
    "duration_s",
    "workload",
    "job_id",
    "meta",
    "label",
    "upto_seq",
    "jobs",
    "sampler",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["j0", "samples", "events", "sim:x", "argv", "loadgen"])
    | st.sampled_from([10**400, -(10**400), 2**63, -1, 0, 1e308, -0.0]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
args_strategy = st.dictionaries(st.sampled_from(ARG_KEYS) | st.text(max_size=10), json_values, max_size=6)
request_strategy = st.fixed_dictionaries(
    {"type": st.just("request"), "op": st.sampled_from(FUZZ_OPS)},
    optional={"id": json_values, "args": json_values | args_strategy},
)
message_strategy = st.dictionaries(
    st.sampled_from(["type", "id", "op", "args", "event", "result"]) | st.text(max_size=6),
    json_values,
    max_size=5,
)


def refuse_every_device(device, interval_ms, clock=None, **opts):
    raise SamplerUnavailable(f"fuzz agent measures nothing ({device!r})")


class Client:
    """A raw socket client with a line splitter."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(10)
        self.reader = protocol.LineReader()
        self.pending: list = []
        self.ping_id = 10**9

    def next(self):
        while not self.pending:
            data = self.sock.recv(1 << 16)
            assert data, "the daemon closed the connection"
            self.pending.extend(self.reader.feed(data))
        return self.pending.pop(0)

    def ping_after(self, payload: bytes, answer_id: object = "none expected") -> list:
        """Send payload, then a ping; returns every message before the ping's reply and, when
        `answer_id` is given (None included), until the answer with that id (slow ops answer late)."""
        self.ping_id += 1
        self.sock.sendall(payload + b"\n" + protocol.encode(protocol.request(self.ping_id, "ping")))
        seen: list = []
        pinged = False
        answered = answer_id == "none expected"
        while not (pinged and answered):
            msg = self.next()
            assert isinstance(msg, dict), f"the daemon sent a line that is not a message: {msg!r}"
            if msg.get("id") == self.ping_id and msg.get("type") in ("reply", "error"):
                assert msg["type"] == "reply" and "t_wall" in msg["result"], msg
                pinged = True
                continue
            if msg.get("type") in ("reply", "error") and msg.get("id") == answer_id:
                answered = True
            seen.append(msg)
        return seen


@pytest.fixture(scope="module")
def daemon(tmp_path_factory) -> Iterator[str]:
    home = str(tmp_path_factory.mktemp("fuzzhome"))
    d = Daemon(home, agent_factory=lambda h: Agent(h, open_sampler=refuse_every_device))
    # One finished job with rows, so fetch/ack/status reach real spool code.
    js = d.agent.spool.create("j0", {"state": "finished", "device": "sim:x"})
    for i in range(20):
        js.append("samples", [i * 0.1, 10.0, {"rail": 10.0}, None])
    js.append("events", [0.0, "state", {"state": "finished"}])
    js.maybe_flush(force=True)
    js.close()
    thread = threading.Thread(target=d.serve_forever, daemon=True)
    thread.start()
    assert d.ready.wait(10)
    yield home
    d.agent.shutdown_requested.set()
    thread.join(10)
    assert not thread.is_alive()


@pytest.fixture()
def client(daemon) -> Iterator[Client]:
    sock = connect(daemon)
    assert sock is not None
    c = Client(sock)
    assert c.next()["type"] == "hello"
    yield c
    sock.close()


def no_internal_errors(messages: list) -> None:
    internal = [m for m in messages if m.get("code") == protocol.E_INTERNAL]
    assert not internal, internal[0]["message"]


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(payload=st.binary(max_size=3000))
def test_random_bytes_never_crash_the_daemon(client, payload):
    no_internal_errors(client.ping_after(payload))


@FUZZ
@given(request=request_strategy)
@example(
    request={"type": "request", "id": 1, "op": "start", "args": {"device": "sim:x", "interval_ms": 10**400}}
)
@example(request={"type": "request", "id": 2, "op": "fetch", "args": {"job": "j0", "after_seq": 10**400}})
@example(request={"type": "request", "id": 3, "op": "fetch", "args": {"job": "j0", "after_seq": -(10**400)}})
def test_requests_with_wrong_types_get_replies_or_clear_errors(client, request):
    line = protocol.encode(request)[:-1]
    try:
        expected_id = protocol.decode(line).get("id")  # a valid request is answered under its id
    except protocol.ProtocolError:
        expected_id = None  # an invalid one gets an error with id null
    seen = client.ping_after(line, answer_id=expected_id)
    no_internal_errors(seen)
    answers = [m for m in seen if m.get("type") in ("reply", "error")]
    assert len(answers) == 1, seen
    if answers[0]["type"] == "error":
        assert answers[0]["code"] and answers[0]["message"]


@FUZZ
@given(message=message_strategy)
def test_arbitrary_objects_are_refused_without_crashing(client, message):
    no_internal_errors(client.ping_after(protocol.encode(message)[:-1] if _encodable(message) else b"{}"))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.integers(min_value=-10, max_value=70000), body=st.sampled_from([b"x", b'{"a":"', b"\xff"]))
def test_huge_lines_are_refused_and_the_connection_lives(client, extra, body):
    size = protocol.MAX_LINE_BYTES + extra
    seen = client.ping_after((body * size)[:size])
    if size > protocol.MAX_LINE_BYTES:
        assert any(m.get("code") == protocol.E_TOO_LONG for m in seen), seen
    no_internal_errors(seen)


def test_unknown_ops_name_the_known_ones(client):
    seen = client.ping_after(protocol.encode(protocol.request(1, "reboot"))[:-1])
    assert seen[0]["code"] == protocol.E_UNKNOWN_OP
    assert "ping" in seen[0]["message"]


def _encodable(message) -> bool:
    try:
        protocol.encode(message)
    except (protocol.ProtocolError, ValueError):
        return False
    return True
