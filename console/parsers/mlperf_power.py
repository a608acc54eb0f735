"""MLPerf Power logs: PTDaemon `spl.txt` samples, the power-dev `server.log` and `client.json`
phase records, and the checker's rule for average power inside LoadGen's power window.

spl.txt, one sample per line (1 Hz):
`Time,08-04-2021 10:39:49.145,Watts,16.843000,Volts,120.450000,Amps,0.330530,PF,0.423100,Mark,<mark>`
Times use the same `%m-%d-%Y %H:%M:%S.%f` clock as LoadGen's power_begin/power_end; both are read
as UTC, as the submission checker compares them directly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from console.parsers.common import ParseError
from console.parsers.mlperf import power_time

SPL = "PTDaemon spl.txt"
SERVER_LOG = "MLPerf power server.log"
CLIENT_JSON = "MLPerf power client.json"


@dataclass(frozen=True)
class SplSample:
    """One PTDaemon sample; units in the names (watts, volts, amps); pf is the power factor."""

    time: datetime
    watts: float
    volts: float | None = None
    amps: float | None = None
    pf: float | None = None
    mark: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


_SPL_FLOATS = {"Watts": "watts", "Volts": "volts", "Amps": "amps", "PF": "pf"}


def parse_spl(text: str) -> list[SplSample]:
    """Every sample of a PTDaemon `spl.txt` (name,value pairs per line) in file order."""
    samples: list[SplSample] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) % 2 or parts[0] != "Time":
            raise ParseError(SPL, lineno, "expected 'Time,<time>,Watts,<W>,...' name,value pairs")
        pairs = dict(zip(parts[0::2], parts[1::2], strict=True))
        try:
            when = power_time(pairs.pop("Time"))
        except ValueError:
            raise ParseError(SPL, lineno, f"time {parts[1]!r} is not MM-DD-YYYY HH:MM:SS.mmm") from None
        if "Watts" not in pairs:
            raise ParseError(SPL, lineno, "no Watts field")
        values: dict[str, float | None] = {}
        for name, attr in _SPL_FLOATS.items():
            raw = pairs.pop(name, None)
            try:
                values[attr] = float(raw) if raw not in (None, "") else None
            except ValueError:
                raise ParseError(SPL, lineno, f"{name} {raw!r} is not a number") from None
        watts = values.pop("watts")
        assert watts is not None  # checked above; keeps the type narrow
        mark = pairs.pop("Mark", None)
        samples.append(SplSample(time=when, watts=watts, mark=mark, extra=pairs, **values))
    if not samples:
        raise ParseError(SPL, 1, "no samples")
    return samples


@dataclass(frozen=True)
class PowerAverage:
    """Average of the samples inside a window, as the MLPerf submission checker computes it."""

    avg_watts: float
    samples: int
    duration_s: float

    @property
    def energy_j(self) -> float:
        """avg_watts x window length: the energy the checker's metric implies."""
        return self.avg_watts * self.duration_s

    def energy_mj_per_query(self, query_count: int) -> float:
        """The SingleStream/MultiStream power metric: millijoules per query."""
        return self.energy_j * 1000.0 / query_count


def average_power(samples: list[SplSample], begin: datetime, end: datetime) -> PowerAverage:
    """Mean Watts of samples strictly between LoadGen's power_begin and power_end, dropping
    non-positive readings (tools/submission/.../power_check.py); ValueError if none fall inside."""
    inside = [s.watts for s in samples if begin < s.time < end and s.watts > 0]
    if not inside:
        raise ValueError(f"no power samples between {begin:%Y-%m-%d %H:%M:%S} and {end:%Y-%m-%d %H:%M:%S}")
    return PowerAverage(sum(inside) / len(inside), len(inside), (end - begin).total_seconds())


@dataclass(frozen=True)
class Phase:
    """One measurement phase ('ranging' or 'testing'); times are naive, in the log's own clock."""

    name: str
    start: datetime | None = None
    end: datetime | None = None
    mark: str | None = None
    ranges: dict[str, str] = field(default_factory=dict)


_SERVER_LINE = re.compile(
    r"^ptd-server (?P<t>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \[(?P<level>\w+)\] (?P<msg>.*)$")


def parse_server_log(text: str) -> dict[str, object]:
    """Phases (PTDaemon 'Go' to 'Stop'), ranges set per phase and the analyzer identity of a
    power-dev `server.log`."""
    phases: dict[str, Phase] = {}
    analyzer: str | None = None
    pending_ranges: dict[str, str] = {}
    current: str | None = None
    sent = ""  # the last command sent to PTDaemon: its reply follows on a later line
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _SERVER_LINE.match(line)
        if not m:
            raise ParseError(SERVER_LOG, lineno, "expected 'ptd-server YYYY-MM-DD HH:MM:SS,mmm [LEVEL] ...'")
        when = datetime.strptime(m.group("t"), "%Y-%m-%d %H:%M:%S,%f")
        msg = m.group("msg")
        if msg.startswith("Sending to ptd: '"):
            sent = msg.split("'", 2)[1]
        if msg.startswith("Reply from ptd: '") and sent == "Identify":
            analyzer = msg.split("'", 2)[1]
        elif (sr := re.match(r"Sending to ptd: 'SR,([VA]),([^']+)'", msg)):
            pending_ranges[sr.group(1)] = sr.group(2)
        elif (go := re.match(r"Sending to ptd: 'Go,\d+,\d+,([^']+)'", msg)):
            mark = go.group(1)
            current = mark.rsplit("_", 1)[-1]
            phases[current] = Phase(current, start=when, mark=mark, ranges=dict(pending_ranges))
        elif msg.startswith("Sending to ptd: 'Stop'") and current in phases:
            old = phases[current]
            phases[current] = Phase(old.name, old.start, when, old.mark, old.ranges)
            current = None
    return {"phases": phases, "analyzer": analyzer}


@dataclass(frozen=True)
class ClientPhase:
    """A client.json phase as UTC datetimes: session start/stop and the workload inside them."""

    name: str
    start: datetime
    workload_start: datetime
    workload_end: datetime
    end: datetime


def parse_client_json(text: str) -> dict[str, object]:
    """Session name, protocol and phases of a power-dev `client.json`.

    Each phase is four [wall epoch, monotonic] pairs: start sent, start acknowledged (load runs
    from here), stop sent (load ended), stop acknowledged.
    """
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(CLIENT_JSON, exc.lineno, exc.msg) from None
    if not isinstance(doc, dict) or "phases" not in doc:
        raise ParseError(CLIENT_JSON, 1, "no 'phases' object: not a power-dev client.json")
    phases: dict[str, ClientPhase] = {}
    for name, points in doc["phases"].items():
        try:
            walls = [datetime.fromtimestamp(float(p[0]), tz=timezone.utc) for p in points]
            phases[name] = ClientPhase(name, *walls)
        except (TypeError, ValueError, IndexError):
            message = f"phase {name!r} is not four [wall, monotonic] pairs"
            raise ParseError(CLIENT_JSON, None, message) from None
    messages = doc.get("messages") or [{}]
    return {"session_name": doc.get("session_name"), "protocol": messages[0].get("cmd"), "phases": phases}
