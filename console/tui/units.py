"""Consistent number formatting for every screen: one unit choice per quantity, fixed widths.

Pure functions (no Textual) so they are trivially unit-tested.
"""

from __future__ import annotations

import math

from console.state import DeviceState, DeviceView, GwpView

DASH = "—"


def _ok(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def watts(w: float | None) -> str:
    """Power: `12.3 W`, `312 W`, `1.21 kW`."""
    if not _ok(w):
        return DASH
    if abs(w) >= 1000:
        return f"{w / 1000:.2f} kW"
    return f"{w:.0f} W" if abs(w) >= 100 else f"{w:.1f} W"


def energy(j: float | None) -> str:
    """Energy in mJ below 1 J, J below one Wh (3600 J), else Wh / kWh."""
    if not _ok(j):
        return DASH
    if 0 < abs(j) < 1:  # energy per query on fast devices
        return f"{j * 1000:.1f} mJ" if abs(j) < 0.1 else f"{j * 1000:.0f} mJ"
    if abs(j) < 3600:
        return f"{j:.1f} J" if abs(j) < 1000 else f"{j:.0f} J"
    wh = j / 3600
    return f"{wh / 1000:.2f} kWh" if wh >= 1000 else f"{wh:.2f} Wh"


def grams(g: float | None) -> str:
    """A mass of CO2e: µg below 0.1 mg, mg below 1 g, g below 1 kg, then kg (`e` implied by the column)."""
    if not _ok(g):
        return DASH
    if 0 < abs(g) < 1e-4:  # per-query values on fast devices: µg keeps two significant digits
        return f"{g * 1e6:.1f} µg" if abs(g) >= 1e-6 else f"{g * 1e6:.2f} µg"
    if abs(g) < 1:
        mg = g * 1000
        return f"{mg:.2f} mg" if abs(mg) < 10 else f"{mg:.1f} mg" if abs(mg) < 100 else f"{mg:.0f} mg"
    if abs(g) < 1000:
        return f"{g:.2f} g" if g < 10 else f"{g:.1f} g"
    return f"{g / 1000:.2f} kg"


def gwp_interval(gwp: GwpView | None) -> str:
    """`1.23 g [1.1–1.4]`: total with its low/high bounds in the total's unit."""
    if gwp is None:
        return DASH
    total = grams(gwp.total_g)
    unit = total.split(" ")[-1]
    scale = {"µg": 1e6, "mg": 1000.0, "g": 1.0, "kg": 0.001}.get(unit, 1.0)
    lo, hi = gwp.low_g * scale, gwp.high_g * scale
    digits = 2 if max(abs(lo), abs(hi)) < 10 else 1 if max(abs(lo), abs(hi)) < 100 else 0
    return f"{total} [{lo:.{digits}f}–{hi:.{digits}f}]"


def mg(x_mg: float | None) -> str:
    """A per-query GWP given in mg."""
    return grams(x_mg / 1000) if _ok(x_mg) else DASH


def millis(ms: float | None) -> str:
    """Latency: `8.31 ms`, `412 ms`, `1.24 s`."""
    if not _ok(ms):
        return DASH
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def duration(s: float | None) -> str:
    """Elapsed time: `42 s`, `3m07s`, `1h02m`."""
    if not _ok(s):
        return DASH
    s = max(0.0, s)
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def count(n: int | None) -> str:
    """A count with thin grouping: `12 345`."""
    return DASH if n is None else f"{n:,}".replace(",", " ")


def detail_line(v: DeviceView) -> str:
    """The link's own wording when away ("reconnecting in 4 s (attempt 2)", "stalled: no data for
    12 s (last sample 10:02:03 UTC)"), then the last error or notice; "" when there is nothing."""
    return "  ·  ".join(x for x in (v.link_status, v.message) if x)


def state_label(v: DeviceView) -> str:
    """The state word, with the reconnect countdown or how long data has been missing."""
    st = v.state
    if st is DeviceState.RECONNECTING and v.reconnect_in_s is not None:
        attempt = f" #{v.attempt}" if v.attempt else ""
        return f"reconnecting {max(0, math.ceil(v.reconnect_in_s))}s{attempt}"
    if st is DeviceState.STALLED and v.stalled_for_s is not None:
        return f"stalled {v.stalled_for_s:.0f}s"
    if st is DeviceState.RUNNING:
        return "running"
    return st.value
