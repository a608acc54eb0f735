"""Lab files: the named hosts an operator works with (profiles/lab.toml is the built-in one).

    [defaults]                 # optional, inherited by every host
    grid = "FR-ademe"
    [hosts.<name>]
    target = "local" | "sim:<hardware-id>" | "ssh://[user@]host[:port]" | "ssh://<ssh-config-alias>"
    device = "nvml:0"          # default device for measure/bench (sim targets default to themselves)
    grid = "DE-2024"           # profiles/grids.toml id or region
    pue = 1.5
    power_mode = "MAXN"        # recorded in run.json (the operator sets it on the board)
    python = "python3"         # remote interpreter for the agent
    ssh_config = "~/.ssh/config"  # and remote_home: where the agent lives on the host
    connect_timeout_s = 15     # also request_timeout_s, stall_after_s, lost_after_s,
    reconnect_on_stall_s = 30  # silent this long (a partition, a hung session): drop the channel and redial

`sim:` hosts are served by the local agent daemon through the same protocol as real devices.
A HOST argument is a lab host name, `local`, `sim:<hardware-id>` or an `ssh://` URL.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from console.compat import tomllib
from console.errors import ProfileError, UsageError
from console.link import LinkTimeouts
from console.paths import PROFILES_DIR
from console.profiles import find_line

DEFAULT_LAB = PROFILES_DIR / "lab.toml"
TIMEOUT_KEYS = ("connect_timeout_s", "request_timeout_s", "stall_after_s", "lost_after_s",
                "reconnect_on_stall_s")
HOST_KEYS = {"target", "device", "grid", "pue", "power_mode", "python", "ssh_config", "remote_home",
             *TIMEOUT_KEYS}


@dataclass(frozen=True)
class SshTarget:
    """Where an ssh:// target points; user/port None = from ~/.ssh/config or defaults."""

    host: str
    user: str | None = None
    port: int | None = None

    def url(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ssh://{user}{host}{port}"


@dataclass(frozen=True)
class Host:
    """One host of a lab, with its per-host defaults and timeouts."""

    name: str
    target: str
    device: str | None = None
    grid: str | None = None
    pue: float | None = None
    power_mode: str | None = None
    python: str | None = None
    ssh_config: str | None = None  # ssh client config for this host (default ~/.ssh/config)
    remote_home: str | None = None  # agent cache dir on the host
    timeouts: LinkTimeouts = field(default_factory=LinkTimeouts)
    source: str | None = None  # the lab file it came from

    def __post_init__(self) -> None:
        if self.device is None and self.target.startswith("sim:"):
            object.__setattr__(self, "device", self.target)  # a sim host measures its simulated device

    @property
    def kind(self) -> str:
        """"local" (local machine, also sim: targets) or "ssh"."""
        return "ssh" if self.target.startswith("ssh://") else "local"

    @property
    def timeout_s(self) -> float:
        """Connect timeout (what console.transport.ssh reads)."""
        return self.timeouts.connect_timeout_s

    @property
    def ssh(self) -> SshTarget | None:
        return parse_ssh_target(self.target) if self.kind == "ssh" else None


@dataclass(frozen=True)
class Lab:
    """A lab file: hosts in file order."""

    path: Path | None
    hosts: dict[str, Host]

    def host(self, name: str) -> Host:
        return resolve_host(name, self)


def parse_ssh_target(target: str) -> SshTarget:
    """`ssh://[user@]host[:port]` (or an ssh_config alias) -> SshTarget; UsageError when malformed."""
    parts = urlsplit(target)
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"bad port in {target!r}", fix="use ssh://[user@]host[:port]") from None
    if parts.scheme != "ssh" or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise UsageError(f"bad ssh target {target!r}", fix="use ssh://[user@]host[:port] or ssh://<alias>")
    return SshTarget(parts.hostname, parts.username, port)


def _check_target(target: str) -> str | None:
    """None when target is well formed, else why not."""
    if target == "local":
        return None
    if target.startswith("sim:"):
        return None if len(target) > 4 else "sim: needs a hardware id (sim:jetson-agx-orin-64gb)"
    if target.startswith("ssh://"):
        try:
            parse_ssh_target(target)
        except UsageError as exc:
            return exc.what
        return None
    return f"unknown target {target!r}: use local, sim:<hardware-id> or ssh://[user@]host[:port]"


