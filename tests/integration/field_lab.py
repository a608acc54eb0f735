"""A small field lab for fault tests: several real sshd hosts, each behind its own kind of network, and
the lab file, ssh_config and known_hosts that point the console at them (never the real ~/.ssh).

Kinds of host:
- loopback: an sshd on 127.0.0.1 (faults: SIGSTOP its sessions, kill its sessions, stop it);
- netns:    an sshd inside a network namespace over a veth pair (fault: link down/up, a partition);
- relayed:  an sshd on 127.0.0.1 reached through a faults.TcpRelay (delay, jitter, loss, byte drops).
Each host has its own remote home, so each runs its own agent daemon. close() stops everything the lab
started: relays, agent daemons, sshd and their sessions, namespaces.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.lab import Host, Lab, load_lab
from tests.integration.conftest import kill_agents_under
from tests.integration.faults import NetNamespace, TcpRelay, can_make_netns
from tests.integration.netns_sshd import NetnsSshd
from tests.integration.sshd import Sshd, keygen


@dataclass
class FieldHost:
    """One host of the field lab: its lab/ssh name, its sshd, and the fault handle of its network."""

    name: str
    device: str  # the agent device the host measures: sim:<hardware-id>
    sshd: Sshd
    home: Path  # the remote home (agent zipapp, daemon socket, spools)
    ns: NetNamespace | None = None
    relay: TcpRelay | None = None

    @property
    def dial(self) -> tuple[str, int]:
        """The address the console connects to."""
        if self.relay is not None:
            return "127.0.0.1", self.relay.port
        return self.sshd.listen, self.sshd.port


class FieldLab:
    """Build hosts with add_*(), then lab() writes the files and returns the console's Lab."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.user_key = keygen(root / "id_ed25519", comment="wattlab-field-user")
        self.ssh_config = root / "ssh_config"
        self.known_hosts = root / "known_hosts"
        self.lab_file = root / "lab.toml"
        self.hosts: dict[str, FieldHost] = {}
        self._namespaces: list[NetNamespace] = []

    def _home(self, name: str) -> Path:
        home = self.root / "homes" / name
        home.mkdir(parents=True, exist_ok=True)
        return home

    def add_loopback(self, name: str, device: str) -> FieldHost:
        sshd = Sshd(self.root / name, self.user_key, name).start()
        return self._add(FieldHost(name, device, sshd, self._home(name)))

    def add_netns(self, name: str, device: str) -> FieldHost:
        reason = can_make_netns()
        if reason:  # the partition is the point of these tests: fail loudly, never skip
            raise RuntimeError(f"network-namespace fault tests must run here: {reason}")
        ns = NetNamespace().create()
        self._namespaces.append(ns)
        sshd = NetnsSshd(self.root / name, self.user_key, ns, name).start()
        return self._add(FieldHost(name, device, sshd, self._home(name), ns=ns))

    def add_relayed(self, name: str, device: str, **relay: Any) -> FieldHost:
        sshd = Sshd(self.root / name, self.user_key, name).start()
        proxy = TcpRelay(("127.0.0.1", sshd.port), **relay).start()
        return self._add(FieldHost(name, device, sshd, self._home(name), relay=proxy))

    def _add(self, host: FieldHost) -> FieldHost:
        self.hosts[host.name] = host
        return host

    def lab(self, python: str | None = None, hosts: dict[str, dict[str, float]] | None = None,
            **timeouts: float) -> Lab:
        """Write ssh_config, known_hosts and lab.toml and load the lab: `timeouts` are lab keys for
        [defaults], `hosts` per-host lab keys ({"wl-a": {"lost_after_s": 3}}).

        python: the hosts' interpreter; by default this one's real binary, which skips a pyenv shim
        (seconds per SSH command on a loaded box)."""
        python = python or os.path.realpath(sys.executable)
        known, config = [], []
        for h in self.hosts.values():
            addr, port = h.dial
            key = Path(str(h.sshd.host_key) + ".pub").read_text().split()
            known.append(f"[{addr}]:{port} {key[0]} {key[1]}\n")
            config.append(
                f"Host {h.name}\n  HostName {addr}\n  Port {port}\n  User {getpass.getuser()}\n"
                f"  IdentityFile {self.user_key}\n  IdentitiesOnly yes\n"
                f"  UserKnownHostsFile {self.known_hosts}\n  GlobalKnownHostsFile none\n"
                "  ServerAliveInterval 2\n"
            )
        self.known_hosts.write_text("".join(known))
        self.ssh_config.write_text("\n".join(config))
        lines = ["[defaults]", 'grid = "FR-ademe"', f'python = "{python}"',
                 *(f"{k} = {v}" for k, v in timeouts.items()), ""]
        for h in self.hosts.values():
            lines += [f"[hosts.{h.name}]", f'target = "ssh://{h.name}"', f'device = "{h.device}"',
                      f'ssh_config = "{self.ssh_config}"', f'remote_home = "{h.home}"',
                      *(f"{k} = {v}" for k, v in (hosts or {}).get(h.name, {}).items()), ""]
        self.lab_file.write_text("\n".join(lines))
        return load_lab(self.lab_file)

    def close(self) -> None:
        """Stop relays, agent daemons, sshd (with their sessions) and namespaces; never raises."""
        for h in self.hosts.values():
            if h.relay is not None:
                h.relay.close()
        kill_agents_under(self.root)
        for h in self.hosts.values():
            try:
                h.sshd.stop()
            except Exception:  # one stuck sshd must not leave the namespaces behind
                pass
        for ns in self._namespaces:
            ns.destroy()

    def __enter__(self) -> FieldLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def with_timeouts(lab: Lab, only: tuple[str, ...] | None = None, **timeouts: float) -> Lab:
    """The lab with LinkTimeouts fields that are not lab keys (backoff_initial_s, backoff_max_s) set,
    on every host or on the `only` ones."""
    hosts: dict[str, Host] = {
        name: dataclasses.replace(h, timeouts=dataclasses.replace(h.timeouts, **timeouts))
        if only is None or name in only else h
        for name, h in lab.hosts.items()
    }
    return Lab(lab.path, hosts)
