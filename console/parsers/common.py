"""What every parser shares: the ParseError type and small number helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


class ParseError(ValueError):
    """Text that is not the format we were asked to read: names the format and the 1-based line."""

    def __init__(self, fmt: str, line: int | None, message: str) -> None:
        self.fmt = fmt
        self.line = line
        self.message = message
        where = f"{fmt}, line {line}" if line is not None else fmt
        super().__init__(f"{where}: {message}")


def to_number(text: str) -> int | float:
    """'5704810' -> int, '553.693' / '6.9e-09' -> float; raises ValueError otherwise."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return float(text)


def number_or_text(text: str) -> int | float | str:
    """A settings value: a number where it reads as one, the stripped text otherwise."""
    try:
        return to_number(text)
    except ValueError:
        return text.strip()


def pct_key(percent: float) -> str:
    """90.0 -> 'p90', 99.9 -> 'p99.9', 50 -> 'p50' (the key used in every latency dict)."""
    return f"p{float(percent):g}"


@dataclass(frozen=True)
class PowerTrace:
    """A power log read back from a file: per-sample seconds since the first sample, the device
    total in watts (None where unreadable), per-rail watts, and the wall time of the first sample
    when the log has one (naive: in the clock of the machine that wrote it)."""

    source: str
    t_s: list[float]
    total_w: list[float | None]
    rails: list[dict[str, float | None]] = field(default_factory=list)
    t0: datetime | None = None
    total_rule: str = ""
