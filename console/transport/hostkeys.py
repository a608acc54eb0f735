"""Strict SSH host-key checking against the user's known_hosts files (never AutoAddPolicy).

An unknown key is refused with a message saying how to accept it; a changed key is refused
loudly with both SHA256 fingerprints. `wattlab hosts --accept-new HOST` appends the key to the
first UserKnownHostsFile in effect for that host (default ~/.ssh/known_hosts), the same file and
format `ssh -o StrictHostKeyChecking=accept-new` would write, so wattlab and `ssh` agree on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import paramiko

from console.errors import HostKeyError

DEFAULT_USER_FILES = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_FILES = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


def key_name(host: str, port: int) -> str:
    """The name a host is stored under in known_hosts: `host`, or `[host]:port` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style `SHA256:...` fingerprint, what `ssh-keygen -lf` prints."""
    return key.fingerprint


def known_hosts_files(cfg: dict) -> tuple[list[Path], list[Path]]:
    """(user files, global files) from an ssh_config lookup result, `~` expanded."""
    user = cfg.get("userknownhostsfile")
    glob = cfg.get("globalknownhostsfile")
    # paramiko returns these options as one string; OpenSSH allows several files separated by spaces
    user_files = user.split() if isinstance(user, str) else list(user or DEFAULT_USER_FILES)
    global_files = glob.split() if isinstance(glob, str) else list(glob or DEFAULT_GLOBAL_FILES)
    return ([Path(os.path.expanduser(p)) for p in user_files if p.lower() != "none"],
            [Path(os.path.expanduser(p)) for p in global_files if p.lower() != "none"])


def load_host_keys(files: Sequence[Path]) -> paramiko.HostKeys:
    """All entries of the files that exist, merged (hashed names are supported by paramiko)."""
    keys = paramiko.HostKeys()
    for path in files:
        if path.is_file():
            keys.load(str(path))
    return keys


def preferred_key_types(keys: paramiko.HostKeys, name: str) -> list[str]:
    """Key types already known for `name`, so the server is asked for one we can verify (as ssh does)."""
    entry = keys.lookup(name)
    if not entry:
        return []
    out = []
    for ktype in entry.keys():
        # an RSA key in known_hosts is negotiated as one of the SHA-2 signature algorithms
        out.extend(["rsa-sha2-512", "rsa-sha2-256", ktype] if ktype == "ssh-rsa" else [ktype])
    return out


class StrictHostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Verifies the server key against known_hosts itself: the SSHClient is given no host keys, so
    paramiko always calls us, and we can honour HostKeyAlias and several files with one message."""

    def __init__(self, host: str, name: str, keys: paramiko.HostKeys, files: Sequence[Path],
                 accept_hint: str, on_unknown: Callable[[paramiko.PKey], None] | None = None) -> None:
        self.host = host
        self.name = name
        self.keys = keys
        self.files = list(files)
        self.accept_hint = accept_hint
        self.on_unknown = on_unknown

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        known = self.keys.lookup(self.name)
        if not known:
            if self.on_unknown is not None:
                self.on_unknown(key)
                return
            raise HostKeyError(
                self.host,
                f"unknown SSH host key for {self.name} ({key.get_name()} {fingerprint(key)}); refused",
                fix=f"check the fingerprint, then run `{self.accept_hint}` "
                "(or `ssh` to it once and answer yes); "
                f"known_hosts files searched: {', '.join(map(str, self.files))}",
            )
        if known.get(key.get_name()) == key:
            return
        others = ", ".join(f"{t} {fingerprint(k)}" for t, k in known.items())
        raise HostKeyError(
            self.host,
            "REMOTE HOST IDENTIFICATION HAS CHANGED for "
            f"{self.name}: it offered {key.get_name()} {fingerprint(key)} but known_hosts has {others}. "
            "Someone could be intercepting the connection (or the host was reinstalled); refused",
            fix=f"if the change is expected, remove the old key with `ssh-keygen -R '{self.name}'` "
            f"(known_hosts files: {', '.join(map(str, self.files))}) and accept the new one",
        )


def append_known_host(path: Path, name: str, key: paramiko.PKey) -> None:
    """Append one `name type base64` line (never rewrite the file: the user's comments and hashed
    entries stay as they are). Creates the file 0600 and its directory 0700 when missing."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:
        if f.tell() > 0:
            # a file whose last line lacks its newline would glue our entry onto it
            with open(path, "rb") as r:
                r.seek(-1, os.SEEK_END)
                if r.read(1) != b"\n":
                    f.write("\n")
        f.write(f"{name} {key.get_name()} {key.get_base64()}\n")
