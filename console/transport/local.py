"""The agent on this machine: `python -m agents bridge` as a subprocess, its stdio as the Channel.

The bridge relays to the per-user daemon (starting it if needed), so closing this channel never
stops a job. The repo root goes on PYTHONPATH so the subprocess imports the same `agents` package
as the console; the agent home is $WATTLAB_AGENT_HOME (or the agent's default).
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
from pathlib import Path

from console.errors import HostError
from console.paths import REPO_ROOT
from console.transport.base import Channel, Transport


class ProcessChannel(Channel):
    """A Channel over a child process's stdin/stdout; keeps its last stderr lines for error messages."""

    def __init__(self, proc: subprocess.Popen, description: str) -> None:
        self._proc = proc
        self._send_lock = threading.Lock()
        self._closed = False
        self.description = description
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._stderr_thread = threading.Thread(target=self._drain_stderr, name=f"stderr {description}",
                                               daemon=True)
        self._stderr_thread.start()

    def _drain_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in iter(self._proc.stderr.readline, b""):
            self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())

    def send(self, data: bytes) -> None:
        with self._send_lock:
            if self._closed or self._proc.stdin is None:
                raise OSError("channel closed")
            self._proc.stdin.write(data)
            self._proc.stdin.flush()

    def recv(self, n: int = 65536) -> bytes:
        if self._closed or self._proc.stdout is None:
            return b""
        try:
            data = os.read(self._proc.stdout.fileno(), n)
        except (OSError, ValueError):
            data = b""
        if not data:
            self._closed = True
        return data

    def close(self) -> None:
        self._closed = True
        try:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=2)  # the bridge exits on stdin EOF; a reader then sees EOF on stdout
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        # stdout is closed only now: closing an fd another thread is reading from is a race
        try:
            if self._proc.stdout is not None:
                self._proc.stdout.close()
        except OSError:
            pass

    def stderr_text(self) -> str:
        """The bridge's last stderr lines (why it failed to start, say)."""
        if self._proc.poll() is not None or self._closed:
            self._stderr_thread.join(0.5)  # let the drain thread catch the last words of a dead bridge
        return " | ".join(self.stderr_tail)

    @property
    def closed(self) -> bool:
        return self._closed or self._proc.poll() is not None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()


def agent_env(agent_home: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The environment of a local agent subprocess: our agents package first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    if agent_home is not None:
        env["WATTLAB_AGENT_HOME"] = str(agent_home)
    return env


class LocalTransport(Transport):
    """Runs the agent bridge on this machine."""

    def __init__(self, python: str | None = None, agent_home: str | os.PathLike[str] | None = None,
                 name: str = "local") -> None:
        self.python = python or sys.executable
        self.agent_home = Path(agent_home) if agent_home else None
        self.name = name
        self.description = f"local agent ({self.python})"
        self._channels: list[ProcessChannel] = []

    def open_bridge(self) -> Channel:
        try:
            proc = subprocess.Popen(
                [self.python, "-m", "agents", "bridge"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=agent_env(self.agent_home), cwd=str(REPO_ROOT), bufsize=0,
            )
        except OSError as exc:
            raise HostError(self.name, f"cannot start the local agent with {self.python}: {exc}") from exc
        channel = ProcessChannel(proc, f"{self.name}: {self.python} -m agents bridge")
        self._channels.append(channel)
        return channel

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
        self._channels.clear()


def stop_local_daemon(agent_home: str | os.PathLike[str] | None = None, python: str | None = None,
                      timeout_s: float = 10.0) -> int:
    """`python -m agents stop` for the given agent home (tests and `wattlab agent stop`); returns its rc."""
    proc = subprocess.run([python or sys.executable, "-m", "agents", "stop"], env=agent_env(agent_home),
                          cwd=str(REPO_ROOT), capture_output=True, timeout=timeout_s, check=False)
    return proc.returncode
