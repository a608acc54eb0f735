"""Every workload shipped in profiles/ is one the device's load generator accepts (names drift otherwise)."""

from __future__ import annotations

import pytest

from agents.loadgen import normalize_spec
from console.campaign import expand, load_campaign, workload_for
from console.compat import tomllib
from console.paths import PROFILES_DIR

SCENARIOS = tomllib.loads((PROFILES_DIR / "scenarios.toml").read_text())["scenarios"]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_named_scenario_is_a_valid_loadgen_spec(name):
    workload = SCENARIOS[name]["workload"]
    assert workload["kind"] == "loadgen"
    normalize_spec(workload)  # raises WorkloadSpecError naming the bad key


@pytest.mark.parametrize("name", sorted(p.name for p in (PROFILES_DIR / "campaigns").glob("*.toml")
                                        if not p.name.endswith("-lab.toml")))
def test_campaign_cells_are_valid_loadgen_specs(name):
    spec = load_campaign(PROFILES_DIR / "campaigns" / name)
    for cell in expand(spec):
        workload = workload_for(cell, spec)
        if workload and workload["kind"] == "loadgen":
            normalize_spec(workload)
