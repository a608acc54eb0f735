"""Ship the agent to a device: build the content-hashed zipapp once, copy it over SFTP, check it runs.

Remote layout (`<home>` is the login home, or the host's `remote_home` when the lab sets one):
    <home>/.cache/wattlab/agent-<hash>.pyz     the agent; a new hash means a new agent
    <home>/.cache/wattlab/agent/               the agent's own home (daemon socket, spools)
With `remote_home` set, the agent runs as `env HOME=<remote_home> WATTLAB_AGENT_HOME=... python3 ...`
so nothing is written to the real home (read-only homes, shared accounts, and the test suite).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agents import AGENT_VERSION
from agents.pack import build_zipapp, collect
from console.errors import HostError
from console.paths import AGENTS_DIR, user_cache_dir

MIN_PYTHON = (3, 6)
PYZ_RE = re.compile(r"^agent-([0-9a-f]{16})\.pyz$")
HASH_LEN = 16
LOCAL_BUILDS_KEPT = 4
PROBE_TIMEOUT_S = 60.0  # the first probe may import jtop / initialise NVML, slow on a Jetson Nano
COMMAND_TIMEOUT_S = 30.0  # a short remote command on a loaded board (Python start-up alone can take 1-2 s)


class RemoteShell(Protocol):
    """What deploy needs from a connection (console.transport.ssh.SshConnection provides it)."""

    host: str

    def run(self, command: str, timeout_s: float) -> tuple[int, str, str]: ...

    def open_sftp(self) -> Any: ...


@dataclass
class AgentInfo:
    """The agent as deployed on one host, and what its probe said."""

    host: str
    pyz: str
    hash: str
    python: str
    python_version: str
    remote_home: str | None
    uploaded: bool
    pruned: list[str] = field(default_factory=list)
    probe: dict[str, Any] = field(default_factory=dict)

    def command(self, *args: str) -> str:
        """The shell command line that runs `agent <args>` on the host."""
        return agent_command(self.python, self.pyz, list(args), self.remote_home)


# --- local side: build and cache the zipapp -------------------------------------------------------


def agent_source_hash(root: Path = AGENTS_DIR) -> str:
    """Hash of what the zipapp ships (each file's archive name + bytes): the agent's identity on devices."""
    h = hashlib.sha256()
    for arcname, data in collect(str(root)):
        h.update(arcname.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:HASH_LEN]


def build_agent(cache_dir: Path | None = None, root: Path = AGENTS_DIR) -> tuple[Path, str]:
    """The agent zipapp for the current sources, built once per content hash into the user cache."""
    digest = agent_source_hash(root)
    cache = (cache_dir or user_cache_dir()) / "agents"
    out = cache / f"agent-{digest}.pyz"
    if not out.is_file():
        build_zipapp(str(out), pkg_dir=str(root))  # atomic (tmp + rename): safe with concurrent consoles
        _prune_local(cache, keep=LOCAL_BUILDS_KEPT)
    return out, digest


def _prune_local(cache: Path, keep: int) -> None:
    """Drop all but the `keep` newest builds (a developer editing agents/ makes one per change)."""
    def mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:  # pruned by a concurrent console
            return 0.0

    builds = sorted(cache.glob("agent-*.pyz"), key=mtime, reverse=True)
    for old in builds[keep:]:
        old.unlink(missing_ok=True)


# --- remote side ----------------------------------------------------------------------------------


def shell_path(path: str) -> str:
    """Quote a path for the remote shell, keeping a leading `~/` expandable."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def agent_command(python: str, pyz: str, args: list[str], remote_home: str | None = None) -> str:
    """`[env HOME=.. WATTLAB_AGENT_HOME=..] python agent.pyz args...`, every word quoted."""
    words = [shell_path(python), shlex.quote(pyz), *(shlex.quote(a) for a in args)]
    if remote_home:
        env = [f"HOME={remote_home}", f"WATTLAB_AGENT_HOME={remote_home}/.cache/wattlab/agent"]
        words = ["env", *(shlex.quote(e) for e in env), *words]
    return " ".join(words)


def check_python(conn: RemoteShell, python: str, timeout_s: float) -> str:
    """The remote Python's version `X.Y.Z`; HostError if it is missing or older than 3.6."""
    # print() with one argument is valid Python 2 too, so an old interpreter still answers
    code = "import sys; print('.'.join(map(str, sys.version_info[:3])))"
    rc, out, err = conn.run(f"{shell_path(python)} -c {shlex.quote(code)}", timeout_s)
    fix = ("install Python >= 3.6 there (JetPack 4 ships python3 3.6) or set `python = \"/path/to/python3\"` "
           "for this host in the lab file")
    if rc != 0 or not re.fullmatch(r"\d+\.\d+\.\d+", out.strip()):
        detail = (err or out).strip().splitlines()[-1:] or [f"exit status {rc}"]
        missing = rc == 127 or "not found" in detail[0] or "No such file" in detail[0]
        what = "not found" if missing else "failed"
        raise HostError(conn.host, f"remote Python {python!r} {what}: {detail[0]}", fix=fix)
    version = out.strip()
    if tuple(int(x) for x in version.split(".")[:2]) < MIN_PYTHON:
        raise HostError(conn.host, f"remote Python {python!r} is {version}; the agent needs Python >= 3.6",
                        fix=fix)
    return version


def deploy(conn: RemoteShell, *, python: str = "python3", remote_home: str | None = None,
           timeout_s: float = 10.0, cache_dir: Path | None = None, probe: bool = True,
           agent_root: Path = AGENTS_DIR) -> AgentInfo:
    """Make sure the current agent is on the host, runnable by its Python; return what it reports.

    Uploads only when `agent-<hash>.pyz` is missing or has the wrong size; prunes older agents,
    keeping the previous one (a daemon started from it may still be running and importing from it).
    """
    version = check_python(conn, python, max(timeout_s, COMMAND_TIMEOUT_S))
    local, digest = build_agent(cache_dir, agent_root)
    sftp = conn.open_sftp()
    try:
        login_home = sftp.normalize(".")
        # SFTP and a quoted env word expand no `~`: resolve it against the login home here
        if remote_home and (remote_home == "~" or remote_home.startswith("~/")):
            remote_home = login_home + remote_home[1:]
        home = remote_home or login_home
        agent_dir = f"{home.rstrip('/')}/.cache/wattlab"
        pyz = f"{agent_dir}/agent-{digest}.pyz"
        uploaded = _upload(conn, sftp, local, agent_dir, pyz)
        pruned = _prune(sftp, agent_dir, keep=f"agent-{digest}.pyz")
    finally:
        sftp.close()
    info = AgentInfo(conn.host, pyz, digest, python, version, remote_home, uploaded, pruned)
    if probe:
        info.probe = run_probe(conn, info, max(timeout_s, PROBE_TIMEOUT_S))
    return info


def _upload(conn: RemoteShell, sftp: Any, local: Path, agent_dir: str, pyz: str) -> bool:
    size = local.stat().st_size
    try:
        if sftp.stat(pyz).st_size == size:
            return False
    except OSError:
        pass
    tmp = f"{agent_dir}/.agent-{uuid.uuid4().hex[:8]}.tmp"
    try:
        _mkdir_p(sftp, agent_dir)
        sftp.put(str(local), tmp, confirm=True)
        # rename over any partial file so a reader never sees half an agent
        sftp.posix_rename(tmp, pyz)
    except OSError as exc:
        try:
            sftp.remove(tmp)
        except OSError:
            pass
        raise HostError(
            conn.host, f"cannot write the agent to {agent_dir}: {_why_unwritable(conn, agent_dir, exc)}",
            fix="free some space or make that directory writable, or set "
            "`remote_home = \"/tmp/wattlab-<you>\"` (any writable directory) for this host in the lab file",
        ) from exc
    return True


def _why_unwritable(conn: RemoteShell, agent_dir: str, exc: OSError) -> str:
    """The shell's reason ("Read-only file system", "No space left on device"): SFTP often says only
    "Failure"."""
    test_file = shlex.quote(agent_dir + "/.wattlab-write-test")
    probe = f"mkdir -p -- {shlex.quote(agent_dir)} && : > {test_file} && rm -f -- {test_file}"
    try:
        rc, _, err = conn.run(probe, COMMAND_TIMEOUT_S)
    except HostError:
        rc, err = 0, ""
    lines = err.strip().splitlines()
    return lines[-1] if rc != 0 and lines else str(exc.strerror or exc)


def _mkdir_p(sftp: Any, path: str) -> None:
    parts = path.split("/")
    for i in range(2, len(parts) + 1):
        prefix = "/".join(parts[:i])
        try:
            if not stat.S_ISDIR(sftp.stat(prefix).st_mode):
                raise OSError(f"{prefix} exists and is not a directory")
        except FileNotFoundError:
            sftp.mkdir(prefix, mode=0o700)


def _prune(sftp: Any, agent_dir: str, keep: str) -> list[str]:
    agents = [a for a in sftp.listdir_attr(agent_dir) if PYZ_RE.match(a.filename) and a.filename != keep]
    others = sorted(agents, key=lambda a: a.st_mtime or 0, reverse=True)
    pruned = []
    for attr in others[1:]:
        try:
            sftp.remove(f"{agent_dir}/{attr.filename}")
            pruned.append(attr.filename)
        except OSError:
            pass  # someone else pruned it first: fine
    return pruned


def run_probe(conn: RemoteShell, info: AgentInfo, timeout_s: float) -> dict[str, Any]:
    """Run `agent probe --json` on the host and check it is the agent we shipped."""
    rc, out, err = conn.run(info.command("probe", "--json"), timeout_s)
    try:
        result = json.loads(out) if rc == 0 else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        tail = (err or out).strip().splitlines()[-3:]
        raise HostError(conn.host, f"the agent failed to start with {info.python} ({info.python_version}): "
                        + (" | ".join(tail) or f"exit status {rc}"),
                        fix=f"run `{info.command('probe')}` on the host to see the full error")
    if result.get("agent_version") != AGENT_VERSION:
        raise HostError(conn.host, f"agent reports version {result.get('agent_version')!r}, expected "
                        f"{AGENT_VERSION!r}", fix=f"remove {info.pyz} on the host so it is uploaded again")
    return result
