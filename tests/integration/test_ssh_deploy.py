"""Deploying the agent over a real sshd: upload once per hash, prune, check the remote Python, bridge."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents import AGENT_VERSION, protocol
from console.deploy import agent_source_hash, deploy
from console.errors import HostError
from console.paths import AGENTS_DIR
from console.transport.ssh import SshOptions, connect, open_transport
from tests.integration.conftest import SshEnv

pytestmark = pytest.mark.sshd

OLD_PYTHON = Path("~/.pyenv/versions/2.7.18/bin/python").expanduser()


@pytest.fixture
def conn(ssh_env: SshEnv):
    c = connect("wl-target", SshOptions(ssh_config=ssh_env.config))
    yield c
    c.close()


def _agent_variant(tmp_path: Path, tag: str) -> Path:
    """A copy of the agent package whose content (hence hash) differs by one extra module."""
    root = tmp_path / tag / "agents"
    shutil.copytree(AGENTS_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "_variant.py").write_text(f"TAG = {tag!r}\n")
    return root


def test_deploy_uploads_the_agent_and_its_probe_lists_sim_devices(
    conn, ssh_env: SshEnv, tmp_path: Path
) -> None:
    home = ssh_env.fresh_home("deploy-probe")
    root = _agent_variant(tmp_path, "v1")  # a frozen copy: the shared tree may change under the test
    info = deploy(conn, remote_home=str(home), cache_dir=tmp_path, agent_root=root)
    pyz = home / ".cache" / "wattlab" / f"agent-{agent_source_hash(root)}.pyz"
    assert info.uploaded and info.pyz == str(pyz) and pyz.is_file()
    assert info.probe["agent_version"] == AGENT_VERSION
    assert info.probe["python"].startswith(info.python_version[:3])
    assert any(d["id"].startswith("sim:") for d in info.probe["devices"])
    assert info.probe["samplers"]["sim"] is None  # the simulator always works


def test_redeploy_happens_only_when_the_hash_changes(conn, ssh_env: SshEnv, tmp_path: Path) -> None:
    home = ssh_env.fresh_home("redeploy")
    agent_dir = home / ".cache" / "wattlab"
    v1 = _agent_variant(tmp_path, "v1")
    first = deploy(conn, remote_home=str(home), cache_dir=tmp_path, probe=False, agent_root=v1)
    mtime = os.stat(first.pyz).st_mtime_ns
    time.sleep(0.01)
    again = deploy(conn, remote_home=str(home), cache_dir=tmp_path, probe=False, agent_root=v1)
    assert (first.uploaded, again.uploaded) == (True, False)
    assert os.stat(first.pyz).st_mtime_ns == mtime

    v2 = deploy(conn, remote_home=str(home), cache_dir=tmp_path, probe=False,
                agent_root=_agent_variant(tmp_path, "v2"))
    assert v2.uploaded and v2.hash != first.hash
    # SFTP mtimes have 1 s resolution: age the two agents so "newest" is unambiguous
    now = time.time()
    os.utime(first.pyz, (now - 200, now - 200))
    os.utime(v2.pyz, (now - 100, now - 100))
    # the previous agent is kept (a daemon may still run from it), older ones are pruned
    v3 = deploy(conn, remote_home=str(home), cache_dir=tmp_path, probe=True,
                agent_root=_agent_variant(tmp_path, "v3"))
    assert v3.pruned == [Path(first.pyz).name]
    assert sorted(p.name for p in agent_dir.glob("agent-*.pyz")) == sorted(
        [Path(v2.pyz).name, Path(v3.pyz).name])
    assert v3.probe["agent_version"] == AGENT_VERSION


def test_missing_python_is_a_host_error_naming_the_host(conn, ssh_env: SshEnv) -> None:
    with pytest.raises(HostError) as err:
        deploy(conn, python="/nonexistent/bin/python3", remote_home=str(ssh_env.remote_home))
    text = str(err.value)
    assert text.startswith("host wl-target:") and "'/nonexistent/bin/python3' not found" in text
    assert "python = " in text  # tells where to configure another interpreter


def test_python_too_old_is_a_host_error_naming_the_version(conn, ssh_env: SshEnv, tmp_path: Path) -> None:
    python = "~/.pyenv/versions/2.7.18/bin/python"
    if not OLD_PYTHON.exists():
        # CI images without pyenv's 2.7: a stand-in that answers the version check like 2.7 would
        fake = tmp_path / "python2.7"
        fake.write_text("#!/bin/sh\necho 2.7.18\n")
        fake.chmod(0o755)
        python = str(fake)
    with pytest.raises(HostError) as err:
        deploy(conn, python=python, remote_home=str(ssh_env.remote_home))
    assert "is 2.7.18; the agent needs Python >= 3.6" in str(err.value)
    assert str(err.value).startswith("host wl-target:")


def test_python_3_5_is_refused_too(conn, ssh_env: SshEnv, tmp_path: Path) -> None:
    # No 3.5 interpreter on this image: a stand-in answers the version check as 3.5.10 would.
    fake = tmp_path / "python3.5"
    fake.write_text("#!/bin/sh\necho 3.5.10\n")
    fake.chmod(0o755)
    with pytest.raises(HostError) as err:
        deploy(conn, python=str(fake), remote_home=str(ssh_env.remote_home))
    assert "is 3.5.10; the agent needs Python >= 3.6" in str(err.value)
    assert str(err.value).startswith("host wl-target:")


@pytest.fixture
def read_only_home(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A read-only home: a read-only bind mount (root ignores permission bits). Where mounting is not
    permitted, a path under a regular file, which nobody can create either."""
    home = tmp_path / "ro-home"
    home.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(home), str(home)], capture_output=True).returncode == 0
    if mounted and subprocess.run(["mount", "-o", "remount,ro,bind", str(home)],
                                  capture_output=True).returncode == 0:
        yield home, "Read-only file system"
    else:
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("")
        yield blocker / "home", "Not a directory"
    if mounted:
        subprocess.run(["umount", str(home)], check=True)


