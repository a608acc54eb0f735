"""An sshd inside a faults.NetNamespace (reached over its veth pair), and the process tree of a session.

`NetnsSshd` is tests/integration/sshd.py's Sshd with the listener moved into the namespace: it
listens on the namespace end of the veth (10.213.k.2) and the console reaches it through the root
end, so `ns.down()` is a real partition between the console and that host. Everything it starts
(the agent bridge, the agent daemon) lives in the namespace too.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.faults import NetNamespace
from tests.integration.sshd import Sshd, _children

NETNS_SSH_PORT = 2222  # the namespace has its own port space: no collision with anything outside


class NetnsSshd(Sshd):
    """One sshd on `ns.ns_addr` inside the namespace `ns` (the caller creates and destroys `ns`)."""

    def __init__(self, root: Path, user_key: Path, ns: NetNamespace, name: str = "netns-sshd") -> None:
        super().__init__(root, user_key, name)
        self.ns = ns
        self.listen = ns.ns_addr

    def _pick_port(self) -> int:
        return NETNS_SSH_PORT

    def argv(self) -> list[str]:
        # `ip netns exec` execs (no extra fork), so Popen's pid is sshd's and session_pids() still works
        return self.ns.exec_argv(super().argv())


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants, parents first (read from /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(_children(p))
    return out


@contextmanager
def sessions_stopped(sshd: Sshd) -> Iterator[list[int]]:
    """SIGSTOP every per-connection sshd process and its children (the session serving our channel and
    the agent bridge under it), then SIGCONT them. The agent daemon left that tree at start, so it
    keeps sampling: only the path to the console freezes, as on a hung host-side SSH session."""
    pids = [p for s in sshd.session_pids() for p in process_tree(s)]
    for pid in pids:
        _signal(pid, signal.SIGSTOP)
    try:
        yield pids
    finally:
        for pid in pids:
            _signal(pid, signal.SIGCONT)


def kill_sessions(sshd: Sshd) -> int:
    """SIGKILL the per-connection sshd processes (a reset of every SSH connection); how many died."""
    n = 0
    for pid in sshd.session_pids():
        n += _signal(pid, signal.SIGKILL)
    return n


def _signal(pid: int, sig: int) -> int:
    try:
        os.kill(pid, sig)
        return 1
    except ProcessLookupError:
        return 0
