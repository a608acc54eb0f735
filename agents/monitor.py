"""The `monitor` op: live power of idle devices for one client, so a console moves before any job.

One thread per connection reads each asked device's sampler every interval_ms and pushes
`{event:"monitor", device, t_wall, total_w, rails}` to that client only. Nothing is spooled: a
reading a slow client misses is gone. A device with a running job on this agent is skipped and
its monitor sampler closed: the job's samples are the live source then, and the measured device
is read by one reader only (a second tegrastats or read loop would add load to what is measured).
One event with `busy_job` (and no power) says so, so a console can follow that job's samples.
A sampler that cannot open or read gives one event with `error` (once per distinct text).
Python 3.6 compatible, stdlib only.
"""

import math
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from agents import protocol

MIN_INTERVAL_MS = 200
DEFAULT_INTERVAL_MS = 500
MAX_INTERVAL_MS = 60000
MAX_DEVICES = 64
REOPEN_AFTER_S = 10.0  # a sampler that failed to open is tried again this much later


def parse_args(args: Dict[str, Any]) -> Tuple[Optional[List[str]], int]:
    """(devices or None for every probed device, interval_ms); raises ValueError naming the argument."""
    devices = args.get("devices")
    if devices is not None:
        if not isinstance(devices, list) or not all(isinstance(d, str) and d for d in devices):
            raise ValueError("'devices' must be a list of device ids, or null for every device found")
        if len(devices) > MAX_DEVICES:
            raise ValueError("'devices' lists more than {} devices".format(MAX_DEVICES))
        devices = list(dict.fromkeys(devices))  # each device read once, in the order asked
    interval = args.get("interval_ms", DEFAULT_INTERVAL_MS)
    if interval is None:
        interval = DEFAULT_INTERVAL_MS
    ok = isinstance(interval, (int, float)) and not isinstance(interval, bool)
    if not ok or not MIN_INTERVAL_MS <= interval <= MAX_INTERVAL_MS:
        raise ValueError("'interval_ms' must be a number in {}..{}".format(MIN_INTERVAL_MS, MAX_INTERVAL_MS))
    return devices, int(interval)


def probed_devices(probe: Dict[str, Any]) -> List[str]:
    """The device ids worth monitoring from a probe reply: real ones (no template, not `none`)."""
    out = []
    for d in probe.get("devices") or []:
        dev_id = d.get("id") if isinstance(d, dict) else None
        if isinstance(dev_id, str) and "<" not in dev_id and dev_id != "none":
            out.append(dev_id)
    return out


class Monitor(object):
    """Reads devices on a thread until stop() or the client's `closed` event is set."""

    def __init__(
        self,
        devices: Optional[List[str]],
        interval_ms: int,
        open_sampler: Callable[..., Any],
        busy: Callable[[], Dict[str, str]],
        send: Callable[[Dict[str, Any]], None],
        closed: threading.Event,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        probe: Optional[Callable[[], Dict[str, Any]]] = None,
    ) -> None:
        self.devices = devices
        self.interval_ms = interval_ms
        self._open = open_sampler
        self._busy = busy
        self._send = send
        self._closed = closed
        self._clock = clock
        self._wall = wall_clock
        self._probe = probe
        self._stop = threading.Event()
        self._samplers: Dict[str, Any] = {}
        self._reopen_at: Dict[str, float] = {}
        self._errors: Dict[str, str] = {}
        self._busy_said: Dict[str, str] = {}  # device -> the running job already announced
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "Monitor":
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """End the thread; it closes every sampler it opened."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            if self.devices is None:
                # Resolved here, not in the request: probing (NVML init) can take seconds.
                self.devices = probed_devices(self._probe() if self._probe else {})
            interval = self.interval_ms / 1000.0
            due = self._clock()
            while not (self._stop.is_set() or self._closed.is_set()):
                self._tick()
                due += interval
                delay = due - self._clock()
                if delay < 0:  # a slow read or a suspended process: start again from now, no burst
                    due, delay = self._clock(), 0.0
                self._stop.wait(min(delay, interval))
        finally:
            for device in list(self._samplers):
                self._close(device)

    def _tick(self) -> None:
        try:
            busy = self._busy()
        except Exception:
            busy = {}
        for device in self.devices or []:
            if self._stop.is_set() or self._closed.is_set():
                return
            job = busy.get(device)
            if job is not None:
                self._close(device)
                if self._busy_said.get(device) != job:
                    self._busy_said[device] = job
                    self._emit(device, None, {}, busy_job=job)
                continue
            self._busy_said.pop(device, None)
            self._read(device)

    def _read(self, device: str) -> None:
        sampler = self._samplers.get(device)
        if sampler is None:
            if self._clock() < self._reopen_at.get(device, 0.0):
                return
            try:
                sampler = self._open(device, self.interval_ms, clock=self._clock)
            except Exception as exc:
                self._reopen_at[device] = self._clock() + REOPEN_AFTER_S
                self._error(device, "cannot open a sampler: {}".format(exc))
                return
            self._samplers[device] = sampler
        try:
            r = sampler.read()
            rails = {str(k): _clean(v) for k, v in (r.rails or {}).items()}
            total_w = _clean(r.total_w)
        except Exception as exc:
            self._error(device, "read failed: {}".format(exc))
            return
        self._errors.pop(device, None)
        self._emit(device, total_w, rails)

    def _error(self, device: str, text: str) -> None:
        if self._errors.get(device) == text:
            return  # said once; the device stays quiet until it reads again
        self._errors[device] = text
        self._emit(device, None, {}, error=text)

    def _emit(
        self, device: str, total_w: Optional[float], rails: Dict[str, Optional[float]], **extra: Any
    ) -> None:
        msg = protocol.event("monitor", device=device, t_wall=self._wall(), total_w=total_w, rails=rails)
        msg.update(extra)
        self._send(msg)

    def _close(self, device: str) -> None:
        sampler = self._samplers.pop(device, None)
        if sampler is not None:
            try:
                sampler.close()
            except Exception:
                pass  # closing a monitor sampler is best effort; nothing was recorded from it


def _clean(x: Any) -> Optional[float]:
    """A finite number or None (NaN/inf are not JSON)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None
