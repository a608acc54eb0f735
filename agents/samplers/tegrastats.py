"""Jetson power from `tegrastats`: a line parser for every format in the wild, and a sampler
that keeps ONE `tegrastats --interval MS` process running and hands out its latest line.

Formats (reference/power-sources.md §2.3): JetPack 4 `VDD_IN 1931/1931` (mW, no unit), JetPack 5/6
`VDD_IN 5542mW/5542mW` after a date, JetPack 7 `VDD_IN 4385mW/3787mW/4385mW` (three values; the
first is the current one). The 2nd value is a running mean since tegrastats started, never used.
Python 3.6 compatible.
"""

import os
import re
import shutil
import subprocess
import tempfile
import threading
from typing import Any, Dict, List, Optional, Tuple

from agents.samplers.base import Clock, Reading, Sampler, SamplerError, SamplerUnavailable

# NAME <cur>[unit]/<avg>[unit][/<third>[unit]] followed by whitespace or the end of the line.
# Memory fields (`RAM 1903/15692MB`) never match: their unit `MB`/`kB` is not mW/W.
_RAIL_RE = re.compile(
    r"(?:^|\s)([A-Za-z][A-Za-z0-9_]*) ([0-9]+(?:\.[0-9]+)?)(mW|W)?/([0-9]+(?:\.[0-9]+)?)(?:mW|W)?"
    r"(?:/([0-9]+(?:\.[0-9]+)?)(?:mW|W)?)?(?=\s|$)"
)
_NOT_RAILS = frozenset(("RAM", "SWAP", "IRAM", "lfb", "cached"))
# Input rails that measure the whole module, in order of preference (jtop issue #51 for POM_5V_IN).
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
NEED_ROOT = "power rails need root (run the agent as root or use ina3221 sysfs)"


def parse_line(line: str) -> Dict[str, float]:
    """Instantaneous watts of every power rail in one tegrastats line; {} when it has none."""
    rails: Dict[str, float] = {}
    for m in _RAIL_RE.finditer(line):
        name = m.group(1)
        if name in _NOT_RAILS or name == "NC" or name.startswith("NC_"):
            continue
        value = float(m.group(2))
        # No unit (JetPack 4) means mW, like `mW`; a bare `W` is taken at its word.
        rails[name] = value if m.group(3) == "W" else value / 1000.0
    return rails


def board_total(rails: Dict[str, Optional[float]]) -> Tuple[Optional[float], str]:
    """The module total and the rule that gave it: the input rail where the board has one, else
    the sum of all rails (AGX Xavier, AGX Orin), labelled as such."""
    for name in INPUT_RAILS:
        if name in rails:
            return rails[name], "{} (module input rail)".format(name)
    if not rails:
        return None, "no power rails readable"
    names = list(rails)  # line (insertion) order, as the board prints them
    rule = "sum of rails {} (no input rail on this board)".format("+".join(names))
    values = [rails[n] for n in names]
    if any(v is None for v in values):
        return None, rule
    return float(sum(v for v in values if v is not None)), rule


def total_rail(rails: Dict[str, Any]) -> Optional[str]:
    """The rail that is the device total, or None when the total is a sum of rails."""
    for name in INPUT_RAILS:
        if name in rails:
            return name
    return None


def find_tegrastats() -> Optional[str]:
    """Path of the tegrastats binary on PATH or where L4T installs it, else None."""
    found = shutil.which("tegrastats")
    if found:
        return found
    for path in ("/usr/bin/tegrastats", "/usr/sbin/tegrastats"):
        if os.access(path, os.X_OK):
            return path
    return None


