"""The one definition of the wattlab wire protocol (agent <-> console).

Versioned JSON lines over a byte stream (the bridge's stdio, an SSH channel, a unix socket).
Every line is one JSON object. A line longer than MAX_LINE_BYTES, or one that is not a JSON
object with the right keys, raises ProtocolError; the stream stays usable (the reader skips to
the next newline). Nothing received is ever evaluated: only json.loads.

Message kinds (key "type"):
  hello   agent -> console, first line:  {type, v, agent_version, python, host, pid, capabilities}
  request console -> agent:              {type:"request", id:int, op:str, args:{}}
  reply   agent -> console:              {type:"reply", id, result:{}}
  error   agent -> console:              {type:"error", id (or null), code:str, message:str}
  event   agent -> console (unsolicited): {type:"event", event:str, job:str, ...}

Sample rows travel as compact lists, see sample_row(); query rows as query_row().
Python 3.6 compatible: no dataclasses, no PEP 604/585 syntax.
"""

import json
from typing import Any, Dict, List, Optional, Tuple, Union

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 1 << 20  # 1 MiB: a batch of 100 Hz x 10 rails for several seconds fits easily

# Requests the agent understands. Anything else gets an error reply ("unknown_op").
OPS = (
    "hello",  # re-send the hello (capabilities may change, e.g. after jtop starts)
    "probe",  # samplers that work here and devices found
    "start",  # start a job: {device, sampler?, interval_ms, idle_s, duration_s?, workload?, job_id?, meta?}
    "stop",  # stop a job: {job}
    "mark",  # record an operator event in the job: {job, label}
    "jobs",  # list jobs with state and last seq per stream
    "fetch",  # replay a job's spool: {job, stream: samples|queries|events, after_seq, limit}
    "ack",  # console has stored everything up to seq: {job, stream, upto_seq}; lets the spool prune
    "subscribe",  # live events for jobs: {jobs: [..] or null for all}
    "status",  # one job's state and running totals: {job}
    "forget",  # delete a finished, fully acked job's spool: {job}
    "ping",
    "shutdown",  # stop the daemon (tests, `wattlab agent stop`)
    "output",  # an argv workload's stdout/stderr bytes: {job, which: stdout|stderr, offset, limit}
    "monitor",  # idle devices' power to this client only: {devices: [..] or null, interval_ms >= 200}
)

STREAMS = ("samples", "queries", "events")

# Error codes (stable strings, the console maps them to messages).
E_BAD_JSON = "bad_json"
E_TOO_LONG = "too_long"
E_BAD_MESSAGE = "bad_message"
E_UNKNOWN_OP = "unknown_op"
E_BAD_ARGS = "bad_args"
E_NO_SUCH_JOB = "no_such_job"
E_NO_SUCH_DEVICE = "no_such_device"
E_SAMPLER = "sampler_error"
E_INTERNAL = "internal"


class ProtocolError(ValueError):
    """A line that is not a valid protocol message. `code` is one of the E_* strings."""

    def __init__(self, code: str, message: str) -> None:
        ValueError.__init__(self, "{}: {}".format(code, message))
        self.code = code
        self.message = message