def load_lab(path: str | os.PathLike[str] | None = None) -> Lab:
    """Read and validate a lab file (default profiles/lab.toml); ProfileError names file, key and line."""
    file = Path(path) if path is not None else DEFAULT_LAB
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError("lab file not found", path=str(file)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read lab file: {exc}", path=str(file)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"at line (\d+)", str(exc))
        line = getattr(exc, "lineno", None) or (int(match.group(1)) if match else None)
        raise ProfileError(f"TOML syntax error: {exc}", path=str(file), line=line) from None

    def fail(table: str, key: str | None, what: str, fix: str | None = None) -> ProfileError:
        dotted = ".".join(p for p in (table, key) if p)
        return ProfileError(what, path=str(file), key=dotted, line=find_line(text, table, key), fix=fix)

    for key in data:
        if key not in ("hosts", "defaults"):
            raise fail(key, None, f"unknown table [{key}] (expected [defaults] and [hosts.<name>])")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise fail("defaults", None, "[defaults] must be a table")
    hosts_raw = data.get("hosts", {})
    if not isinstance(hosts_raw, dict) or not hosts_raw:
        raise fail("hosts", None, "no [hosts.<name>] tables", fix='add [hosts.local] with target = "local"')
    _check_keys(defaults, "defaults", fail, allow_target=False)
    hosts: dict[str, Host] = {}
    for name, raw in hosts_raw.items():
        table = f"hosts.{name}"
        if not isinstance(raw, dict):
            raise fail(table, None, f"[{table}] must be a table")
        _check_keys(raw, table, fail, allow_target=True)
        merged = {**defaults, **raw}
        if "target" not in raw:
            raise fail(table, None, "missing required key 'target'", fix='target = "local" | "sim:<id>" | "ssh://..."')
        hosts[name] = _host(name, merged, str(file), table, fail)
    return Lab(file, hosts)


def _check_keys(raw: dict[str, Any], table: str, fail, *, allow_target: bool) -> None:
    for key, value in raw.items():
        if key not in HOST_KEYS or (key == "target" and not allow_target):
            raise fail(table, key, f"unknown key {key!r} (allowed: {', '.join(sorted(HOST_KEYS))})")
        if key in ("pue", *TIMEOUT_KEYS):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise fail(table, key, f"{key} must be a number > 0, got {value!r}")
            if key == "pue" and value < 1.0:
                raise fail(table, key, f"pue must be >= 1.0, got {value!r}")
        elif not isinstance(value, str) or not value:
            raise fail(table, key, f"{key} must be a non-empty string, got {value!r}")
    if "target" in raw and (why := _check_target(raw["target"])):
        raise fail(table, "target", why)


def _host(name: str, raw: dict[str, Any], source: str | None, table: str = "", fail=None) -> Host:
    target = raw["target"]
    timeouts = LinkTimeouts(**{k: float(raw[k]) for k in TIMEOUT_KEYS if k in raw})
    if timeouts.lost_after_s <= timeouts.stall_after_s and fail is not None:
        raise fail(table, "lost_after_s", "lost_after_s must be longer than stall_after_s")
    if timeouts.reconnect_on_stall_s <= timeouts.stall_after_s and fail is not None:
        raise fail(table, "reconnect_on_stall_s", "reconnect_on_stall_s must be longer than stall_after_s")
    device = raw.get("device") or (target if target.startswith("sim:") else None)
    return Host(name=name, target=target, device=device, grid=raw.get("grid"),
                pue=float(raw["pue"]) if "pue" in raw else None, power_mode=raw.get("power_mode"),
                python=raw.get("python"), ssh_config=raw.get("ssh_config"),
                remote_home=raw.get("remote_home"), timeouts=timeouts, source=source)


def resolve_host(arg: str, lab: Lab | None = None) -> Host:
    """A HOST argument -> Host: a lab host name first, then `local`, `sim:<id>`, `ssh://...`."""
    lab = lab if lab is not None else _default_lab_or_none()
    if lab is not None and arg in lab.hosts:
        return lab.hosts[arg]
    defaults: dict[str, Any] = {}
    if lab is not None and "local" in lab.hosts:
        # ad-hoc hosts inherit the lab's defaults (grid, ...) through its local host
        local = lab.hosts["local"]
        defaults = {"grid": local.grid} if local.grid else {}
    if arg == "local" or arg.startswith("sim:") or arg.startswith("ssh://"):
        why = _check_target(arg)
        if why:
            raise UsageError(why, where=f"host {arg}")
        name = parse_ssh_target(arg).host if arg.startswith("ssh://") else arg
        return _host(name, {**defaults, "target": arg}, None)
    known = ", ".join(lab.hosts) if lab is not None else "none"
    raise UsageError(f"unknown host {arg!r}", where=str(lab.path) if lab and lab.path else None,
                     fix=f"use a lab host ({known}), local, sim:<hardware-id> or ssh://[user@]host[:port]")


def with_overrides(host: Host, **fields: Any) -> Host:
    """A copy of host with the given non-None fields replaced (CLI options over lab defaults)."""
    return dataclasses.replace(host, **{k: v for k, v in fields.items() if v is not None})


def _default_lab_or_none() -> Lab | None:
    try:
        return load_lab(DEFAULT_LAB)
    except ProfileError:
        return None
