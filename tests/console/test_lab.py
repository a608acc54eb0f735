"""Lab files and HOST arguments."""

from __future__ import annotations

import pytest

from console.errors import ProfileError, UsageError
from console.lab import load_lab, parse_ssh_target, resolve_host


def _write(tmp_path, text):
    p = tmp_path / "lab.toml"
    p.write_text(text)
    return p


def test_default_lab_has_local_and_two_simulated_devices_with_the_study_grid():
    lab = load_lab()
    assert list(lab.hosts) == ["local", "orin-sim", "h100-sim"]
    assert lab.hosts["orin-sim"].device == "sim:jetson-agx-orin-64gb"
    assert lab.hosts["h100-sim"].device == "sim:h100-sxm5-80gb"
    assert all(h.kind == "local" and h.grid == "FR-ademe" for h in lab.hosts.values())


def test_host_keys_override_defaults_and_set_timeouts(tmp_path):
    lab = load_lab(_write(tmp_path, """
[defaults]
grid = "FR-ademe"
stall_after_s = 5
[hosts.orin1]
target = "ssh://nvidia@orin1.lab:2222"
device = "jetson"
grid = "DE-2024"
pue = 1.2
power_mode = "MAXN"
lost_after_s = 60
"""))
    h = lab.hosts["orin1"]
    assert (h.kind, h.device, h.grid, h.pue, h.power_mode) == ("ssh", "jetson", "DE-2024", 1.2, "MAXN")
    assert h.timeouts.stall_after_s == 5 and h.timeouts.lost_after_s == 60
    assert h.ssh.user == "nvidia" and h.ssh.host == "orin1.lab" and h.ssh.port == 2222


@pytest.mark.parametrize(("text", "key", "line"), [
    ('[hosts.a]\ntarget = "local"\ncolour = "red"\n', "hosts.a.colour", 3),
    ('[hosts.a]\ntarget = "telnet://x"\n', "hosts.a.target", 2),
    ('[hosts.a]\ntarget = "local"\npue = 0.5\n', "hosts.a.pue", 3),
    ('[hosts.a]\ndevice = "nvml:0"\n', "hosts.a", 1),
    ('[hosts.a]\ntarget = "local"\nstall_after_s = "x"\n', "hosts.a.stall_after_s", 3),
])
def test_a_bad_lab_file_names_file_key_and_line(tmp_path, text, key, line):
    path = _write(tmp_path, text)
    with pytest.raises(ProfileError) as err:
        load_lab(path)
    assert err.value.key == key and err.value.line == line and err.value.path == str(path)


def test_toml_syntax_error_gives_the_line(tmp_path):
    with pytest.raises(ProfileError) as err:
        load_lab(_write(tmp_path, '[hosts.a]\ntarget = "local"\npue = \n'))
    assert err.value.line == 3


def test_host_argument_resolves_lab_names_local_sim_and_ssh():
    lab = load_lab()
    assert resolve_host("orin-sim", lab).target == "sim:jetson-agx-orin-64gb"
    sim = resolve_host("sim:h100-sxm5-80gb", lab)
    assert sim.device == "sim:h100-sxm5-80gb" and sim.kind == "local" and sim.grid == "FR-ademe"
    ssh = resolve_host("ssh://me@[::1]:2200", lab)
    assert ssh.kind == "ssh" and ssh.ssh.host == "::1" and ssh.ssh.port == 2200 and ssh.name == "::1"
    assert parse_ssh_target("ssh://myalias").url() == "ssh://myalias"


def test_unknown_host_lists_the_lab_hosts():
    with pytest.raises(UsageError, match="unknown host 'nope'") as err:
        resolve_host("nope", load_lab())
    assert "orin-sim" in err.value.fix
