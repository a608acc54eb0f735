"""Run an argv workload: a process started from a list of strings, never through a shell.

stdout and stderr go to files in the job's spool directory (a pipe nobody drains would block
the benchmark); the last lines of stderr are read back when it ends so a failure says why.
The process gets its own session so stop() reaches its children too. Python 3.6 compatible.
"""

import os
import signal
import subprocess
import time
from typing import Any, Dict, List, Optional

TAIL_BYTES = 2000


class WorkloadError(Exception):
    """A workload that cannot be started (bad spec, missing program, no permission)."""


def validate_argv_spec(spec: Dict[str, Any]) -> List[str]:
    """The argv list of an argv workload spec; raises WorkloadError on anything but a list of strings."""
    argv = spec.get("argv")
    if isinstance(argv, str):
        raise WorkloadError("workload argv must be a list of strings, not a shell string: {!r}".format(argv))
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise WorkloadError("workload argv must be a non-empty list of strings, got {!r}".format(argv))
    env = spec.get("env")
    if env is not None and not (
        isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
    ):
        raise WorkloadError("workload env must map strings to strings")
    cwd = spec.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise WorkloadError("workload cwd must be a string")
    return list(argv)


class ArgvWorkload(object):
    """One process; poll() says when it ended, terminate() ends it and its children."""

    def __init__(self, spec: Dict[str, Any], log_dir: str) -> None:
        self.argv = validate_argv_spec(spec)
        self.cwd: Optional[str] = spec.get("cwd")
        self.env: Optional[Dict[str, str]] = spec.get("env")
        self.stdout_path = os.path.join(log_dir, "workload.stdout")
        self.stderr_path = os.path.join(log_dir, "workload.stderr")
        self.proc: Optional[subprocess.Popen] = None
        self.proc_start: Optional[int] = None  # kernel start time: pid + this name the process uniquely
        self.returncode: Optional[int] = None
        self.terminated = False

    def start(self) -> int:
        """Start the process (shell=False, always); returns its pid or raises WorkloadError."""
        env = None
        if self.env:
            env = dict(os.environ)
            env.update(self.env)
        out = open(self.stdout_path, "wb")
        err = open(self.stderr_path, "wb")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                shell=False,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                close_fds=True,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            if self.cwd and not os.path.isdir(self.cwd):
                raise WorkloadError("workload cwd does not exist: {!r}".format(self.cwd)) from None
            where = " in {}".format(self.cwd) if self.cwd else ""
            raise WorkloadError(
                "workload not found: {!r}{} ({})".format(self.argv[0], where, exc.strerror)
            ) from None
        except OSError as exc:
            raise WorkloadError("workload {!r} cannot start: {}".format(self.argv[0], exc)) from None
        finally:
            out.close()
            err.close()
        self.proc_start = process_start_time(self.proc.pid)
        return self.proc.pid

    def poll(self) -> Optional[int]:
        """The exit code once the process ended (negative = killed by that signal), else None."""
        if self.proc is not None and self.returncode is None:
            self.returncode = self.proc.poll()
        return self.returncode

    def terminate(self, grace_s: float = 5.0) -> Optional[int]:
        """SIGTERM the process group, SIGKILL after grace_s; returns the exit code."""
        if self.proc is None or self.poll() is not None:
            return self.returncode
        self.terminated = True
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if self.poll() is not None:
                return self.returncode
            time.sleep(0.02)
        self._signal_group(signal.SIGKILL)
        self.returncode = self.proc.wait()
        return self.returncode

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # its own session: the group id is its pid
        except OSError:
            pass  # already gone

    def stderr_tail(self) -> str:
        """The last ~2 KB of stderr, decoded leniently."""
        return _tail(self.stderr_path)

    def stdout_tail(self) -> str:
        """The last ~2 KB of stdout (where benchmarks print their results), decoded leniently."""
        return _tail(self.stdout_path)

    def failure(self) -> Optional[str]:
        """A one-line reason when the process failed on its own (not when we terminated it)."""
        rc = self.poll()
        if rc is None or rc == 0 or self.terminated:
            return None
        how = "was killed by signal {}".format(-rc) if rc < 0 else "exited with code {}".format(rc)
        return "workload {!r} {}".format(" ".join(self.argv)[:200], how)


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def process_start_time(pid: int) -> Optional[int]:
    """The kernel's start time of a live `pid` (clock ticks since boot, /proc/<pid>/stat field 22),
    or None when there is no such process or only its zombie is left.

    A pid alone may be reused after a reboot or a long time; pid + start time cannot.
    """
    try:
        with open("/proc/{}/stat".format(pid), "rb") as f:
            stat = f.read().decode("ascii", "replace")
        fields = stat.rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def terminate_orphan(pid: int, proc_start: Optional[int], grace_s: float = 5.0) -> bool:
    """End the process group of a workload whose job died with its daemon; True if it was running.

    Only when pid still names the same process (same start time): never a stranger's pid.
    """
    if proc_start is None or process_start_time(pid) != proc_start:
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except OSError:
            return True
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if process_start_time(pid) != proc_start:
                return True
            time.sleep(0.05)
    return True
