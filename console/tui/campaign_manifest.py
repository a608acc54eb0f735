"""A tolerant reader of a campaign's `<dir>/manifest.json` and its progress numbers (no Textual).

Format (the campaign runner writes it; missing keys are tolerated, unknown keys ignored):

    {"name": str, "created": ISO-8601 or epoch s,
     "cells": [{"id": str, "device": str, "scenario": str, "repeat": int,
                "state": "queued"|"running"|"done"|"failed"|"skipped"|"stopped",
                "run_dir"?: str, "started"?: ISO-8601 or epoch s, "ended"?: ISO-8601 or epoch s,
                "error"?: str}]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
STATES = ("done", "running", "queued", "failed")


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class Cell:
    """One cell of the campaign matrix."""

    id: str
    device: str
    scenario: str
    repeat: int
    state: str
    run_dir: str | None = None
    started: float | None = None
    ended: float | None = None
    error: str | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended - self.started) if self.ended is not None else None


@dataclass(frozen=True)
class Progress:
    """What the campaign screen shows: counts per state, ETA and the cells."""

    name: str
    created: float | None
    cells: tuple[Cell, ...]
    counts: dict[str, int]
    eta_s: float | None
    problem: str | None = None  # why the manifest could not be read, if it could not


def _cell(raw: dict[str, Any], index: int) -> Cell:
    def repeat() -> int:
        try:
            return int(raw.get("repeat", 0))
        except (TypeError, ValueError):
            return 0

    return Cell(
        id=str(raw.get("id", f"cell-{index}")), device=str(raw.get("device", "?")),
        scenario=str(raw.get("scenario", "?")), repeat=repeat(),
        state=str(raw.get("state", "queued")).lower(),
        run_dir=raw.get("run_dir"), started=_epoch(raw.get("started")), ended=_epoch(raw.get("ended")),
        error=raw.get("error"),
    )


def progress(cells: tuple[Cell, ...], now: float) -> tuple[dict[str, int], float | None]:
    """Counts per state (other states counted as they are) and an ETA in seconds, if estimable.

    ETA = mean duration of finished cells x cells left / cells running at once (at least 1),
    minus the time the running cells have already spent.
    """
    counts = dict.fromkeys(STATES, 0)
    for c in cells:
        counts[c.state] = counts.get(c.state, 0) + 1
    durations = [c.duration_s for c in cells if c.state == "done" and c.duration_s is not None]
    if not durations:
        return counts, None
    mean = sum(durations) / len(durations)
    running = [c for c in cells if c.state == "running"]
    parallel = max(1, len(running))
    spent = sum(min(mean, now - c.started) for c in running if c.started is not None)
    left = counts["queued"] + len(running)
    return counts, max(0.0, (left * mean - spent) / parallel)


def read_manifest(directory: Path, now: float) -> Progress:
    """Read `<directory>/manifest.json`; a missing or bad file gives a Progress with `problem` set."""
    path = Path(directory) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Progress(Path(directory).name, None, (), dict.fromkeys(STATES, 0), None, f"{path}: not found")
    except (OSError, ValueError) as exc:
        # A runner may be rewriting the file right now: report, and the next read will succeed.
        return Progress(Path(directory).name, None, (), dict.fromkeys(STATES, 0), None, f"{path}: {exc}")
    raw_cells = data.get("cells", []) if isinstance(data, dict) else []
    cells = tuple(_cell(c, i) for i, c in enumerate(raw_cells) if isinstance(c, dict))
    counts, eta = progress(cells, now)
    name = str(data.get("name") or Path(directory).name) if isinstance(data, dict) else Path(directory).name
    created = _epoch(data.get("created")) if isinstance(data, dict) else None
    return Progress(name, created, cells, counts, eta)


def latest_campaign_dir(logs: Path) -> Path | None:
    """The most recently modified directory under `logs` that holds a manifest.json."""
    try:
        found = [p.parent for p in Path(logs).glob(f"*/{MANIFEST}")]
    except OSError:
        return None
    return max(found, key=lambda p: (p / MANIFEST).stat().st_mtime, default=None)
