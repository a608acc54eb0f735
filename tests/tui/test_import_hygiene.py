"""The core stays TUI-free: importing it must not load textual or rich (harlequin's rule)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

CORE = ["console.fleet", "console.impact", "console.store", "console.metrics", "console.link",
        "console.profiles", "console.analysis", "console.tui.campaign_manifest", "console.tui.compare_data",
        "console.tui.units", "console.tui.scenarios", "console.tui.history"]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_without_textual_or_rich(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} does not exist")
    code = (f"import sys, json; import {module}; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
