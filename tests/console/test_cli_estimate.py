"""`wattlab estimate` and `wattlab devices` through the real CLI entry (console.cli.main) and Typer's runner.

Only our own command modules are registered (on a fresh Typer app), so these tests do not depend on
commands other engineers are still writing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from console import cli, paths
from console.commands import devices, estimate

BAD = Path(__file__).resolve().parent.parent / "data" / "profiles_bad"
STARCODER = ["--flops", "1.6505e13", "--pue", "1.5", "--lifetime-years", "7"]


@pytest.fixture()
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    """console.cli's app rebuilt with only `estimate` and `devices` registered; main() uses it."""
    fresh = typer.Typer(name="wattlab", add_completion=False, pretty_exceptions_enable=False)
    fresh.callback(invoke_without_command=True)(lambda: None)

    def register_ours() -> None:
        estimate.register(fresh)
        devices.register(fresh)

    register_ours()
    monkeypatch.setattr(cli, "app", fresh)
    monkeypatch.setattr(cli, "_register_all", lambda: None)
    return fresh


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run console.cli.main as the `wattlab` script does: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def test_estimate_json_has_the_documented_keys_and_study_values(app, capsys) -> None:
    code, out, _ = run_main(["estimate", "--device", "jetson-agx-xavier-32gb", *STARCODER, "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    for key in ("device", "latency_s", "bound", "energy_j", "gwp_g", "embodied_device_kg", "estimated",
                "grid", "pue", "lifetime_years"):
        assert key in data
    assert set(data["gwp_g"]) == {"operational", "embodied", "total", "low", "high"}
    assert set(data["embodied_device_kg"]) == {"value", "low", "high"}
    assert data["device"] == "jetson-agx-xavier-32gb" and data["bound"] == "compute"
    assert data["grid"]["id"] == "FR-ademe" and data["grid"]["g_per_kwh"] == 79.1  # the study's default
    # Study: ~12 s, ~1.3e-2 g, F ~17 kg; tolerances explained in test_impact.py (it rounds latency first).
    assert data["latency_s"] == pytest.approx(12, rel=0.05)
    assert data["energy_j"] == pytest.approx(30 * data["latency_s"])  # TDP x time
    assert data["gwp_g"]["total"] == pytest.approx(1.3e-2, rel=0.10)
    assert data["embodied_device_kg"]["value"] == pytest.approx(17.0, abs=0.1)
    assert data["gwp_g"]["low"] <= data["gwp_g"]["total"] <= data["gwp_g"]["high"]
    assert data["estimated"] is False


def test_compare_prints_devices_side_by_side(app, capsys) -> None:
    argv = ["estimate", "--device", "jetson-agx-xavier-32gb", *STARCODER, "--compare", "a100-sxm4-40gb",
            "jetson-agx-orin-64gb"]
    code, out, _ = run_main(argv, capsys)
    assert code == 0
    lines = out.splitlines()
    rows = {line.split()[0]: line for line in lines[2:5]}
    assert set(rows) == {"jetson-agx-xavier-32gb", "a100-sxm4-40gb", "jetson-agx-orin-64gb"}
    assert "die_mm2" in rows["jetson-agx-orin-64gb"]  # the Orin die estimate is flagged in its row
    column = lines[0].index("bound")
    assert all(row[column:].startswith("compute") for row in rows.values())  # columns line up


def test_compare_json_is_a_list_with_the_study_pair(app, capsys) -> None:
    argv = ["estimate", "--device", "jetson-agx-xavier-32gb", *STARCODER, "--compare", "a100-sxm4-40gb",
            "--json"]
    code, out, _ = run_main(argv, capsys)
    assert code == 0
    xavier, a100 = json.loads(out)
    assert a100["device"] == "a100-sxm4-40gb"
    assert a100["latency_s"] == pytest.approx(1.0, abs=0.2)
    assert a100["gwp_g"]["total"] == pytest.approx(1.2e-2, rel=0.10)
    assert a100["embodied_device_kg"]["value"] == pytest.approx(31.0, abs=0.1)
    assert xavier["latency_s"] > 10 * a100["latency_s"]


def test_queries_scale_the_totals(app, capsys) -> None:
    argv = ["estimate", "--device", "t4", "--flops", "8.1e12", "--queries", "100", "--json"]
    data = json.loads(run_main(argv, capsys)[1])
    assert data["latency_s"] == pytest.approx(1.0)
    assert data["total_for_queries"]["energy_j"] == pytest.approx(100 * 70.0)
    assert data["total_for_queries"]["gwp_g"]["total"] == pytest.approx(100 * data["gwp_g"]["total"])


def test_grid_by_number_and_by_region(app, capsys) -> None:
    base = ["estimate", "--device", "a100-sxm4-40gb", "--flops", "1.95e13", "--json"]
    custom = json.loads(run_main([*base, "--grid-g-per-kwh", "500"], capsys)[1])
    germany = json.loads(run_main([*base, "--grid", "DE"], capsys)[1])
    assert custom["grid"]["g_per_kwh"] == 500 and custom["adp_kgsb"] is None
    assert germany["grid"]["id"] == "DE-2024" and germany["adp_kgsb"] > 0
    # Same device and time: operational GWP scales with the grid factor.
    assert custom["gwp_g"]["operational"] / germany["gwp_g"]["operational"] == pytest.approx(500 / 344.1)


def test_human_output_names_the_bound_and_interval(app, capsys) -> None:
    code, out, _ = run_main(["estimate", "--device", "a100-sxm4-40gb", *STARCODER], capsys)
    assert code == 0
    assert "compute-bound" in out and "gCO2e [" in out and "FR-ademe" in out


def test_unknown_device_lists_close_matches_and_exits_2(app, capsys) -> None:
    code, out, err = run_main(["estimate", "--device", "a100-sxm4", "--flops", "1e12"], capsys)
    assert code == 2 and out == ""
    assert "unknown device 'a100-sxm4'" in err and "a100-sxm4-40gb" in err
    assert "Traceback" not in err


def test_negative_flops_is_refused_with_exit_2(app, capsys) -> None:
    code, _, err = run_main(["estimate", "--device", "t4", "--flops", "-5"], capsys)
    assert code == 2 and "FLOPs must be a finite number > 0" in err


def test_non_numeric_flops_is_refused_with_exit_2(app) -> None:
    result = CliRunner().invoke(app, ["estimate", "--device", "t4", "--flops", "lots"])
    assert result.exit_code == 2
    assert "--flops" in result.output


def test_grid_and_grid_number_together_are_refused(app, capsys) -> None:
    argv = ["estimate", "--device", "t4", "--flops", "1e12", "--grid", "FR", "--grid-g-per-kwh", "50"]
    code, _, err = run_main(argv, capsys)
    assert code == 2 and "not both" in err


def test_stray_argument_without_compare_is_refused(app, capsys) -> None:
    code, _, err = run_main(["estimate", "--device", "t4", "--flops", "1e12", "a100-sxm4-40gb"], capsys)
    assert code == 2 and "--compare" in err


def test_malformed_profiles_toml_names_file_key_and_line(app, capsys, tmp_path, monkeypatch) -> None:
    for name in ("grids.toml", "embodied.toml"):
        shutil.copy(paths.PROFILES_DIR / name, tmp_path / name)
    shutil.copy(BAD / "hardware_negative_tdp.toml", tmp_path / "hardware.toml")
    monkeypatch.setattr(paths, "PROFILES_DIR", tmp_path)
    code, _, err = run_main(["estimate", "--device", "a100-sxm4-40gb", "--flops", "1e12"], capsys)
    assert code == 2
    assert f"{tmp_path / 'hardware.toml'}:6 [a100-sxm4-40gb.tdp_w]" in err
    assert "Traceback" not in err


def test_devices_table_lists_every_device_with_f(app, capsys) -> None:
    code, out, _ = run_main(["devices"], capsys)
    assert code == 0
    assert "F kgCO2e [low, high]" in out.splitlines()[0]
    xavier = next(line for line in out.splitlines() if line.startswith("jetson-agx-xavier-32gb "))
    assert "17.0 [" in xavier
    orin = next(line for line in out.splitlines() if line.startswith("jetson-agx-orin-32gb "))
    assert "377*" in orin  # the die estimate is marked


def test_devices_json_filtered_by_category(app, capsys) -> None:
    code, out, _ = run_main(["devices", "--json", "--category", "edge"], capsys)
    assert code == 0
    records = json.loads(out)
    assert records and all(r["category"] == "edge" for r in records)
    orin = next(r for r in records if r["id"] == "jetson-agx-orin-64gb")
    assert orin["die_mm2"] is None and orin["estimates"]["die_mm2"] == 377
    assert orin["embodied_estimated"] == ["die_mm2"]


def test_devices_unknown_category_exits_2(app, capsys) -> None:
    code, _, err = run_main(["devices", "--category", "server"], capsys)
    assert code == 2 and "datacenter" in err
