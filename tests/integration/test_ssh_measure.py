"""`wattlab measure` over SSH: a lab host behind a real sshd, the agent's simulator as the device."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from console.commands import measure
from console.store import load_run, sample_rows
from tests.integration.conftest import SshEnv, kill_agents_under

pytestmark = pytest.mark.sshd


def _cli() -> typer.Typer:
    app = typer.Typer()
    measure.register(app)

    @app.callback()
    def _root() -> None:  # keeps `measure` a subcommand even when it is the only one
        pass

    return app


@pytest.mark.parametrize("alias", ["wl-target", "wl-behind"])
def test_measure_over_ssh_with_a_sim_device_writes_a_complete_run(
    ssh_env: SshEnv, tmp_path: Path, alias: str
) -> None:
    home = ssh_env.fresh_home(f"measure-{alias}")
    lab = tmp_path / "lab.toml"
    lab.write_text(f'[hosts.orin]\ntarget = "ssh://{alias}"\nssh_config = "{ssh_env.config}"\n'
                   f'remote_home = "{home}"\nconnect_timeout_s = 20\n')
    try:
        result = CliRunner().invoke(_cli(), [
            "measure", "orin", "--lab", str(lab), "--device", "sim:jetson-agx-orin-64gb",
            "--duration", "1.5", "--interval-ms", "50", "--json", "--logs", str(tmp_path / "logs")])
    finally:
        kill_agents_under(home)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["energy_j"] > 0 and summary["duration_s"] == pytest.approx(1.5, abs=0.3)
    runs = list((tmp_path / "logs").glob("*/*/summary.json"))
    assert len(runs) == 1
    run = load_run(runs[0].parent)
    assert (run.meta["host"], run.meta["target"], run.meta["device"]) == (
        "orin", f"ssh://{alias}", "sim:jetson-agx-orin-64gb")
    seqs = sorted(r[0] for r in sample_rows(run))
    assert seqs == list(range(len(seqs))) and len(seqs) >= 25
    assert (home / ".cache" / "wattlab").is_dir()  # the agent ran from the tmp remote home
