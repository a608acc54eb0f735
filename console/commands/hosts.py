"""`wattlab hosts [--lab FILE] [--json] [--accept-new HOST]`: reach every lab host, say what it can measure.

Each host is checked on its own daemon thread with its own deadline, so one slow or dead host never
stalls the others; the command returns after the slowest deadline at most. An SSH host is
connected (strict host keys), the agent deployed if its hash changed, and `agent probe --json` run:
no daemon is started by this command. `local` and `sim:` hosts run the same probe locally.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from console.errors import HostError, UsageError, WattlabError

DEFAULT_TIMEOUT_S = 10.0
PROBE_EXTRA_S = 60.0  # a first deploy + probe on a Jetson Nano over Wi-Fi takes a while


@dataclass(frozen=True)
class LabHost:
    """A lab host (console.lab.Host as `cfg`), told apart as local, sim or ssh."""

    name: str
    target: str
    cfg: Any = None

    @property
    def kind(self) -> str:
        if self.target == "local":
            return "local"
        if self.target.startswith("sim:"):
            return "sim"
        return "ssh"


def load_hosts(lab: Path | None) -> list[LabHost]:
    """The hosts of the lab file (default: the built-in lab, profiles/lab.toml)."""
    from console.lab import load_lab

    return [LabHost(h.name, h.target, h) for h in load_lab(lab).hosts.values()]


def _cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
    if cfg is None:
        return default
    return getattr(cfg, key, default)


# --- probing one host -----------------------------------------------------------------------------


def probe_host(host: LabHost) -> dict[str, Any]:
    """Reach one host and describe it; never raises (errors become the record's `error`)."""
    started = time.monotonic()
    record: dict[str, Any] = {"name": host.name, "target": host.target, "kind": host.kind, "reachable": False,
                              "error": None}
    try:
        if host.kind == "ssh":
            record.update(_probe_ssh(host))
        else:
            record.update(_probe_local(host))
        record["reachable"] = True
    except WattlabError as err:
        record["error"] = str(err)
    except Exception as err:  # a bug or an odd failure on one host must not hide the other hosts
        record["error"] = f"{type(err).__name__}: {err}"
    record["elapsed_s"] = round(time.monotonic() - started, 3)
    return record


def _probe_ssh(host: LabHost) -> dict[str, Any]:
    from console.transport.ssh import open_transport

    transport = open_transport(host.target, host.cfg or {"name": host.name})
    try:
        agent = transport.agent(probe=True)
        conn = transport.connection()
        return {"route": conn.route, "agent_hash": agent.hash, "deployed": agent.uploaded,
                "python_path": agent.python, **_describe(agent.probe)}
    finally:
        transport.close()


def _probe_local(host: LabHost) -> dict[str, Any]:
    from console.paths import REPO_ROOT
    from console.transport.local import agent_env

    python = _cfg_get(host.cfg, "python") or sys.executable
    timeout = _connect_timeout(host) + PROBE_EXTRA_S
    try:
        proc = subprocess.run([python, "-m", "agents", "probe", "--json"], env=agent_env(),
                              cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=timeout,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostError(host.name, f"local agent probe failed: {exc}") from exc
    if proc.returncode != 0:
        raise HostError(host.name, f"local agent probe failed: {proc.stderr.strip()[-300:]}")
    info = _describe(json.loads(proc.stdout))
    if host.kind == "sim":  # a sim host is one simulated device served by the local agent
        wanted = host.target
        info["devices"] = [d for d in info["devices"] if d["id"] == wanted] or [
            {"id": wanted, "sampler": "sim", "name": None, "hardware_id": wanted[4:]}]
        info["measurable"] = [d["id"] for d in info["devices"]]
        # the local machine's other power sources are not this simulated device's
        info["samplers"] = {"sim": info["samplers"].get("sim")}
    return info


def _describe(probe: dict[str, Any]) -> dict[str, Any]:
    samplers = probe.get("samplers") or {}
    devices = probe.get("devices") or []
    working = {name for name, reason in samplers.items() if reason is None}
    return {
        "agent_version": probe.get("agent_version"),
        "python": probe.get("python"),
        "remote_host": probe.get("host"),
        "samplers": samplers,
        "devices": devices,
        # a device whose sampler works can be measured; sim devices always can
        "measurable": [d.get("id") for d in devices if d.get("sampler") in working or not samplers],
    }


def probe_all(hosts: list[LabHost], deadline_s: float | None = None) -> list[dict[str, Any]]:
    """Probe every host concurrently; a host still running at its deadline is reported as timed out."""
    results: dict[int, dict[str, Any]] = {}
    threads = []
    for i, host in enumerate(hosts):
        # daemon threads: a host hung in a kernel connect() must not keep the process alive at exit
        t = threading.Thread(target=lambda i=i, h=host: results.__setitem__(i, probe_host(h)),
                             name=f"hosts {host.name}", daemon=True)
        t.start()
        threads.append(t)
    start = time.monotonic()
    for i, (host, t) in enumerate(zip(hosts, threads, strict=True)):
        limit = deadline_s if deadline_s is not None else _host_deadline(host)
        t.join(max(0.0, limit - (time.monotonic() - start)))
        if i not in results:
            results[i] = {"name": host.name, "target": host.target, "kind": host.kind, "reachable": False,
                          "error": f"host {host.name}: no answer within {limit:g} s", "elapsed_s": limit}
    return [results[i] for i in range(len(hosts))]


def _host_deadline(host: LabHost) -> float:
    # connect (per hop) + deploy + probe; the connect timeout alone is enforced inside the transport
    return _connect_timeout(host) * 2 + PROBE_EXTRA_S


def _connect_timeout(host: LabHost) -> float:
    return float(_cfg_get(host.cfg, "timeout_s") or DEFAULT_TIMEOUT_S)


# --- output ---------------------------------------------------------------------------------------


def format_hosts(records: list[dict[str, Any]]) -> str:
    """The human report: one block per host."""
    lines = []
    for r in records:
        if not r["reachable"]:
            lines.append(f"{r['name']:<16} {r['target']}  UNREACHABLE ({r['elapsed_s']:.1f} s)")
            lines.extend("    " + line for line in str(r["error"]).splitlines())
            continue
        via = " via " + " -> ".join(r["route"][:-1]) if len(r.get("route") or []) > 1 else ""
        lines.append(f"{r['name']:<16} {r['target']}{via}  ok ({r['elapsed_s']:.1f} s)  "
                     f"agent {r['agent_version']}  Python {r['python']}"
                     + ("  (agent uploaded)" if r.get("deployed") else ""))
        for d in r["devices"]:
            ok = "measurable" if d.get("id") in r["measurable"] else "not measurable"
            name, sampler = d.get("name") or "", d.get("sampler") or "-"
            lines.append(f"    {d.get('id'):<28} {name:<28} {sampler:<10} {ok}")
        off = {k: v for k, v in r["samplers"].items() if v is not None}
        for name, reason in sorted(off.items()):
            lines.append(f"    sampler {name}: unavailable ({reason})")
    return "\n".join(lines)


def accept_new(host_arg: str, hosts: list[LabHost]) -> str:
    """Record the host key of one lab host (or ssh target/alias) in the user's known_hosts."""
    from console.transport.ssh import SshOptions, accept_new_host_key

    match = next((h for h in hosts if h.name == host_arg), None)
    # not a lab host: an ssh:// URL or an alias of the user's ssh config
    target, cfg = (match.target, match.cfg) if match else (host_arg, None)
    if target == "local" or target.startswith("sim:"):
        raise UsageError(f"{host_arg} is not an SSH host; it has no host key")
    name, fp, path = accept_new_host_key(target, SshOptions.from_host(cfg), host=host_arg)
    if path is None:
        return f"{host_arg}: host key for {name} already known ({fp}); nothing changed"
    return f"{host_arg}: added {name} {fp} to {path}"


def register(app: typer.Typer) -> None:
    """Add `wattlab hosts` to the CLI."""

    @app.command("hosts")
    def hosts_cmd(
        ctx: typer.Context,
        lab: Optional[Path] = typer.Option(None, "--lab", help="Lab file (default: the built-in lab)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per host)."),
        accept_new_host: Optional[str] = typer.Option(
            None, "--accept-new", metavar="HOST",
            help="Record HOST's SSH host key in your known_hosts (only if none is known yet), then exit."),
    ) -> None:
        """List the lab's hosts: reachability, agent version, Python, devices and what can be measured."""
        parent = ctx.parent.params if ctx.parent is not None else {}
        hosts = load_hosts(lab or parent.get("lab"))  # `wattlab --lab FILE hosts` works too
        if accept_new_host:
            typer.echo(accept_new(accept_new_host, hosts))
            return
        records = probe_all(hosts)
        if as_json:
            typer.echo(json.dumps({"hosts": records}, indent=2))
        else:
            typer.echo(format_hosts(records))
        if not all(r["reachable"] for r in records):
            raise typer.Exit(1)  # the report is printed either way; scripts learn that a host is down