class TegrastatsSampler(Sampler):
    """One long-lived `tegrastats --interval MS`; a reader thread keeps the latest parsed line."""

    name = "tegrastats"

    def __init__(
        self,
        device: str = "jetson",
        clock: Optional[Clock] = None,
        interval_ms: int = 100,
        binary: Optional[str] = None,
        first_line_timeout_s: Optional[float] = None,
    ) -> None:
        Sampler.__init__(self, device, clock)
        self.interval_ms = max(1, int(interval_ms))
        self.binary = binary
        # tegrastats prints its first line after one interval; allow generous start-up slack.
        self._first_timeout = first_line_timeout_s or max(2.0, 3 * self.interval_ms / 1000.0)
        self._proc: Optional[subprocess.Popen] = None
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._first = threading.Event()
        self._latest: Optional[Tuple[float, Dict[str, float]]] = None
        self._notices: List[str] = []
        self._warned_root = False
        self._rails_seen: List[str] = []
        self._stderr_tail = ""
        self._stderr_file: Any = None

    @classmethod
    def available(cls, binary: Optional[str] = None, **kwargs: Any) -> Optional[str]:
        path = binary or find_tegrastats()
        if path is None or not os.access(path, os.X_OK):
            return "tegrastats not found (not a Jetson, or L4T tools not installed)"
        return None

    @classmethod
    def devices(cls, binary: Optional[str] = None, **kwargs: Any) -> List[Dict[str, Any]]:
        if cls.available(binary=binary) is not None:
            return []
        return [
            {"id": "jetson", "sampler": cls.name, "name": "Jetson module (tegrastats)", "hardware_id": None}
        ]

    def open(self) -> None:
        if self._proc is not None:
            return
        path = self.binary or find_tegrastats()
        if path is None:
            raise SamplerUnavailable("tegrastats not found on PATH or in /usr/bin: is this a Jetson?")
        self.binary = path
        # stderr goes to a file, not a pipe nobody drains, so a chatty tegrastats can never block.
        self._stderr_file = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                [path, "--interval", str(self.interval_ms)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr_file,
            )
        except OSError as exc:
            self._stderr_file.close()
            self._stderr_file = None
            raise SamplerUnavailable("cannot start {}: {}".format(path, exc)) from None
        self._thread = threading.Thread(target=self._reader, name="tegrastats-reader", daemon=True)
        self._thread.start()
        if not self._first.wait(self._first_timeout):
            self.close()
            raise SamplerError(
                "{} --interval {} printed no line within {:.1f} s".format(
                    path, self.interval_ms, self._first_timeout
                )
            )
        if self._latest is None:  # the process ended before printing anything
            code = self._proc.returncode if self._proc is not None else None
            tail = self._stderr_tail
            self.close()
            raise SamplerError(
                "{} --interval {} exited (code {}) without output{}".format(
                    path, self.interval_ms, code, ": " + tail if tail else ""
                )
            )

    def _reader(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        try:
            for raw in proc.stdout:  # bytes: no dependence on the device's locale (C/ASCII on JP4)
                self._take(raw.decode("utf-8", "replace"))
        except (OSError, ValueError):  # stdout closed under us by close(): nothing more to read
            pass
        # EOF: the process is gone; keep a bit of its stderr to explain why.
        proc.wait()
        self._stderr_tail = self._read_stderr_tail()
        self._first.set()

    def _take(self, line: str) -> None:
        t = self.clock()
        rails = parse_line(line)
        with self._lock:
            self._latest = (t, rails)
            if rails:
                self._rails_seen = list(rails)
            elif not self._warned_root:
                self._warned_root = True
                self._notices.append(NEED_ROOT)
        self._first.set()

    def _read_stderr_tail(self) -> str:
        f = self._stderr_file
        if f is None:
            return ""
        try:
            f.seek(0)
            return f.read()[-300:].decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def read(self) -> Reading:
        with self._lock:
            latest = self._latest
        proc = self._proc
        if proc is None:
            raise SamplerError("tegrastats sampler read before open()")
        if proc.poll() is not None and not (self._thread and self._thread.is_alive()):
            raise SamplerError(
                "{} exited with code {}{}".format(
                    self.binary, proc.returncode, ": " + self._stderr_tail if self._stderr_tail else ""
                )
            )
        if latest is None:
            return Reading(self.clock(), {}, None)
        t, rails = latest
        total, _rule = board_total(rails)
        # A copy: the caller may keep it while the reader thread moves on.
        return Reading(t, dict(rails), total)

    def drain_notices(self) -> List[str]:
        with self._lock:
            out, self._notices = self._notices, []
        return out

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=2)
        if proc is not None and proc.stdout is not None:
            try:
                proc.stdout.close()
            except (OSError, ValueError):
                pass
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None

    def describe(self) -> Dict[str, Any]:
        with self._lock:
            rails = list(self._rails_seen)
        rail_map: Dict[str, Optional[float]] = {r: 0.0 for r in rails}
        _total, rule = board_total(rail_map)
        return {
            "name": self.name,
            "device": self.device,
            "rails": rails,
            "total_rail": total_rail(rail_map),
            "total_rule": rule,
            "resolution_w": 0.001,
            "min_interval_ms": 10,
            "check_cmd": "sudo tegrastats --interval {}".format(self.interval_ms),
            "notes": [
                "one tegrastats process at {} ms; each reading is its latest line, timed on arrival".format(
                    self.interval_ms
                ),
                "instantaneous value only; tegrastats' 2nd value is a running mean since it started",
            ],
        }
