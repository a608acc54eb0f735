"""Campaign files: validated as a whole with line numbers; the matrix expands deterministically."""

from __future__ import annotations

import json

import pytest

from console.campaign import CampaignError, Manifest, expand, load_campaign, status_lines, workload_for

GOOD = """\
name = "t"
devices = ["orin", "h100"]
repeats = 2
order = "interleaved"
shuffle = true
seed = 7
idle_s = 1.0
cooldown_s = 0.5

[scenarios.ss]
scenario = "singlestream"
queries = [16, 32]
sut = { kind = "builtin", work_ms = 5 }

[scenarios.burst]
scenario = "bursts"
bursts = 2
burst_size = 3

[hosts.orin]
power_mode = "MAXN"
"""


def _write(tmp_path, text, name="c.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_matrix_is_devices_by_scenarios_by_queries_by_repeats(tmp_path):
    spec = load_campaign(_write(tmp_path, GOOD), known_hosts=["orin", "h100"])
    cells = expand(spec)
    assert len(cells) == 2 * (2 + 1) * 2
    assert len({c.id for c in cells}) == len(cells)
    assert {c.params.get("queries") for c in cells if c.scenario == "ss"} == {16, 32}


def test_same_seed_gives_the_same_order_and_another_seed_another(tmp_path):
    spec = load_campaign(_write(tmp_path, GOOD))
    assert [c.id for c in expand(spec)] == [c.id for c in expand(spec)]
    other = load_campaign(_write(tmp_path, GOOD.replace("seed = 7", "seed = 8"), "d.toml"))
    assert [c.id for c in expand(spec)] != [c.id for c in expand(other)]


def test_interleaved_order_finishes_every_cell_of_repeat_0_before_repeat_1(tmp_path):
    cells = expand(load_campaign(_write(tmp_path, GOOD)))
    repeats = [c.repeat for c in cells]
    assert repeats == sorted(repeats)


def test_grouped_order_keeps_a_devices_cells_together(tmp_path):
    text = GOOD.replace('order = "interleaved"', 'order = "grouped"')
    text = text.replace("shuffle = true", "shuffle = false")
    cells = expand(load_campaign(_write(tmp_path, text)))
    devices = [c.device for c in cells]
    assert devices == sorted(devices, key=["orin", "h100"].index)


def test_every_problem_is_listed_with_its_line_before_anything_starts(tmp_path):
    bad = GOOD.replace('devices = ["orin", "h100"]', 'devices = ["orin", "nope"]') \
              .replace('scenario = "bursts"', 'scenario = "burstz"') \
              .replace("repeats = 2", "repeats = 2\nrepeat_count = 3")
    with pytest.raises(CampaignError) as err:
        load_campaign(_write(tmp_path, bad), known_hosts=["orin", "h100"])
    text = str(err.value)
    assert "3 problem(s)" in text
    assert "c.toml:2 [devices] unknown host 'nope'" in text
    assert "c.toml:4 [repeat_count] unknown key" in text
    assert "[scenarios.burst.scenario] unknown scenario 'burstz'" in text


def test_loadgen_workload_carries_the_cell_parameters(tmp_path):
    spec = load_campaign(_write(tmp_path, GOOD))
    cell = next(c for c in expand(spec) if c.scenario == "ss")
    wl = workload_for(cell, spec)
    assert wl["kind"] == "loadgen" and wl["scenario"] == "singlestream"
    assert wl["queries"] == cell.params["queries"]
    assert wl["sut"] == {"kind": "builtin", "work_ms": 5}


def test_manifest_round_trips_and_reports_status(tmp_path):
    spec = load_campaign(_write(tmp_path, GOOD))
    m = Manifest(tmp_path, spec.name, str(spec.path), expand(spec), seed=spec.seed)
    m.save()
    m.update(m.cells[0], state="done", started=100.0, ended=110.0)
    m.update(m.cells[1], state="failed", error="SUT crashed")
    again = Manifest.load(tmp_path)
    assert again.counts()["done"] == 1 and again.counts()["failed"] == 1
    assert json.loads((tmp_path / "manifest.json").read_text())["cells"][1]["error"] == "SUT crashed"
    lines = status_lines(again)
    assert lines[0].startswith("campaign t: 1/12 done")
    assert any("SUT crashed" in line for line in lines)


@pytest.mark.parametrize("name", ["quick.toml", "thesis-bert.toml"])
def test_shipped_campaigns_validate(name):
    from console.paths import PROFILES_DIR

    spec = load_campaign(PROFILES_DIR / "campaigns" / name)
    assert expand(spec)
