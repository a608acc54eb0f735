"""ssh_config resolution, remote command quoting and known_hosts handling (no network needed,
except the hashed-known_hosts test which connects to the loopback sshd)."""

from __future__ import annotations

import shlex
from pathlib import Path

import paramiko
import pytest

from console.deploy import agent_command
from console.errors import HostError
from console.transport import hostkeys
from console.transport.ssh import SshOptions, connect, load_ssh_config, parse_target, resolve
from tests.integration.conftest import SshEnv


def _config(tmp_path: Path, text: str) -> paramiko.SSHConfig:
    path = tmp_path / "ssh_config"
    path.write_text(text)
    return load_ssh_config(path)


def test_alias_takes_hostname_user_port_keys_and_jumps_from_config(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "Host orin\n  HostName 10.0.0.7\n  User nvidia\n  Port 2222\n"
                  "  IdentityFile ~/keys/orin\n  IdentitiesOnly yes\n  ProxyJump bastion,gw\n"
                  "  ConnectTimeout 4\n  ServerAliveInterval 7\n  UserKnownHostsFile ~/kh1 ~/kh2\n")
    ep = resolve("orin", cfg)
    assert (ep.hostname, ep.user, ep.port) == ("10.0.0.7", "nvidia", 2222)
    assert ep.key_files == (str(Path("~/keys/orin").expanduser()),) and ep.identities_only
    assert ep.proxy_jump == ("bastion", "gw")
    assert (ep.connect_timeout_s, ep.keepalive_s) == (4.0, 7)
    assert ep.known_user == (Path("~/kh1").expanduser(), Path("~/kh2").expanduser())
    assert ep.key_name == "[10.0.0.7]:2222"


def test_alias_case_is_kept_for_the_config_lookup(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "Host OrinLab\n  HostName 10.0.0.9\n  ServerAliveInterval 0\n")
    ep = resolve("ssh://nvidia@OrinLab", cfg)
    assert (ep.hostname, ep.user, ep.keepalive_s) == ("10.0.0.9", "nvidia", 0)
    assert parse_target("ssh://[::1]:2222") == (None, "::1", 2222)


def test_user_and_port_in_the_target_win_over_config(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "Host orin\n  User nvidia\n  Port 2222\n")
    ep = resolve("ssh://root@orin:2200", cfg)
    assert (ep.user, ep.port, ep.hostname) == ("root", 2200, "orin")


def test_stricter_of_lab_timeout_and_connect_timeout_applies(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "Host a\n  ConnectTimeout 30\nHost b\n  ConnectTimeout 2\n")
    assert resolve("a", cfg, timeout_s=5).connect_timeout_s == 5
    assert resolve("b", cfg, timeout_s=5).connect_timeout_s == 2
    assert resolve("c", cfg).connect_timeout_s == 10.0


def test_host_key_alias_names_the_known_hosts_entry(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "Host orin\n  HostName 10.0.0.7\n  HostKeyAlias orin-lab\n")
    assert resolve("orin", cfg).key_name == "orin-lab"


@pytest.mark.parametrize("bad", ["http://orin", "ssh://", "ssh://orin:notaport"])
def test_malformed_targets_are_refused_with_the_form_to_use(bad: str) -> None:
    with pytest.raises(HostError):
        parse_target(bad)


def test_agent_command_quotes_every_word_and_keeps_tilde_python_expandable() -> None:
    cmd = agent_command("~/.pyenv/versions/3.8.18/bin/python", "/h o/.cache/wattlab/agent-x.pyz",
                        ["bridge"], remote_home="/tmp/we ird")
    assert cmd.startswith("env 'HOME=/tmp/we ird' 'WATTLAB_AGENT_HOME=/tmp/we ird/.cache/wattlab/agent' ")
    assert '"$HOME"/.pyenv/versions/3.8.18/bin/python' in cmd
    assert shlex.split(cmd)[-2:] == ["/h o/.cache/wattlab/agent-x.pyz", "bridge"]


def test_append_known_host_keeps_the_users_lines_intact(tmp_path: Path) -> None:
    known = tmp_path / "dir" / "known_hosts"
    known.parent.mkdir()
    known.write_text("# my comment\n|1|hashed= ssh-ed25519 AAAA")  # no final newline
    key = paramiko.Ed25519Key.from_private_key_file(str(_keygen(tmp_path)))
    hostkeys.append_known_host(known, "[h]:2222", key)
    lines = known.read_text().splitlines()
    assert lines[:2] == ["# my comment", "|1|hashed= ssh-ed25519 AAAA"]
    assert lines[2] == f"[h]:2222 ssh-ed25519 {key.get_base64()}"


def test_new_known_hosts_file_is_private(tmp_path: Path) -> None:
    key = paramiko.Ed25519Key.from_private_key_file(str(_keygen(tmp_path)))
    known = tmp_path / "new" / "known_hosts"
    hostkeys.append_known_host(known, "h", key)
    assert known.stat().st_mode & 0o777 == 0o600 and known.parent.stat().st_mode & 0o777 == 0o700


@pytest.mark.sshd
def test_hashed_known_hosts_entries_are_honoured(ssh_env: SshEnv, tmp_path: Path) -> None:
    # Debian/Ubuntu hash known_hosts by default (HashKnownHosts yes)
    name, ktype, b64 = ssh_env.target.known_hosts_line().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"{paramiko.HostKeys.hash_host(name)} {ktype} {b64}\n")
    cfg = ssh_env.write_config(tmp_path / "ssh_config", known)
    connect("wl-target", SshOptions(ssh_config=cfg)).close()


def _keygen(tmp_path: Path) -> Path:
    from tests.integration.sshd import keygen

    return keygen(tmp_path / "k")


def test_local_agent_builds_are_cached_by_hash_and_pruned(tmp_path: Path) -> None:
    import os
    import shutil

    from console.deploy import LOCAL_BUILDS_KEPT, build_agent
    from console.paths import AGENTS_DIR

    built = []
    for i in range(LOCAL_BUILDS_KEPT + 2):
        root = tmp_path / f"v{i}" / "agents"
        shutil.copytree(AGENTS_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
        (root / "_variant.py").write_text(f"TAG = {i}\n")
        path, digest = build_agent(tmp_path / "cache", root)
        os.utime(path, (1000 + i, 1000 + i))  # build order, independent of the clock's resolution
        assert build_agent(tmp_path / "cache", root) == (path, digest)  # cached: same file, same hash
        built.append(path.name)
    left = sorted(p.name for p in (tmp_path / "cache" / "agents").glob("agent-*.pyz"))
    assert left == sorted(built[-LOCAL_BUILDS_KEPT:])
