"""SSH transport (paramiko), modelled on fabric's Connection: ssh_config aware, strict host keys.

Honours from the ssh config: HostName, User, Port, IdentityFile, IdentitiesOnly, ProxyJump (each
hop chained over a direct-tcpip channel, like fabric's gateway), ProxyCommand, UserKnownHostsFile,
GlobalKnownHostsFile, HostKeyAlias, ServerAliveInterval, ConnectTimeout. Keys come from the
IdentityFiles, else ssh-agent and the default ~/.ssh/id_*; there is never a password prompt.
The config file is ~/.ssh/config, or $WATTLAB_SSH_CONFIG, or the host's `ssh_config` in the lab.
A hop's own ProxyJump is not followed (list the whole chain in the target's ProxyJump instead).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paramiko

from console.errors import HostError, HostKeyError
from console.transport import hostkeys
from console.transport.base import Channel, Transport

# paramiko logs every failed handshake with a traceback; without a handler Python's last-resort
# handler would print it on the operator's terminal. We report each failure as one HostError instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_KEEPALIVE_S = 15  # an idle NAT or firewall drops silent TCP flows after minutes; stay well under
STDERR_TAIL_BYTES = 4096


# --- per-host options and ssh_config resolution ----------------------------------------------------


@dataclass(frozen=True)
class SshOptions:
    """Per-host settings from the lab file that are not ssh_config's business."""

    python: str = "python3"
    remote_home: str | None = None
    timeout_s: float | None = None  # connect timeout per hop; the stricter of this and ConnectTimeout applies
    ssh_config: Path | None = None

    @classmethod
    def from_host(cls, host_cfg: Any) -> SshOptions:
        """Read the options from a lab Host (or any object / dict with those attribute names)."""
        if host_cfg is None:
            return cls()
        get = host_cfg.get if isinstance(host_cfg, dict) else lambda k, d=None: getattr(host_cfg, k, d)
        cfg = get("ssh_config")
        timeout = get("timeout_s")
        return cls(python=get("python") or "python3", remote_home=get("remote_home") or None,
                   timeout_s=float(timeout) if timeout else None, ssh_config=Path(cfg) if cfg else None)


