"""nvidia-smi power logs in CSV.

Two layouts:
- `nvidia-smi --query-gpu=timestamp[,index],power.draw --format=csv [-lms N]`: a header with units
  (`timestamp, index, power.draw [W]`), rows like `2024/01/15 10:00:00.123, 0, 45.67 W`;
  `[N/A]`/`[Not Supported]` values are unreadable (None). With several GPUs a sample spans one row
  per GPU; the total is their sum.
- the study's fork (nv_measure.py): `timestamp,gpu_power`, seconds since start and watts.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime

from console.parsers.common import ParseError, PowerTrace

FORMAT = "nvidia-smi CSV"
_POWER_COLUMNS = ("power.draw", "power.draw.instant", "power.draw.average", "gpu_power")
_GPU_COLUMNS = ("index", "pci.bus_id", "uuid")
_MISSING = ("[n/a]", "n/a", "[not supported]", "[unknown error]", "")
_TIME_FORMATS = ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S")


def _column_name(header: str) -> str:
    """'power.draw [W]' -> 'power.draw' (units dropped; nounits output has none)."""
    return re.sub(r"\s*\[[^\]]*\]\s*$", "", header.strip()).lower()


def _watts(value: str, lineno: int) -> float | None:
    text = value.strip()
    if text.lower() in _MISSING:
        return None
    try:
        return float(re.sub(r"\s*W$", "", text))
    except ValueError:
        raise ParseError(FORMAT, lineno, f"power {text!r} is not watts") from None


def _time(value: str, lineno: int) -> tuple[float | None, datetime | None]:
    """(seconds, None) for elapsed-seconds logs, (None, datetime) for nvidia-smi wall times."""
    text = value.strip()
    try:
        return float(text), None
    except ValueError:
        pass
    for fmt in _TIME_FORMATS:
        try:
            return None, datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ParseError(FORMAT, lineno, f"timestamp {text!r} is neither seconds nor YYYY/MM/DD HH:MM:SS.fff")


def parse_power_csv(text: str) -> PowerTrace:
    """Samples of an nvidia-smi power CSV (either layout) as a PowerTrace of total GPU watts."""
    rows = list(csv.reader(io.StringIO(text), skipinitialspace=True))
    if not rows or not rows[0]:
        raise ParseError(FORMAT, 1, "empty file")
    names = [_column_name(h) for h in rows[0]]
    power_col = next((names.index(c) for c in _POWER_COLUMNS if c in names), None)
    if power_col is None or "timestamp" not in names:
        raise ParseError(FORMAT, 1, "header needs 'timestamp' and 'power.draw' (run nvidia-smi with "
                                    "--query-gpu=timestamp,power.draw --format=csv, not noheader)")
    time_col = names.index("timestamp")
    gpu_col = next((names.index(c) for c in _GPU_COLUMNS if c in names), None)
    t_s: list[float] = []
    totals: list[float | None] = []
    rails: list[dict[str, float | None]] = []
    t0: datetime | None = None
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(names):
            raise ParseError(FORMAT, lineno, f"{len(row)} fields, the header has {len(names)}")
        seconds, wall = _time(row[time_col], lineno)
        if wall is not None:
            t0 = t0 or wall
            seconds = (wall - t0).total_seconds()
        assert seconds is not None
        gpu = f"gpu{row[gpu_col].strip()}" if gpu_col is not None else "gpu"
        watts = _watts(row[power_col], lineno)
        if not rails or gpu in rails[-1]:
            t_s.append(seconds)  # a GPU seen again starts the next sample
            rails.append({})
        rails[-1][gpu] = watts
    if not rails:
        raise ParseError(FORMAT, len(rows), "no samples after the header")
    for sample in rails:
        values = list(sample.values())
        known = [v for v in values if v is not None]
        totals.append(float(sum(known)) if len(known) == len(values) else None)
    rule = "power.draw" if len(rails[0]) == 1 else "sum of " + "+".join(rails[0])
    return PowerTrace(source="nvidia-smi", t_s=t_s, total_w=totals, rails=rails, t0=t0, total_rule=rule)
