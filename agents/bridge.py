"""The bridge: relays stdin/stdout (an SSH channel, a subprocess pipe) to the daemon's socket,
starting the daemon first when none answers.

The daemon is started detached (double fork + setsid, stdio on /dev/null and `<home>/daemon.log`)
so it outlives the SSH session; killing the bridge closes one client connection and nothing
else. A lock file (fcntl) makes two bridges racing at start-up start one daemon, not two.
The daemon is re-executed from the zipapp the bridge runs from, or with `-m agents` from source.
Python 3.6 compatible, stdlib only.
"""

import fcntl
import os
import select
import socket
import sys
import time
from typing import Dict, List, Optional, Tuple

from agents.daemon import agent_home, connect, rotate_log, run_dir, secure_run_dir

SPAWN_LOCK = "spawn.lock"
START_TIMEOUT_S = 15.0


class BridgeError(Exception):
    """The bridge cannot reach or start the daemon; the message says where to look."""


def agent_command(*args: str) -> Tuple[List[str], Optional[str]]:
    """(argv, extra PYTHONPATH) that runs `agent <args>` with the code we run from (zipapp or source)."""
    pkg_dir = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(pkg_dir)
    if os.path.isfile(root):  # .../agent-<hash>.pyz/agents/bridge.py: we run from a zipapp
        return [sys.executable, root, *args], None
    return [sys.executable, "-m", "agents", *args], root


def daemon_command() -> Tuple[List[str], Optional[str]]:
    """(argv, extra PYTHONPATH) that runs `daemon --foreground` with the code we run from."""
    return agent_command("daemon", "--foreground")


def spawn_daemon(home: str) -> None:
    """Start a detached daemon for `home` (double fork + setsid); returns once the first child exited."""
    argv, pythonpath = daemon_command()
    env: Dict[str, str] = dict(os.environ)
    env["WATTLAB_AGENT_HOME"] = home
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    rotate_log(home)
    log_path = os.path.join(home, "daemon.log")
    pid = os.fork()
    if pid == 0:  # first child: new session, then fork again so the daemon is not a session leader
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            null = os.open(os.devnull, os.O_RDONLY)
            log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(null, 0)  # never keep the SSH channel's fds: the session could not close
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.chdir(home)
            os.umask(0o077)
            os.execve(argv[0], argv, env)
        except BaseException as exc:  # exec failed: say so in the log, never return into the bridge
            try:
                os.write(2, "wattlab-agent: cannot start daemon {}: {}\n".format(argv, exc).encode())
            finally:
                os._exit(127)
    os.waitpid(pid, 0)


def ensure_daemon(home: str, timeout: float = START_TIMEOUT_S) -> socket.socket:
    """A socket connected to the daemon of `home`, starting it if needed (at most one starts)."""
    s = connect(home)
    if s is not None:
        return s
    secure_run_dir(home)
    lock_fd = os.open(os.path.join(run_dir(home), SPAWN_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # a second bridge waits here, then finds the daemon
        s = connect(home)
        if s is not None:
            return s
        spawn_daemon(home)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = connect(home)
            if s is not None:
                return s
            time.sleep(0.05)
    finally:
        os.close(lock_fd)
    raise BridgeError(
        "the agent daemon did not start within {:.0f} s; see {}: {}".format(
            timeout, os.path.join(home, "daemon.log"), _log_tail(home)
        )
    )


def _log_tail(home: str) -> str:
    try:
        with open(os.path.join(home, "daemon.log"), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 600))
            return f.read().decode("utf-8", "replace").strip() or "(empty)"
    except OSError:
        return "(no log)"


def relay(sock: socket.socket, in_fd: int = 0, out_fd: int = 1) -> None:
    """Copy in_fd -> sock and sock -> out_fd until the daemon closes or stdout breaks."""
    in_open = True
    while True:
        rlist = [sock, in_fd] if in_open else [sock]
        ready, _, _ = select.select(rlist, [], [])
        if sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            _write_all(out_fd, data)
        if in_open and in_fd in ready:
            data = os.read(in_fd, 65536)
            if data:
                sock.sendall(data)
            else:
                # The console closed its side: tell the daemon, then drain its last replies.
                in_open = False
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    return


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def run_bridge(home: Optional[str] = None) -> int:
    """`agents bridge`: connect (starting the daemon if needed) and relay stdio; returns an exit code."""
    home = home or agent_home()
    try:
        sock = ensure_daemon(home)
    except Exception as exc:
        sys.stderr.write("wattlab-agent bridge: {}\n".format(exc))
        return 1
    try:
        relay(sock, sys.stdin.fileno(), sys.stdout.fileno())
    except (BrokenPipeError, ConnectionResetError):
        pass  # the console or the daemon went away: the jobs go on
    finally:
        sock.close()
    return 0