def test_read_only_remote_home_is_a_host_error_with_a_fix(
    conn, read_only_home: tuple[Path, str], tmp_path: Path
) -> None:
    home, reason = read_only_home
    with pytest.raises(HostError) as err:
        deploy(conn, remote_home=str(home), cache_dir=tmp_path)
    text = str(err.value)
    assert text.startswith("host wl-target:") and "cannot write the agent to" in text
    assert reason in text  # the real cause, not SFTP's bare "Failure"
    assert "remote_home" in text  # says how to point the agent elsewhere


def test_bridge_over_ssh_says_hello_and_answers_probe(ssh_env: SshEnv) -> None:
    transport = open_transport("wl-target", ssh_env.host())
    try:
        chan = transport.open_bridge()
        reader = protocol.LineReader()
        chan.send(protocol.encode(protocol.request(1, "probe")))
        got: list = []
        deadline = time.monotonic() + 20
        while not any(m.get("type") == "reply" for m in got) and time.monotonic() < deadline:
            data = chan.recv()
            assert data, f"bridge ended early: {chan.stderr_tail}"
            got += [m for m in reader.feed(data) if isinstance(m, dict)]
        assert got[0]["type"] == "hello" and got[0]["agent_version"] == AGENT_VERSION
        reply = next(m for m in got if m.get("type") == "reply")
        assert reply["id"] == 1 and any(d["id"].startswith("sim:") for d in reply["result"]["devices"])
        chan.close()
        assert chan.closed
    finally:
        transport.close()


def test_closing_the_bridge_wakes_a_blocked_reader_and_ends_the_connection(ssh_env: SshEnv) -> None:
    import threading

    transport = open_transport("wl-target", ssh_env.host())
    try:
        chan = transport.open_bridge()
        assert chan.recv()  # the hello
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(chan.recv()))
        reader.start()
        time.sleep(0.2)
        chan.close()
        reader.join(2)
        assert not reader.is_alive() and got == [b""]
        with pytest.raises(OSError):
            chan.send(b"{}\n")
        # the SSH connection went with its last bridge: no session is left on the server
        deadline = time.monotonic() + 3
        while ssh_env.target.session_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ssh_env.target.session_pids() == []
    finally:
        transport.close()
