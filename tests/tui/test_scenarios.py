"""profiles/scenarios.toml and typed commands become agent `start` specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.errors import ProfileError, UsageError
from console.tui.scenarios import command_spec, load_scenarios, scenario_spec


def test_every_shipped_scenario_is_a_loadgen_workload_on_the_builtin_sut() -> None:
    scenarios = load_scenarios()
    names = {s.name for s in scenarios}
    assert {"singlestream-64", "offline-512", "server-20qps", "gaps", "bursts", "batch"} <= names
    for s in scenarios:
        assert s.workload["kind"] == "loadgen"
        assert s.workload["sut"]["kind"] == "builtin"
        assert isinstance(s.workload["seed"], int)  # runs are reproducible


def test_a_scenario_spec_names_the_scenario_in_meta() -> None:
    s = load_scenarios()[0]
    spec = scenario_spec(s)
    assert spec["meta"] == {"scenario": s.name} and spec["workload"] == s.workload


def test_a_command_is_split_like_a_shell_but_never_run_by_one() -> None:
    spec = command_spec("bash -c 'echo hi; rm x' && true")
    assert spec["workload"]["argv"] == ["bash", "-c", "echo hi; rm x", "&&", "true"]


def test_an_unbalanced_quote_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        command_spec("python 'oops")


def test_a_bad_scenarios_file_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "scenarios.toml"
    bad.write_text('[scenarios.x]\ndescription = "no workload"\n')
    with pytest.raises(ProfileError, match=r"scenarios\.x\.workload"):
        load_scenarios(bad)