def ssh_config_path(explicit: Path | None = None) -> Path:
    """The ssh client config to read: explicit, else $WATTLAB_SSH_CONFIG, else ~/.ssh/config."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("WATTLAB_SSH_CONFIG")
    return Path(env).expanduser() if env else Path("~/.ssh/config").expanduser()


def load_ssh_config(path: Path) -> paramiko.SSHConfig:
    """Parse the config file; a missing file is an empty config (as for ssh)."""
    return paramiko.SSHConfig.from_path(str(path)) if path.is_file() else paramiko.SSHConfig()


@dataclass(frozen=True)
class Endpoint:
    """One SSH hop, fully resolved from what the user typed plus the ssh config."""

    alias: str
    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...]
    identities_only: bool
    connect_timeout_s: float
    keepalive_s: int
    known_user: tuple[Path, ...]
    known_global: tuple[Path, ...]
    host_key_alias: str | None = None
    proxy_jump: tuple[str, ...] = ()
    proxy_command: str | None = None

    @property
    def key_name(self) -> str:
        return hostkeys.key_name(self.host_key_alias or self.hostname, self.port)

    def __str__(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


def parse_target(target: str) -> tuple[str | None, str, int | None]:
    """`ssh://[user@]host[:port]` or `[user@]host[:port]` -> (user, host, port)."""
    text = target if "://" in target else "ssh://" + target
    parts = urlsplit(text)
    if parts.scheme != "ssh" or not parts.hostname:
        raise HostError(target, "not an SSH target",
                        fix="write it as ssh://[user@]host[:port] or a Host alias")
    try:
        port = parts.port
    except ValueError as exc:
        raise HostError(target, f"bad port in SSH target: {exc}") from exc
    # not parts.hostname: it is lowercased, and paramiko matches `Host` patterns case-sensitively
    hostport = parts.netloc.rpartition("@")[2]
    host = hostport[1:hostport.index("]")] if hostport.startswith("[") else hostport.partition(":")[0]
    return parts.username, host, port


def resolve(target: str, config: paramiko.SSHConfig, timeout_s: float | None = None) -> Endpoint:
    """Apply the ssh config to a target; an explicit user/port in the target wins (as with ssh -p)."""
    user, alias, port = parse_target(target)
    cfg = config.lookup(alias)
    known_user, known_global = hostkeys.known_hosts_files(cfg)
    jump = cfg.get("proxyjump")
    # the lab's timeout and ssh_config's ConnectTimeout are both limits the user set: the stricter wins
    limits = [t for t in (timeout_s, _float(cfg.get("connecttimeout"))) if t]
    timeout = min(limits) if limits else DEFAULT_CONNECT_TIMEOUT_S
    alive = _float(cfg.get("serveraliveinterval"))
    keepalive = DEFAULT_KEEPALIVE_S if alive is None else int(alive)  # 0 turns keepalives off, as in ssh
    return Endpoint(
        alias=alias,
        hostname=cfg.get("hostname", alias),
        port=port or int(cfg.get("port", 22)),
        user=user or cfg.get("user") or _local_user(),
        key_files=tuple(os.path.expanduser(p) for p in cfg.get("identityfile", [])),
        identities_only=cfg.get("identitiesonly", "no").lower() == "yes",
        connect_timeout_s=timeout,
        keepalive_s=keepalive,
        known_user=tuple(known_user),
        known_global=tuple(known_global),
        host_key_alias=cfg.get("hostkeyalias"),
        proxy_jump=tuple(h.strip() for h in jump.split(",")) if jump and jump.lower() != "none" else (),
        proxy_command=cfg.get("proxycommand") if cfg.get("proxycommand", "none").lower() != "none" else None,
    )


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _local_user() -> str:
    import getpass

    return getpass.getuser()


# --- connecting ----------------------------------------------------------------------------------


class _KeyCaptured(Exception):
    """Raised inside the host-key policy to stop before authentication (`--accept-new`)."""

    def __init__(self, key: paramiko.PKey) -> None:
        super().__init__("captured")
        self.key = key


def _connect_hop(ep: Endpoint, host: str, sock: Any, accept_hint: str,
                 capture: bool = False) -> paramiko.SSHClient:
    files = [*ep.known_user, *ep.known_global]
    keys = hostkeys.load_host_keys(files)

    def on_unknown(key: paramiko.PKey) -> None:
        raise _KeyCaptured(key)

    client = paramiko.SSHClient()
    # No host keys are loaded into the client itself: the policy below is then always consulted and
    # does the whole check (several files, HostKeyAlias, both fingerprints on a change).
    client.set_missing_host_key_policy(hostkeys.StrictHostKeyPolicy(
        host, ep.key_name, keys, files, accept_hint, on_unknown if capture else None))
    prefer = hostkeys.preferred_key_types(keys, ep.key_name)

    def transport_factory(sock: Any, **kw: Any) -> paramiko.Transport:
        t = paramiko.Transport(sock, **kw)
        if prefer:
            opts = t.get_security_options()
            first = [k for k in prefer if k in opts.key_types]
            opts.key_types = first + [k for k in opts.key_types if k not in first]
        return t

    if sock is None and ep.proxy_command:
        sock = paramiko.ProxyCommand(ep.proxy_command)
    try:
        client.connect(
            ep.hostname, ep.port, username=ep.user,
            key_filename=list(ep.key_files) or None,
            look_for_keys=not ep.key_files,
            allow_agent=not ep.identities_only,
            timeout=ep.connect_timeout_s, banner_timeout=ep.connect_timeout_s,
            auth_timeout=ep.connect_timeout_s, channel_timeout=ep.connect_timeout_s,
            sock=sock, transport_factory=transport_factory,
        )
    except BaseException as exc:
        client.close()
        if isinstance(exc, (HostKeyError, _KeyCaptured)):
            raise
        raise _connect_error(host, ep, exc) from exc
    client.get_transport().set_keepalive(ep.keepalive_s)
    return client


def _connect_error(host: str, ep: Endpoint, exc: BaseException) -> BaseException:
    # paramiko reports a silent server as SSHException, not as a timeout: no banner, or a key
    # exchange still unfinished when start_client(timeout) gives up ("No existing session")
    text = str(exc).lower()
    silent = isinstance(exc, paramiko.SSHException) and ("banner" in text or "no existing session" in text)
    if silent or isinstance(exc, TimeoutError):
        return HostError(host, f"no answer from {ep.hostname}:{ep.port} within {ep.connect_timeout_s:g} s",
                         fix="check that the host is up and reachable; raise timeout_s in the lab file "
                         "or ConnectTimeout in ssh config for slow links")
    if isinstance(exc, (paramiko.ssh_exception.NoValidConnectionsError, ConnectionRefusedError)):
        return HostError(host, f"connection refused by {ep.hostname}:{ep.port}",
                         fix="is sshd running there, and is the Port in your ssh config right?")
    if isinstance(exc, socket.gaierror):
        return HostError(host, f"cannot resolve host name {ep.hostname!r}",
                         fix="check the name, or set HostName for it in your ssh config")
    if isinstance(exc, paramiko.AuthenticationException):
        tried = ", ".join(ep.key_files) if ep.key_files else "ssh-agent and ~/.ssh/id_*"
        return HostError(host, f"authentication failed as {ep} (keys tried: {tried})",
                         fix="install your public key there (`ssh-copy-id`), set IdentityFile in your "
                         "ssh config, or `ssh-add` an encrypted key; wattlab never asks for passwords")
    if isinstance(exc, (paramiko.SSHException, OSError, EOFError)):
        return HostError(host, f"SSH to {ep} failed: {exc or type(exc).__name__}")
    return exc


class SshConnection:
    """An authenticated SSH connection to one host, possibly through jump hosts."""

    def __init__(self, host: str, endpoint: Endpoint, clients: list[paramiko.SSHClient],
                 jumps: list[Endpoint] | None = None) -> None:
        self.host = host
        self.endpoint = endpoint
        self.jumps = jumps or []
        self._clients = clients  # jump hops first, the target last

    @property
    def client(self) -> paramiko.SSHClient:
        return self._clients[-1]

    @property
    def route(self) -> list[str]:
        """`user@host:port` of every hop, the target last (for messages and tests)."""
        return [str(ep) for ep in [*self.jumps, self.endpoint]]

    @property
    def active(self) -> bool:
        t = self.client.get_transport()
        return bool(t and t.is_active())

    def open_session(self) -> paramiko.Channel:
        """A new session channel (exec) on the target."""
        t = self.client.get_transport()
        if t is None or not t.is_active():
            raise HostError(self.host, "the SSH connection is closed")
        return t.open_session(timeout=self.endpoint.connect_timeout_s)

    def run(self, command: str, timeout_s: float) -> tuple[int, str, str]:
        """Run a short command; (exit status, stdout, stderr). HostError on timeout."""
        chan = self.open_session()
        try:
            chan.settimeout(timeout_s)
            chan.exec_command(command)
            # stdout first, then stderr: short commands only, whose stderr fits the channel window (2 MiB)
            out = _read_all(chan.recv)
            err = _read_all(chan.recv_stderr)
            rc = chan.recv_exit_status()
            return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        except TimeoutError as exc:
            raise HostError(self.host, f"command did not finish within {timeout_s:g} s: {command[:120]}",
                            ) from exc
        finally:
            chan.close()

    def open_sftp(self) -> paramiko.SFTPClient:
        return self.client.open_sftp()

    def close(self) -> None:
        for c in reversed(self._clients):
            c.close()


def _read_all(read: Any) -> bytes:
    buf = bytearray()
    while data := read(65536):
        buf += data
    return bytes(buf)


def _open_chain(
    host: str, target: str, config: paramiko.SSHConfig, timeout_s: float | None, capture_last: bool = False,
) -> tuple[list[Endpoint], list[paramiko.SSHClient], paramiko.PKey | None]:
    ep = resolve(target, config, timeout_s)
    hops = [resolve(h, config, timeout_s) for h in ep.proxy_jump]
    hint = f"wattlab hosts --accept-new {host}"
    clients: list[paramiko.SSHClient] = []
    try:
        sock = None
        onward = [*hops[1:], ep] if hops else []  # each hop tunnels to the next one, the last to the target
        for hop, nxt in zip(hops, onward, strict=True):
            clients.append(_connect_hop(hop, host, sock, f"wattlab hosts --accept-new {hop.alias}"))
            try:
                sock = clients[-1].get_transport().open_channel(
                    "direct-tcpip", (nxt.hostname, nxt.port), ("127.0.0.1", 0), timeout=hop.connect_timeout_s)
            except (paramiko.SSHException, OSError) as exc:
                raise HostError(
                    host, f"jump host {hop} could not open a tunnel to {nxt.hostname}:{nxt.port}: {exc}",
                    fix="check AllowTcpForwarding on the jump host and the next hop's address") from exc
        try:
            clients.append(_connect_hop(ep, host, sock, hint, capture=capture_last))
        except _KeyCaptured as cap:
            for c in reversed(clients):
                c.close()
            return [*hops, ep], [], cap.key
        return [*hops, ep], clients, None
    except BaseException:
        for c in reversed(clients):
            c.close()
        raise


def connect(target: str, options: SshOptions | None = None, host: str | None = None) -> SshConnection:
    """Open an authenticated connection to `target` (alias, host, or ssh:// URL); strict host keys."""
    options = options or SshOptions()
    host = host or target
    config = load_ssh_config(ssh_config_path(options.ssh_config))
    route, clients, _ = _open_chain(host, target, config, options.timeout_s)
    return SshConnection(host, route[-1], clients, route[:-1])


def accept_new_host_key(target: str, options: SshOptions | None = None,
                        host: str | None = None) -> tuple[str, str, Path | None]:
    """Record the target's host key if none is known yet: (key name, fingerprint, file written or None
    when it was already known). Jump hosts must already be known. A changed key is still refused."""
    options = options or SshOptions()
    host = host or target
    config = load_ssh_config(ssh_config_path(options.ssh_config))
    route, clients, key = _open_chain(host, target, config, options.timeout_s, capture_last=True)
    ep = route[-1]
    if key is None:
        # already known and matching: the connection (with auth) went through
        fp = hostkeys.fingerprint(clients[-1].get_transport().get_remote_server_key())
        for c in reversed(clients):
            c.close()
        return ep.key_name, fp, None
    if not ep.known_user:
        raise HostKeyError(host, "no UserKnownHostsFile to record the key in (it is set to none)",
                           fix="set UserKnownHostsFile in your ssh config")
    path = ep.known_user[0]
    hostkeys.append_known_host(path, ep.key_name, key)
    return ep.key_name, hostkeys.fingerprint(key), path


# --- the transport the link uses ----------------------------------------------------------------


class SshChannel(Channel):
    """The agent bridge's stdio over one SSH exec channel."""

    def __init__(self, chan: paramiko.Channel, description: str,
                 on_close: Callable[[SshChannel], None] | None = None) -> None:
        self._chan = chan
        self.description = description
        self._on_close = on_close
        self._stderr = bytearray()
        # sendall() is several send() calls: two writer threads must not interleave their lines
        self._send_lock = threading.Lock()

    def send(self, data: bytes) -> None:
        """Send all bytes (thread-safe); ConnectionError once the channel or the connection is gone."""
        try:
            with self._send_lock:
                self._chan.sendall(data)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise ConnectionError(f"{self.description}: send failed: {exc}") from exc

    def recv(self, n: int = 65536) -> bytes:
        """Block for up to n bytes; b'' at EOF (bridge exited or the connection dropped)."""
        try:
            data = self._chan.recv(n)
        except (OSError, paramiko.SSHException, EOFError):
            data = b""
        self._drain_stderr()
        return data

    def _drain_stderr(self) -> None:
        # the bridge's stderr shares the channel window with stdout: read it so it can never block stdout
        while self._chan.recv_stderr_ready():
            self._stderr += self._chan.recv_stderr(65536)
            del self._stderr[:-STDERR_TAIL_BYTES]

    @property
    def stderr_tail(self) -> str:
        """The last few KiB the bridge wrote to stderr (for error messages)."""
        self._drain_stderr()
        return self._stderr.decode("utf-8", "replace")

    @property
    def closed(self) -> bool:
        return self._chan.closed or self._chan.eof_received

    def close(self) -> None:
        # closing stdin makes the bridge exit; jobs live in the daemon and are not affected
        self._chan.close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close(self)


@dataclass(eq=False)
class SshTransport(Transport):
    """Reaches one host's agent over SSH: connects (and reconnects) lazily, deploys once, opens bridges."""

    target: str
    options: SshOptions = field(default_factory=SshOptions)
    host: str = ""
    _conn: SshConnection | None = field(default=None, repr=False)
    _agent: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _bridges: set[SshChannel] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self.host = self.host or self.target

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"ssh {self._conn.endpoint if self._conn else self.target}"

    def connection(self) -> SshConnection:
        """The live connection, reconnecting when the previous one dropped."""
        with self._lock:
            if self._conn is None or not self._conn.active:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                self._conn = connect(self.target, self.options, self.host)
            return self._conn

    def agent(self, probe: bool = True) -> Any:
        """The deployed agent (console.deploy.AgentInfo), deploying on first use."""
        from console.deploy import deploy

        if self._agent is None or (probe and not self._agent.probe):
            conn = self.connection()
            try:
                self._agent = deploy(
                    conn, python=self.options.python, remote_home=self.options.remote_home,
                    timeout_s=self.options.timeout_s or DEFAULT_CONNECT_TIMEOUT_S, probe=probe)
            except (paramiko.SSHException, EOFError, OSError) as exc:  # the connection died mid-deploy
                raise HostError(self.host, f"connection to {conn.endpoint} lost while deploying the agent: "
                                f"{exc or type(exc).__name__}") from exc
        return self._agent

    def open_bridge(self) -> SshChannel:
        """Deploy if needed, start `agent bridge` on the host, return its stdio as a Channel."""
        agent = self.agent(probe=False)
        conn = self.connection()
        try:
            chan = conn.open_session()
            chan.exec_command(agent.command("bridge"))
        except (paramiko.SSHException, EOFError, OSError) as exc:
            # paramiko hands out the dead connection's own exception (often a bare EOFError)
            raise HostError(self.host, f"could not start the agent bridge over {conn.endpoint}: "
                            f"{exc or type(exc).__name__}") from exc
        bridge = SshChannel(chan, f"ssh {conn.endpoint} agent-{agent.hash}", on_close=self._bridge_closed)
        with self._lock:
            self._bridges.add(bridge)
        return bridge

    def _bridge_closed(self, bridge: SshChannel) -> None:
        # The link opens a new transport per reconnect and may never close the old one: the SSH
        # connection goes with its last bridge, so nothing stays open behind a closed channel.
        with self._lock:
            self._bridges.discard(bridge)
            if not self._bridges and self._conn is not None:
                self._conn.close()
                self._conn = None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def open_transport(target: str, host_cfg: Any = None) -> SshTransport:
    """The fleet's entry point for `ssh://` targets (and ssh config aliases); connects on first use."""
    options = SshOptions.from_host(host_cfg)
    name = getattr(host_cfg, "name", None) or (host_cfg.get("name") if isinstance(host_cfg, dict) else None)
    return SshTransport(target, options, host=name or target)
