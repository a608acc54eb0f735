"""Connecting over a real sshd: ssh_config aliases, ProxyJump, strict host keys, --accept-new."""

from __future__ import annotations

import time
from pathlib import Path

import paramiko
import pytest

from console.errors import HostError, HostKeyError
from console.transport.ssh import SshOptions, accept_new_host_key, connect
from tests.integration.conftest import SshEnv

pytestmark = pytest.mark.sshd


def _opts(config: Path, **kw: object) -> SshOptions:
    return SshOptions(ssh_config=config, **kw)  # type: ignore[arg-type]


def _remote_ports(conn) -> tuple[int, int]:
    """(client port, server port) as the remote sshd saw the connection."""
    rc, out, _ = conn.run("echo $SSH_CONNECTION", 5)
    assert rc == 0
    fields = out.split()
    return int(fields[1]), int(fields[3])


def test_ssh_config_alias_with_non_default_port_is_honoured(ssh_env: SshEnv) -> None:
    conn = connect("wl-target", _opts(ssh_env.config))
    try:
        assert ssh_env.target.port != 22
        assert _remote_ports(conn)[1] == ssh_env.target.port
        assert conn.endpoint.user and conn.endpoint.key_files == (str(ssh_env.user_key),)
    finally:
        conn.close()


def test_ssh_url_target_uses_config_for_the_rest(ssh_env: SshEnv) -> None:
    # ssh://host:port with the identity and known_hosts from a `Host *` block, as with plain ssh
    cfg = ssh_env.root / "star_config"
    cfg.write_text(f"Host *\n  IdentityFile {ssh_env.user_key}\n  IdentitiesOnly yes\n"
                   f"  UserKnownHostsFile {ssh_env.known_hosts}\n  GlobalKnownHostsFile none\n")
    conn = connect(f"ssh://127.0.0.1:{ssh_env.target.port}", _opts(cfg))
    try:
        assert _remote_ports(conn)[1] == ssh_env.target.port
    finally:
        conn.close()


def test_proxyjump_goes_through_the_jump_host(ssh_env: SshEnv) -> None:
    log = ssh_env.jump.log
    before = log.read_text().count("Accepted publickey")
    conn = connect("wl-behind", _opts(ssh_env.config))
    try:
        client_port, server_port = _remote_ports(conn)
        assert server_port == ssh_env.target.port
        # the target's peer is the jump sshd's forwarding socket, not our own first socket
        first_hop_local = conn._clients[0].get_transport().sock.getsockname()[1]
        assert client_port != first_hop_local
        assert [r.split(":")[-1] for r in conn.route] == [str(ssh_env.jump.port), str(ssh_env.target.port)]
    finally:
        conn.close()
    deadline = time.monotonic() + 2
    while log.read_text().count("Accepted publickey") == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.read_text().count("Accepted publickey") == before + 1


