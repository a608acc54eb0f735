"""A throwaway OpenSSH sshd on 127.0.0.1 for integration tests.

Everything lives in one tmp directory: host key, user key, authorized_keys, sshd_config, pid file,
and a client-side ssh_config + known_hosts that the console is pointed at (never the real ~/.ssh).
The server runs as the current user (root in CI: `PermitRootLogin prohibit-password`), key auth only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (sshd binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, comment: str = "wattlab-test") -> Path:
    """Generate an unencrypted ed25519 key pair at `path` / `path.pub`."""
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL)
    return path


def _children(pid: int) -> list[int]:
    """Direct children of `pid`, read from /proc (no psutil in the venv)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the comm field may contain spaces: ppid is the 2nd field after the closing parenthesis
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


class Sshd:
    """One sshd process. `start()` blocks until it answers with an SSH banner; `stop()` kills it."""

    listen = "127.0.0.1"  # subclasses serve other addresses (tests/integration/netns_sshd.py)

    def __init__(self, root: Path, user_key: Path, name: str = "sshd") -> None:
        self.root = root
        self.name = name
        self.user_key = user_key
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.host_key = root / "ssh_host_ed25519_key"
        self.config = root / "sshd_config"
        self.log = root / "sshd.log"

    def start(self, timeout_s: float = 10.0) -> Sshd:
        """Start (or restart, on the same port) and wait for the SSH banner."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.host_key.exists():
            keygen(self.host_key, comment=f"{self.name}-host")
        # sshd refuses to start without its privilege-separation directory
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.port = self.port or self._pick_port()
        self.write_config()
        with open(self.log, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection((self.listen, self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-2.0"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd on {self.listen}:{self.port} did not answer within {timeout_s} s")

    def _pick_port(self) -> int:
        return free_port()

    def argv(self) -> list[str]:
        """The command line that runs this sshd in the foreground, logging to stderr."""
        return [SSHD, "-D", "-e", "-f", str(self.config)]

    def write_config(self) -> None:
        """authorized_keys + sshd_config: key auth only, as the current user, on listen:port."""
        auth = self.root / "authorized_keys"
        auth.write_text(Path(str(self.user_key) + ".pub").read_text())
        self.config.write_text(
            "\n".join([
                f"ListenAddress {self.listen}",
                f"Port {self.port}",
                f"HostKey {self.host_key}",
                f"PidFile {self.root / 'sshd.pid'}",
                f"AuthorizedKeysFile {auth}",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "StrictModes no",
                "UsePAM no",
                "AllowTcpForwarding yes",
                # many consoles' links at once (bench: 32 hosts on one sshd); the default 10:30:100
                # randomly drops unauthenticated connections beyond 10
                "MaxStartups 200",
                "MaxSessions 200",
                "PrintMotd no",
                "LogLevel VERBOSE",
                "Subsystem sftp internal-sftp",
                "",
            ])
        )

    def stop(self) -> None:
        """Stop the listener and every session it forked (their pids are children of the listener)."""
        if self.proc is None:
            return
        for pid in self.session_pids():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None

    def session_pids(self) -> list[int]:
        """The per-connection sshd processes (killing one drops that SSH connection)."""
        return _children(self.proc.pid) if self.proc else []

    def known_hosts_line(self) -> str:
        """The known_hosts entry OpenSSH writes for this server (`[127.0.0.1]:port type key`)."""
        pub = Path(str(self.host_key) + ".pub").read_text().split()
        return f"[{self.listen}]:{self.port} {pub[0]} {pub[1]}\n"
