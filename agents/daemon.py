"""The per-user agent daemon: a unix socket in `<home>/run/` (a 0700 directory we own), a thread
per client, jobs that outlive every client. It opens no TCP or UDP port.

One daemon per home: it holds an fcntl lock on `run/daemon.lock` for its lifetime. It exits on
`shutdown`, on SIGTERM/SIGINT (jobs are stopped and their end state written), or by itself
after `idle_exit_s` with no running job and no client, so it never lingers on a device.
Python 3.6 compatible, stdlib only.
"""

import fcntl
import os
import signal
import socket
import stat
import threading
import time
from typing import Any, Callable, Dict, Optional

from agents.server import Agent, serve_connection

DEFAULT_IDLE_EXIT_S = 600.0
SOCKET_NAME = "agent.sock"
LOCK_NAME = "daemon.lock"
LOG_MAX_BYTES = 1 << 20
LOCK_WAIT_S = 12.0  # a daemon that is stopping its jobs may hold the lock this long
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes on Linux, including the NUL


class DaemonError(Exception):
    """The daemon cannot run here; the message says what, where and how to fix it."""


def agent_home() -> str:
    """$WATTLAB_AGENT_HOME, else ~/.cache/wattlab/agent."""
    env = os.environ.get("WATTLAB_AGENT_HOME")
    if env:
        return os.path.abspath(env)
    return os.path.join(os.path.expanduser("~"), ".cache", "wattlab", "agent")


def run_dir(home: str) -> str:
    """Where the socket and the locks live."""
    return os.path.join(home, "run")


def socket_path(home: str) -> str:
    """The daemon's unix socket."""
    return os.path.join(run_dir(home), SOCKET_NAME)


