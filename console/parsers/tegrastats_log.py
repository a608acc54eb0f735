"""A saved `tegrastats [--interval MS] [--logfile F]` log as a PowerTrace.

Lines are parsed by the agent's own line parser (agents.samplers.tegrastats, every JetPack format).
JetPack 5+ lines start with `MM-DD-YYYY HH:MM:SS` and give the sample times; JetPack 4 lines carry
no time, so samples are spaced by `interval_ms` (tegrastats' default is 1000 ms).
"""

from __future__ import annotations

import re
from datetime import datetime

from console.parsers.common import ParseError, PowerTrace

FORMAT = "tegrastats log"
_DATE = re.compile(r"^(?P<d>\d\d-\d\d-\d{4} \d\d:\d\d:\d\d)\s")


def parse_tegrastats_log(text: str, interval_ms: float = 1000.0) -> PowerTrace:
    """Module-total watts per line (input rail, else the sum of rails) and per-rail watts."""
    # The one console -> agents import besides the protocol: the line grammar lives with the sampler.
    from agents.samplers.tegrastats import board_total, parse_line

    t_s: list[float] = []
    totals: list[float | None] = []
    rails: list[dict[str, float | None]] = []
    t0: datetime | None = None
    rule = ""
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if not line.lstrip().startswith("RAM ") and not _DATE.match(line):
            raise ParseError(FORMAT, lineno, "not a tegrastats line ('RAM ...', or a date then 'RAM ...')")
        found = parse_line(line)  # {} on a line without rails: a missing sample, not an error
        date = _DATE.match(line)
        if date:
            wall = datetime.strptime(date.group("d"), "%m-%d-%Y %H:%M:%S")
            t0 = t0 or wall
            t_s.append((wall - t0).total_seconds())
        else:
            t_s.append(len(t_s) * interval_ms / 1000.0)
        total, line_rule = board_total(dict(found))
        rule = rule or (line_rule if found else "")
        totals.append(total)
        rails.append(dict(found))
    if not any(w is not None for w in totals):
        raise ParseError(FORMAT, 1, "no power rails on any line (tegrastats run without root?)")
    return PowerTrace(source="tegrastats", t_s=t_s, total_w=totals, rails=rails, t0=t0, total_rule=rule)
