"""Fixtures for the SSH integration tests: two real sshd on loopback (a target and a jump host),
a client ssh_config/known_hosts/key in tmp, and cleanup of every sshd and agent daemon started.

The remote side's home is a tmp dir: each host dict carries `remote_home`, which the console turns
into `env HOME=<dir> WATTLAB_AGENT_HOME=<dir>/.cache/wattlab/agent python3 ...` (see console/deploy.py),
so deploys and daemons never touch the real ~ of the user running the tests.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.sshd import Sshd, keygen


@dataclass
class SshEnv:
    """What a test needs to reach the loopback sshd: aliases in `config`, keys, and a tmp root."""

    root: Path
    target: Sshd
    jump: Sshd
    user_key: Path
    config: Path
    known_hosts: Path
    remote_home: Path  # shared by tests that do not care about a fresh deploy

    def host(self, alias: str = "wl-target", **overrides: object) -> dict:
        """A lab-host-like dict for console.transport.ssh.open_transport."""
        cfg: dict = {"name": alias, "ssh_config": str(self.config), "remote_home": str(self.remote_home),
                     "timeout_s": 5}
        cfg.update(overrides)
        return cfg

    def fresh_home(self, name: str) -> Path:
        """A new, empty remote home (for tests that must deploy from scratch)."""
        import tempfile

        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root / "homes"))

    def write_config(self, path: Path, known_hosts: Path, extra: str = "") -> Path:
        """An ssh_config with the standard aliases pointing at `known_hosts` (tests vary that file)."""
        common = (f"  HostName 127.0.0.1\n  User {_user()}\n  IdentityFile {self.user_key}\n"
                  f"  IdentitiesOnly yes\n  UserKnownHostsFile {known_hosts}\n  GlobalKnownHostsFile none\n"
                  "  ConnectTimeout 5\n  ServerAliveInterval 2\n")
        path.write_text(
            f"Host wl-target\n  Port {self.target.port}\n{common}\n"
            f"Host wl-jump\n  Port {self.jump.port}\n{common}\n"
            # only reachable through the jump host in spirit: the route is checked in the jump's log
            f"Host wl-behind\n  Port {self.target.port}\n  ProxyJump wl-jump\n{common}\n" + extra
        )
        return path


def _user() -> str:
    import getpass

    return getpass.getuser()


def kill_agents_under(root: Path) -> list[int]:
    """SIGTERM every process whose environment points its agent home under `root` (only ours)."""
    needle = f"WATTLAB_AGENT_HOME={root}".encode()
    killed = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in env:
            try:
                os.kill(int(entry), signal.SIGTERM)
                killed.append(int(entry))
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 3
    while killed and time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in killed):
        time.sleep(0.05)
    return killed


@pytest.fixture(scope="session")
def ssh_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshEnv]:
    """Two sshd on 127.0.0.1 (target + jump) for the whole session; stopped with their agents at the end."""
    root = tmp_path_factory.mktemp("ssh")
    user_key = keygen(root / "id_ed25519", comment="wattlab-test-user")
    target = Sshd(root / "target", user_key, "target")
    jump = Sshd(root / "jump", user_key, "jump")
    env_patch = pytest.MonkeyPatch()
    # built agent zipapps go to a tmp cache, not the real ~/.cache (console subprocesses inherit it)
    env_patch.setenv("WATTLAB_CACHE", str(root / "console-cache"))
    try:
        target.start()
        jump.start()
        known = root / "known_hosts"
        known.write_text(target.known_hosts_line() + jump.known_hosts_line())
        home = root / "homes" / "shared"
        home.mkdir(parents=True)
        env = SshEnv(root, target, jump, user_key, root / "ssh_config", known, home)
        env.write_config(env.config, known)
        yield env
    finally:
        kill_agents_under(root)
        target.stop()
        jump.stop()
        env_patch.undo()