def test_unknown_host_key_is_refused(ssh_env: SshEnv, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    cfg = ssh_env.write_config(tmp_path / "ssh_config", known)
    with pytest.raises(HostKeyError) as err:
        connect("wl-target", _opts(cfg))
    text = str(err.value)
    assert "unknown SSH host key" in text and "SHA256:" in text
    assert "wattlab hosts --accept-new wl-target" in text
    assert known.read_text() == ""  # nothing was added behind the user's back


def test_changed_host_key_is_refused_with_both_fingerprints(ssh_env: SshEnv, tmp_path: Path) -> None:
    impostor = paramiko.Ed25519Key.from_private_key_file(str(ssh_env.user_key))  # any other ed25519 key
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{ssh_env.target.port} ssh-ed25519 {impostor.get_base64()}\n")
    cfg = ssh_env.write_config(tmp_path / "ssh_config", known)
    with pytest.raises(HostKeyError) as err:
        connect("wl-target", _opts(cfg))
    text = str(err.value)
    real = paramiko.Ed25519Key.from_private_key_file(str(ssh_env.target.host_key))
    assert "HAS CHANGED" in text
    assert impostor.fingerprint in text and real.fingerprint in text
    assert "ssh-keygen -R" in text


def test_accept_new_records_the_key_once_and_then_connects(ssh_env: SshEnv, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    cfg = ssh_env.write_config(tmp_path / "ssh_config", known)
    name, fp, path = accept_new_host_key("wl-target", _opts(cfg))
    real = paramiko.Ed25519Key.from_private_key_file(str(ssh_env.target.host_key))
    assert (name, fp, path) == (f"[127.0.0.1]:{ssh_env.target.port}", real.fingerprint, known)
    assert known.read_text().split() == [name, "ssh-ed25519", real.get_base64()]
    again = accept_new_host_key("wl-target", _opts(cfg))
    assert again[2] is None and len(known.read_text().splitlines()) == 1
    connect("wl-target", _opts(cfg)).close()


def test_accept_new_never_overrides_a_changed_key(ssh_env: SshEnv, tmp_path: Path) -> None:
    impostor = paramiko.Ed25519Key.from_private_key_file(str(ssh_env.user_key))
    known = tmp_path / "known_hosts"
    line = f"[127.0.0.1]:{ssh_env.target.port} ssh-ed25519 {impostor.get_base64()}\n"
    known.write_text(line)
    cfg = ssh_env.write_config(tmp_path / "ssh_config", known)
    with pytest.raises(HostKeyError, match="HAS CHANGED"):
        accept_new_host_key("wl-target", _opts(cfg))
    assert known.read_text() == line


def test_refused_port_names_the_host_and_port(ssh_env: SshEnv, tmp_path: Path) -> None:
    from tests.integration.sshd import free_port

    port = free_port()
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host dead\n  HostName 127.0.0.1\n  Port {port}\n  IdentityFile {ssh_env.user_key}\n")
    with pytest.raises(HostError, match=f"connection refused by 127.0.0.1:{port}"):
        connect("dead", _opts(cfg))


def test_unknown_user_key_fails_without_a_password_prompt(ssh_env: SshEnv, tmp_path: Path) -> None:
    from tests.integration.sshd import keygen

    stranger = keygen(tmp_path / "id_stranger")
    cfg = ssh_env.write_config(tmp_path / "ssh_config", ssh_env.known_hosts)
    cfg.write_text(cfg.read_text().replace(str(ssh_env.user_key), str(stranger)))
    with pytest.raises(HostError, match="authentication failed") as err:
        connect("wl-target", _opts(cfg))
    assert "never asks for passwords" in str(err.value)


def test_connect_timeout_from_ssh_config_bounds_a_silent_host(ssh_env: SshEnv, tmp_path: Path) -> None:
    import socket

    with socket.socket() as silent:  # accepts TCP, never sends a banner: a hung sshd
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        cfg = tmp_path / "ssh_config"
        cfg.write_text(f"Host hung\n  HostName 127.0.0.1\n  Port {silent.getsockname()[1]}\n"
                       f"  IdentityFile {ssh_env.user_key}\n  ConnectTimeout 1\n")
        started = time.monotonic()
        with pytest.raises(HostError, match="within 1 s"):
            connect("hung", _opts(cfg, timeout_s=15))  # the stricter of the two limits wins
        assert time.monotonic() - started < 5


def test_unknown_jump_host_key_is_refused_and_named(ssh_env: SshEnv, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(ssh_env.target.known_hosts_line())  # the target is known, its jump host is not
    cfg = ssh_env.write_config(tmp_path / "ssh_config", known)
    with pytest.raises(HostKeyError) as err:
        connect("wl-behind", _opts(cfg))
    assert f"[127.0.0.1]:{ssh_env.jump.port}" in str(err.value)
    assert "wattlab hosts --accept-new wl-jump" in str(err.value)


def test_keys_from_ssh_agent_are_used_when_no_identity_file_is_set(
    ssh_env: SshEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import subprocess

    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen([shutil.which("ssh-agent") or "ssh-agent", "-D", "-a", str(sock)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        env = {"SSH_AUTH_SOCK": str(sock), "PATH": "/usr/bin:/bin"}
        subprocess.run(["ssh-add", "-q", str(ssh_env.user_key)], env=env, check=True, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        # HOME elsewhere so the default ~/.ssh/id_* cannot be what authenticates
        monkeypatch.setenv("HOME", str(tmp_path))
        cfg = tmp_path / "ssh_config"
        cfg.write_text(f"Host viaagent\n  HostName 127.0.0.1\n  Port {ssh_env.target.port}\n"
                       f"  UserKnownHostsFile {ssh_env.known_hosts}\n  GlobalKnownHostsFile none\n")
        conn = connect("viaagent", _opts(cfg))
        try:
            assert conn.run("true", 5)[0] == 0
        finally:
            conn.close()
    finally:
        agent.terminate()
        agent.wait(5)