def secure_run_dir(home: str) -> str:
    """Create `<home>/run` with mode 0700 and check it: ours, a real directory, no group/other bits.

    A directory someone else could write to would let them swap our socket, so we refuse it
    instead of silently fixing or using it.
    """
    os.makedirs(home, mode=0o700, exist_ok=True)
    path = run_dir(home)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise DaemonError("{} is not a directory (a symlink or file?); remove it and retry".format(path))
    if st.st_uid != os.getuid():
        raise DaemonError(
            "{} is owned by uid {}, not by you (uid {}); remove it and retry".format(
                path, st.st_uid, os.getuid()
            )
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode != 0o700:
        raise DaemonError("{} has mode {:o}, expected 700; fix with: chmod 700 {}".format(path, mode, path))
    if len(socket_path(home).encode()) > MAX_SOCKET_PATH:
        raise DaemonError(
            "socket path {} is longer than {} bytes; set WATTLAB_AGENT_HOME to a shorter directory".format(
                socket_path(home), MAX_SOCKET_PATH
            )
        )
    return path


def connect(home: str, timeout: float = 2.0) -> Optional[socket.socket]:
    """A connected socket to the running daemon, or None when none answers."""
    path = socket_path(home)
    if not os.path.exists(path):
        return None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError:
        s.close()
        return None
    s.settimeout(None)
    return s


class Daemon(object):
    """Listens on the socket and serves clients until shutdown, a signal, or the idle timeout."""

    def __init__(
        self,
        home: str,
        idle_exit_s: float = DEFAULT_IDLE_EXIT_S,
        agent_factory: Optional[Callable[[str], Agent]] = None,
        clock: Callable[[], float] = time.monotonic,
        lock_wait_s: float = LOCK_WAIT_S,
    ) -> None:
        self.home = home
        self.lock_wait_s = lock_wait_s
        self.idle_exit_s = idle_exit_s
        self.clock = clock
        self.agent: Agent = (agent_factory or Agent)(home)
        self.exit_reason: Optional[str] = None
        self._lock_fd: Optional[int] = None
        self._sock: Optional[socket.socket] = None
        self.ready = threading.Event()

    def _acquire_lock(self) -> None:
        """Hold run/daemon.lock for our lifetime; wait up to lock_wait_s for a daemon that is exiting."""
        path = os.path.join(run_dir(self.home), LOCK_NAME)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                other = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                msg = "another agent daemon (pid {}) already serves {}".format(other, socket_path(self.home))
                raise DaemonError(msg) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode("ascii"))
        self._lock_fd = fd

    def _bind(self) -> socket.socket:
        path = socket_path(self.home)
        if os.path.lexists(path):
            os.unlink(path)  # we hold the lock: any socket file here is a stale one
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket file is born 0600, no window where others can connect
        try:
            s.bind(path)
        finally:
            os.umask(old)
        s.listen(16)
        s.settimeout(0.5)  # wake up to check shutdown and idleness
        return s

    def serve_forever(self) -> str:
        """Run until asked to stop; returns why it stopped. Always cleans up socket and lock."""
        secure_run_dir(self.home)
        self._acquire_lock()
        try:
            self._sock = self._bind()
            interrupted = self.agent.recover()
            if interrupted:
                _log("marked interrupted: {}".format(", ".join(interrupted)))
            pruned = self.agent.prune()
            if pruned:
                _log("pruned acknowledged jobs: {}".format(", ".join(pruned)))
            self._install_signals()
            _log("serving {} (pid {})".format(socket_path(self.home), os.getpid()))
            self.ready.set()
            self._accept_loop()
        finally:
            self._cleanup()
        _log("exit: {}".format(self.exit_reason))
        return self.exit_reason or "stopped"

    def _accept_loop(self) -> None:
        last_busy = self.clock()
        while True:
            if self.agent.shutdown_requested.is_set():
                self.exit_reason = self.exit_reason or "shutdown requested"
                return
            busy = bool(self.agent.clients) or bool(self.agent.active_jobs())
            now = self.clock()
            if busy:
                last_busy = now
            elif now - last_busy >= self.idle_exit_s:
                self.exit_reason = "idle for {:.0f} s with no job and no client".format(now - last_busy)
                return
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError as exc:
                if self.agent.shutdown_requested.is_set():
                    continue
                _log("accept failed: {}".format(exc))
                time.sleep(0.1)
                continue
            conn.settimeout(None)
            serve_connection(conn, self.agent)
            last_busy = self.clock()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # tests run the daemon in a thread; signals belong to the main thread

        def on_signal(signum: int, frame: Any) -> None:
            self.exit_reason = "signal {}".format(signum)
            self.agent.shutdown_requested.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closing terminal is not a reason to stop jobs

    def _cleanup(self) -> None:
        if self._sock is not None:
            try:
                os.unlink(socket_path(self.home))  # first: no new client may connect to a dying daemon
            except OSError:
                pass
            self._sock.close()
        self.agent.stop_all("agent daemon stopping ({})".format(self.exit_reason or "exit"))
        with self.agent._clients_lock:
            clients = list(self.agent.clients)
        for c in clients:
            c.drain_and_close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


def rotate_log(home: str) -> None:
    """Keep daemon.log bounded: over LOG_MAX_BYTES it becomes daemon.log.1."""
    path = os.path.join(home, "daemon.log")
    try:
        if os.path.getsize(path) > LOG_MAX_BYTES:
            os.replace(path, path + ".1")
    except OSError:
        pass


def _log(text: str) -> None:
    # stderr is <home>/daemon.log when started by the bridge
    import sys

    sys.stderr.write(
        "{} wattlab-agent[{}]: {}\n".format(
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), os.getpid(), text
        )
    )
    sys.stderr.flush()


def run_daemon(home: Optional[str] = None, idle_exit_s: Optional[float] = None) -> Dict[str, Any]:
    """Run a daemon in the foreground in this process (what `agents daemon --foreground` does)."""
    home = home or agent_home()
    if idle_exit_s is None:
        idle_exit_s = float(os.environ.get("WATTLAB_AGENT_IDLE_EXIT_S", DEFAULT_IDLE_EXIT_S))
    d = Daemon(home, idle_exit_s=idle_exit_s)
    reason = d.serve_forever()
    return {"home": home, "exit": reason}