def encode(msg: Dict[str, Any]) -> bytes:
    """Serialise one message to a newline-terminated UTF-8 line; raises ProtocolError if too long."""
    data = json.dumps(msg, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    if len(data) + 1 > MAX_LINE_BYTES:
        raise ProtocolError(E_TOO_LONG, "message of {} bytes exceeds {}".format(len(data), MAX_LINE_BYTES))
    return data + b"\n"


def decode(line: Union[bytes, str]) -> Dict[str, Any]:
    """Parse one line into a message dict; raises ProtocolError for anything malformed."""
    if isinstance(line, bytes):
        if len(line) > MAX_LINE_BYTES:
            raise ProtocolError(E_TOO_LONG, "line of {} bytes exceeds {}".format(len(line), MAX_LINE_BYTES))
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(E_BAD_JSON, "not UTF-8: {}".format(exc)) from None
    else:
        text = line
        if len(text) > MAX_LINE_BYTES:
            raise ProtocolError(E_TOO_LONG, "line of {} chars exceeds {}".format(len(text), MAX_LINE_BYTES))
    try:
        msg = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(E_BAD_JSON, "not JSON: {}".format(exc)) from None
    if not isinstance(msg, dict):
        raise ProtocolError(E_BAD_MESSAGE, "expected a JSON object, got {}".format(type(msg).__name__))
    kind = msg.get("type")
    if kind not in ("hello", "request", "reply", "error", "event"):
        raise ProtocolError(E_BAD_MESSAGE, "unknown message type {!r}".format(kind))
    if kind == "request":
        if not isinstance(msg.get("op"), str):
            raise ProtocolError(E_BAD_MESSAGE, "request without a string 'op'")
        rid = msg.get("id")
        if rid is not None and (not isinstance(rid, int) or isinstance(rid, bool)):
            raise ProtocolError(E_BAD_MESSAGE, "request 'id' must be an integer")
        args = msg.get("args", {})
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ProtocolError(E_BAD_MESSAGE, "request 'args' must be an object")
        msg["args"] = args
    return msg


class LineReader(object):
    """Incremental splitter of a byte stream into decoded messages.

    feed() returns a list whose items are either message dicts or ProtocolError instances
    (returned, not raised, so one bad line never loses the good ones around it). An oversized
    line is dropped up to its newline and reported once.
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_line
        self._discarding = False

    def feed(self, data: bytes) -> List[Union[Dict[str, Any], ProtocolError]]:
        out: List[Union[Dict[str, Any], ProtocolError]] = []
        self._buf.extend(data)
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > self._max:
                    if not self._discarding:
                        out.append(ProtocolError(E_TOO_LONG, "line exceeds {} bytes".format(self._max)))
                    self._discarding = True
                    del self._buf[:]
                return out
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if self._discarding:
                self._discarding = False
                continue
            line = line.strip()
            if not line:
                continue
            try:
                out.append(decode(line))
            except ProtocolError as exc:
                out.append(exc)


# --- constructors -------------------------------------------------------------------------


def request(rid: int, op: str, args: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    return {"type": "request", "id": rid, "op": op, "args": args or {}}


def reply(rid: Optional[int], result: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    return {"type": "reply", "id": rid, "result": result if result is not None else {}}


def error(rid: Optional[int], code: str, message: str) -> Dict[str, Any]:
    return {"type": "error", "id": rid, "code": code, "message": message}


def event(name: str, job: Optional[str] = None, **fields: Any) -> Dict[str, Any]:
    msg: Dict[str, Any] = {"type": "event", "event": name}
    if job is not None:
        msg["job"] = job
    msg.update(fields)
    return msg


def hello(
    agent_version: str, python: str, host: str, pid: int, capabilities: Dict[str, Any]
) -> Dict[str, Any]:
    return {
        "type": "hello",
        "v": PROTOCOL_VERSION,
        "agent_version": agent_version,
        "python": python,
        "host": host,
        "pid": pid,
        "capabilities": capabilities,
    }


# --- rows ---------------------------------------------------------------------------------
# A sample row: [seq, t_s, total_w, {rail: watts or None}, energy_j or None]
#   seq      per-job, per-stream sequence number, contiguous from 0
#   t_s      seconds since the job's t0 on the device's monotonic clock
#   total_w  the device total as the sampler defines it (describe()["total_rule"]), or None
#   energy_j the hardware energy counter relative to job start (NVML, RAPL), or None
# A query row: [seq, query_id, issue_t_s, done_t_s, ok, extra{}]  (times on the same clock)
# An event row: [seq, t_s, kind, {fields}]


def sample_row(
    seq: int,
    t_s: float,
    total_w: Optional[float],
    rails: Dict[str, Optional[float]],
    energy_j: Optional[float] = None,
) -> list:
    return [seq, t_s, total_w, rails, energy_j]


def parse_sample_row(
    row: Any,
) -> Tuple[int, float, Optional[float], Dict[str, Optional[float]], Optional[float]]:
    """Validate a sample row from the wire; raises ProtocolError on a wrong shape or type."""
    if not isinstance(row, list) or len(row) != 5:
        raise ProtocolError(E_BAD_MESSAGE, "sample row must be a list of 5")
    seq, t_s, total_w, rails, energy_j = row
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ProtocolError(E_BAD_MESSAGE, "sample seq must be a non-negative int")
    if not _is_num(t_s):
        raise ProtocolError(E_BAD_MESSAGE, "sample t_s must be a number")
    if total_w is not None and not _is_num(total_w):
        raise ProtocolError(E_BAD_MESSAGE, "sample total_w must be a number or null")
    if not isinstance(rails, dict) or not all(
        isinstance(k, str) and (v is None or _is_num(v)) for k, v in rails.items()
    ):
        raise ProtocolError(E_BAD_MESSAGE, "sample rails must map names to numbers or null")
    if energy_j is not None and not _is_num(energy_j):
        raise ProtocolError(E_BAD_MESSAGE, "sample energy_j must be a number or null")
    return seq, float(t_s), total_w, rails, energy_j


def query_row(
    seq: int,
    query_id: int,
    issue_t_s: float,
    done_t_s: Optional[float],
    ok: bool,
    extra: Optional[Dict[str, Any]] = None,
) -> list:
    return [seq, query_id, issue_t_s, done_t_s, ok, extra or {}]


def event_row(seq: int, t_s: float, kind: str, fields: Optional[Dict[str, Any]] = None) -> list:
    return [seq, t_s, kind, fields or {}]


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)
