"""Named workloads from profiles/scenarios.toml, and commands typed by the user, as job specs.

No Textual here: the CLI's `bench --scenario` can use the same loader.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.compat import tomllib
from console.errors import ProfileError, UsageError
from console.paths import PROFILES_DIR

SCENARIOS_FILE = PROFILES_DIR / "scenarios.toml"
KINDS = {"loadgen", "argv", "http"}


@dataclass(frozen=True)
class Scenario:
    """A named workload: what the start-job dialog lists."""

    name: str
    description: str
    workload: dict[str, Any]


def load_scenarios(path: Path = SCENARIOS_FILE) -> list[Scenario]:
    """All `[scenarios.NAME]` tables, in file order; a bad file raises ProfileError naming the key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ProfileError("file not found", path=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        raise ProfileError(f"not valid TOML: {exc}", path=str(path), line=line) from exc
    table = data.get("scenarios")
    if not isinstance(table, dict):
        raise ProfileError("missing [scenarios.NAME] tables", path=str(path), key="scenarios")
    out = []
    for name, entry in table.items():
        key = f"scenarios.{name}"
        workload = entry.get("workload") if isinstance(entry, dict) else None
        if not isinstance(workload, dict) or workload.get("kind") not in KINDS:
            raise ProfileError(f"workload must be a table with kind in {sorted(KINDS)}", path=str(path),
                               key=f"{key}.workload")
        out.append(Scenario(name, str(entry.get("description", "")), workload))
    return out


def scenario_spec(scenario: Scenario, *, interval_ms: int = 100) -> dict[str, Any]:
    """The `start` args for a named scenario (the name goes in meta so runs can be grouped)."""
    return {"interval_ms": interval_ms, "workload": dict(scenario.workload),
            "meta": {"scenario": scenario.name}}


def command_spec(command: str, *, interval_ms: int = 100) -> dict[str, Any]:
    """The `start` args for a typed command: split like a shell would (shlex), run without one."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"cannot split the command: {exc}", where="command") from exc
    if not argv:
        raise UsageError("empty command", where="command")
    return {"interval_ms": interval_ms, "workload": {"kind": "argv", "argv": argv},
            "meta": {"scenario": "cmd:" + Path(argv[0]).name}}


def sampling_spec(*, interval_ms: int = 100) -> dict[str, Any]:
    """The `start` args for sampling only, until stopped."""
    return {"interval_ms": interval_ms, "workload": None, "meta": {"scenario": "sampling"}}
