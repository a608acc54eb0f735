"""`wattlab hosts` against real sshd: concurrent, bounded by timeouts, --json, --accept-new."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agents import AGENT_VERSION
from console.commands import hosts
from tests.integration.conftest import SshEnv

pytestmark = pytest.mark.sshd


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never says anything (a hung sshd or a black hole)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    yield srv.getsockname()[1]
    srv.close()


def _cli() -> typer.Typer:
    app = typer.Typer()
    hosts.register(app)

    @app.callback()
    def _root() -> None:  # keeps `hosts` a subcommand even when it is the only one
        pass

    return app


def _lab(path: Path, ssh_env: SshEnv, extra: str = "") -> Path:
    common = (f'ssh_config = "{ssh_env.config}"\nremote_home = "{ssh_env.remote_home}"\n'
              "connect_timeout_s = 5\n")
    path.write_text(f'[hosts.orin]\ntarget = "ssh://wl-target"\n{common}\n'
                    f'[hosts.h100]\ntarget = "ssh://wl-behind"\n{common}\n' + extra)
    return path


def test_hosts_json_reports_agent_python_and_measurable_devices(ssh_env: SshEnv, tmp_path: Path) -> None:
    lab = _lab(tmp_path / "lab.toml", ssh_env)
    result = CliRunner().invoke(_cli(), ["hosts", "--lab", str(lab), "--json"])
    assert result.exit_code == 0, result.output
    records = {r["name"]: r for r in json.loads(result.output)["hosts"]}
    assert set(records) == {"orin", "h100"}
    for r in records.values():
        assert r["reachable"] and r["error"] is None
        assert r["agent_version"] == AGENT_VERSION and r["python"].startswith("3.")
        assert any(d.startswith("sim:") for d in r["measurable"])
    assert len(records["h100"]["route"]) == 2  # through the jump host


def test_a_dead_host_never_stalls_the_others(ssh_env: SshEnv, tmp_path: Path, silent_port: int) -> None:
    cfg = tmp_path / "ssh_config"
    ssh_env.write_config(cfg, ssh_env.known_hosts,
                         extra=f"Host blackhole\n  HostName 127.0.0.1\n  Port {silent_port}\n")
    lab = _lab(tmp_path / "lab.toml", ssh_env,
               extra=f'[hosts.dead]\ntarget = "ssh://blackhole"\nssh_config = "{cfg}"\n'
               "connect_timeout_s = 2\n")
    started = time.monotonic()
    records = hosts.probe_all(hosts.load_hosts(lab))
    elapsed = time.monotonic() - started
    by_name = {r["name"]: r for r in records}
    assert by_name["orin"]["reachable"] and by_name["h100"]["reachable"]
    assert not by_name["dead"]["reachable"] and "host dead" in by_name["dead"]["error"]
    # the dead host costs its own 2 s timeout, run alongside the live ones, not after them
    assert by_name["dead"]["elapsed_s"] < 4 and elapsed < max(by_name["orin"]["elapsed_s"], 2) + 3
    text = hosts.format_hosts(records)
    assert "dead" in text and "UNREACHABLE" in text and "sim:" in text


def test_accept_new_adds_the_key_to_the_known_hosts_of_that_host(ssh_env: SshEnv, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    cfg = ssh_env.write_config(tmp_path / "ssh_config", known)
    lab = tmp_path / "lab.toml"
    lab.write_text(f'[hosts.orin]\ntarget = "ssh://wl-target"\nssh_config = "{cfg}"\n'
                   f'remote_home = "{ssh_env.remote_home}"\nconnect_timeout_s = 5\n')
    refused = CliRunner().invoke(_cli(), ["hosts", "--lab", str(lab), "--json"])
    assert refused.exit_code == 1 and "unknown SSH host key" in refused.output
    added = CliRunner().invoke(_cli(), ["hosts", "--lab", str(lab), "--accept-new", "orin"])
    assert added.exit_code == 0 and f"to {known}" in added.output and "SHA256:" in added.output
    assert CliRunner().invoke(_cli(), ["hosts", "--lab", str(lab)]).exit_code == 0
