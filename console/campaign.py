"""Campaigns: a matrix of devices x scenarios x repeats, run for hours, resumable after any crash.

A campaign file (profiles/campaigns/*.toml) is validated as a whole before anything starts: every
problem is listed with its line. The matrix expands into cells; cells on different devices run
concurrently, cells on one device run one at a time with an idle baseline before each and a
cool-down between them. State lives in `<out>/manifest.json`, rewritten atomically after every
change, so a SIGKILLed console, a rebooted laptop or a lost host costs nothing: `resume` skips
done cells, re-attaches to cells whose job is still running on the device (backfilling from the
last stored seq), and re-runs failed, lost or incomplete ones.

Each cell is one run directory `<out>/<run-id>/` (console.store); its run.json carries the cell
(`cell: {id, host, scenario, params, repeat}`), which is how reports group runs.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from console.compat import tomllib
from console.errors import ProfileError, UsageError, WattlabError
from console.store import atomic_write_text, read_meta

MANIFEST = "manifest.json"
ORDERS = ("interleaved", "grouped")
MLPERF_SCENARIOS = ("singlestream", "offline", "server", "multistream")
PATTERN_SCENARIOS = ("gaps", "bursts", "batch")
TOP_KEYS = {
    "name", "description", "devices", "repeats", "order", "shuffle", "seed", "idle_s", "cooldown_s",
    "cooldown_within_pct", "cooldown_max_s", "interval_ms", "lab", "grid", "pue", "scenarios", "hosts",
}
SCENARIO_KEYS = {
    "scenario", "queries", "sut", "qps", "samples_per_query", "generator", "min_ms", "max_ms", "bursts",
    "burst_size", "pause_ms", "batch_size", "duration_s", "argv", "seed", "on_error", "workers",
    "sample_count",
}
HOST_KEYS = {"grid", "pue", "power_mode", "device"}
# States a cell goes through. "lost": its host went away past its limit; re-run on resume.
CELL_STATES = ("queued", "running", "done", "failed", "lost")


class CampaignError(WattlabError):
    """A campaign that cannot run: the message lists every problem found."""

    exit_code = 2


# --- the file -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioSpec:
    """One `[scenarios.<name>]` table; `queries` may expand into several cells."""

    name: str
    scenario: str
    params: dict[str, Any]
    queries: tuple[int | None, ...]


@dataclass(frozen=True)
class CampaignSpec:
    """A validated campaign file."""

    path: Path
    name: str
    devices: tuple[str, ...]
    scenarios: tuple[ScenarioSpec, ...]
    repeats: int = 1
    order: str = "interleaved"
    shuffle: bool = False
    seed: int = 0
    idle_s: float = 0.0
    cooldown_s: float = 0.0
    cooldown_within_pct: float | None = None
    cooldown_max_s: float = 60.0
    interval_ms: int = 100
    lab: str | None = None
    grid: str | None = None
    pue: float | None = None
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _is_count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x > 0


def _line_of(text: str, table: str, key: str | None) -> int | None:
    from console.profiles import find_line

    return find_line(text, table, key)


def load_campaign(path: str | Path, known_hosts: Sequence[str] | None = None) -> CampaignSpec:
    """Parse and validate a campaign file; raises CampaignError listing every problem with its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read campaign file: {exc}", where=str(path)) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"TOML syntax error: {exc}", path=str(path)) from None
    problems: list[str] = []

    def problem(table: str, key: str | None, what: str) -> None:
        line = _line_of(text, table, key)
        dotted = ".".join(p for p in (table, key) if p)
        problems.append(f"{path}:{line if line else '?'} [{dotted}] {what}")

    for key in raw:
        if key not in TOP_KEYS:
            problem("", key, f"unknown key {key!r}")
    devices = raw.get("devices")
    if not isinstance(devices, list) or not devices or not all(isinstance(d, str) for d in devices):
        problem("", "devices", "devices must be a non-empty list of lab host names or sim:<hardware-id>")
        devices = []
    elif known_hosts is not None:
        for d in devices:
            if d not in known_hosts and not d.startswith(("sim:", "ssh://")) and d != "local":
                lab = ", ".join(sorted(known_hosts))
                problem("", "devices", f"unknown host {d!r} (not in the lab: {lab})")
    if len(set(devices)) != len(devices):
        problem("", "devices", "a device is listed twice")

    def number(key: str, default: float, *, minimum: float = 0.0, integer: bool = False) -> Any:
        value = raw.get(key, default)
        ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or value < minimum:
            kind = "an integer" if integer else "a number"
            problem("", key, f"{key} must be {kind} >= {minimum}, got {value!r}")
            return default
        return value

    repeats = number("repeats", 1, minimum=1, integer=True)
    seed = number("seed", 0, integer=True)
    idle_s = number("idle_s", 0.0)
    cooldown_s = number("cooldown_s", 0.0)
    cooldown_max_s = number("cooldown_max_s", 60.0)
    interval_ms = number("interval_ms", 100, minimum=1, integer=True)
    within = raw.get("cooldown_within_pct")
    if within is not None and not (_is_number(within) and within > 0):
        problem("", "cooldown_within_pct", f"must be a positive number, got {within!r}")
        within = None
    order = raw.get("order", "interleaved")
    if order not in ORDERS:
        problem("", "order", f"order must be one of {', '.join(ORDERS)}, got {order!r}")
        order = "interleaved"
    shuffle = raw.get("shuffle", False)
    if not isinstance(shuffle, bool):
        problem("", "shuffle", "shuffle must be true or false")
        shuffle = False
    pue = raw.get("pue")
    if pue is not None and (not isinstance(pue, int | float) or pue < 1.0):
        problem("", "pue", f"pue must be a number >= 1.0, got {pue!r}")

    scenarios: list[ScenarioSpec] = []
    table = raw.get("scenarios")
    if not isinstance(table, dict) or not table:
        problem("", None, "no [scenarios.<name>] table: a campaign needs at least one scenario")
        table = {}
    for name, sc in table.items():
        tname = f"scenarios.{name}"
        if not isinstance(sc, dict):
            problem(tname, None, "must be a table")
            continue
        for key in sc:
            if key not in SCENARIO_KEYS:
                problem(tname, key, f"unknown key {key!r}")
        kind = sc.get("scenario", name)
        if kind not in MLPERF_SCENARIOS + PATTERN_SCENARIOS + ("measure",):
            problem(tname, "scenario", f"unknown scenario {kind!r} (known: "
                    f"{', '.join(MLPERF_SCENARIOS + PATTERN_SCENARIOS)}, measure)")
        q = sc.get("queries")
        queries: tuple[int | None, ...]
        if q is None:
            queries = (None,)
        elif _is_count(q):
            queries = (q,)
        elif isinstance(q, list) and q and all(_is_count(x) for x in q):
            queries = tuple(q)
        else:
            problem(tname, "queries", f"queries must be a positive integer or a list of them, got {q!r}")
            queries = (None,)
        if kind == "measure" and "duration_s" not in sc and "argv" not in sc:
            problem(tname, None, "a measure scenario needs duration_s or argv")
        params = {k: v for k, v in sc.items() if k not in ("scenario", "queries")}
        scenarios.append(ScenarioSpec(name, kind, params, queries))

    hosts = raw.get("hosts", {})
    if not isinstance(hosts, dict):
        problem("", "hosts", "hosts must be a table of per-host overrides")
        hosts = {}
    for hname, overrides in hosts.items():
        if hname not in devices:
            problem(f"hosts.{hname}", None, f"overrides for {hname!r}, which is not in devices")
        if isinstance(overrides, dict):
            for key in overrides:
                if key not in HOST_KEYS:
                    known = ", ".join(sorted(HOST_KEYS))
                    problem(f"hosts.{hname}", key, f"unknown key {key!r} (known: {known})")

    if problems:
        raise CampaignError(f"{len(problems)} problem(s) in the campaign file:\n  " + "\n  ".join(problems),
                            where=str(path))
    return CampaignSpec(
        path=path, name=str(raw.get("name") or path.stem), devices=tuple(devices), scenarios=tuple(scenarios),
        repeats=repeats, order=order, shuffle=shuffle, seed=seed, idle_s=float(idle_s),
        cooldown_s=float(cooldown_s), cooldown_within_pct=within, cooldown_max_s=float(cooldown_max_s),
        interval_ms=int(interval_ms), lab=raw.get("lab"), grid=raw.get("grid"), pue=pue,
        hosts={k: dict(v) for k, v in hosts.items() if isinstance(v, dict)},
    )


# --- the matrix -----------------------------------------------------------------------------


@dataclass
class Cell:
    """One run of one scenario (with one query count) on one device; the unit of a campaign."""

    id: str
    device: str
    scenario: str  # the [scenarios.<name>] name
    kind: str  # singlestream, offline, ..., measure
    params: dict[str, Any]
    repeat: int
    state: str = "queued"
    run_dir: str | None = None
    job: str | None = None
    started: float | None = None
    ended: float | None = None
    attempts: int = 0
    error: str | None = None


def expand(spec: CampaignSpec) -> list[Cell]:
    """All cells in execution order (interleaved: repeat-major; grouped: device/scenario-major).

    With shuffle, the order is permuted with the campaign's seed (within each repeat when
    interleaved, so repeats stay spread over time), so the same file always gives the same order.
    """
    rng = random.Random(spec.seed)
    combos = [(sc, q) for sc in spec.scenarios for q in sc.queries]
    cells: list[Cell] = []
    if spec.order == "interleaved":
        for r in range(spec.repeats):
            block = [(dev, sc, q) for sc, q in combos for dev in spec.devices]
            if spec.shuffle:
                rng.shuffle(block)
            cells += [_cell(dev, sc, q, r) for dev, sc, q in block]
    else:
        block = [(dev, sc, q, r) for dev in spec.devices for sc, q in combos for r in range(spec.repeats)]
        if spec.shuffle:
            rng.shuffle(block)
        cells = [_cell(dev, sc, q, r) for dev, sc, q, r in block]
    return cells


def _cell(device: str, sc: ScenarioSpec, queries: int | None, repeat: int) -> Cell:
    params = dict(sc.params)
    if queries is not None:
        params["queries"] = queries
    qtag = f"-q{queries}" if queries is not None else ""
    return Cell(id=f"{device}/{sc.name}{qtag}/r{repeat}", device=device, scenario=sc.name, kind=sc.scenario,
                params=params, repeat=repeat)


def workload_for(cell: Cell, spec: CampaignSpec) -> dict[str, Any] | None:
    """The agent WORKLOAD (docs/ARCHITECTURE.md) for a cell."""
    p = dict(cell.params)
    if cell.kind == "measure":
        argv = p.get("argv")
        return {"kind": "argv", "argv": list(argv)} if argv else None
    p.pop("duration_s", None)
    workload: dict[str, Any] = {"kind": "loadgen", "scenario": cell.kind,
                                "seed": int(p.pop("seed", spec.seed * 1000 + cell.repeat))}
    workload["sut"] = p.pop("sut", {"kind": "builtin", "work_ms": 10.0})
    workload.update(p)
    return workload


# --- the manifest ---------------------------------------------------------------------------


class Manifest:
    """`<out>/manifest.json`: the campaign's spec path, and every cell with its state; thread-safe."""

    def __init__(self, out: Path, name: str, spec_path: str, cells: list[Cell], created: float | None = None,
                 seed: int = 0) -> None:
        self.out = out
        self.name = name
        self.spec_path = spec_path
        self.cells = cells
        self.created = created if created is not None else time.time()
        self.seed = seed
        self._lock = threading.Lock()

    @classmethod
    def load(cls, out: Path) -> Manifest:
        """Read an existing campaign directory's manifest."""
        path = out / MANIFEST
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise UsageError("not a campaign directory (no manifest.json)", where=str(out),
                             fix="start one with `wattlab campaign run FILE --out DIR`") from None
        except (OSError, ValueError) as exc:
            raise UsageError(f"unreadable manifest: {exc}", where=str(path)) from None
        fields = set(Cell.__dataclass_fields__)
        cells = [Cell(**{k: v for k, v in c.items() if k in fields}) for c in doc.get("cells", [])]
        return cls(out, doc.get("name", out.name), doc.get("spec", ""), cells, doc.get("created"),
                   doc.get("seed", 0))

    def save(self) -> None:
        """Rewrite atomically (tmp + fsync + rename): a crash leaves the old or the new manifest."""
        with self._lock:
            doc = {"name": self.name, "spec": self.spec_path, "created": self.created, "seed": self.seed,
                   "updated": time.time(), "cells": [asdict(c) for c in self.cells]}
            atomic_write_text(self.out / MANIFEST, json.dumps(doc, indent=1))

    def update(self, cell: Cell, **changes: Any) -> None:
        """Change a cell and persist the manifest."""
        with self._lock:
            for k, v in changes.items():
                setattr(cell, k, v)
        self.save()

    def counts(self) -> dict[str, int]:
        """Cells per state."""
        out = dict.fromkeys(CELL_STATES, 0)
        for c in self.cells:
            out[c.state] = out.get(c.state, 0) + 1
        return out


def status_lines(manifest: Manifest, now: float | None = None) -> list[str]:
    """Human status: counts per state, ETA from the mean cell duration, and the unfinished cells."""
    now = time.time() if now is None else now
    counts = manifest.counts()
    total = len(manifest.cells)
    lines = [f"campaign {manifest.name}: {counts['done']}/{total} done, {counts['running']} running, "
             f"{counts['queued']} queued, {counts['failed']} failed, {counts['lost']} lost"]
    eta = eta_s(manifest)
    if eta is not None and counts["done"] < total:
        lines.append(f"ETA {eta / 60:.1f} min (from the mean duration of finished cells, per device)")
    for c in manifest.cells:
        if c.state != "done":
            extra = f" — {c.error}" if c.error else ""
            lines.append(f"  {c.state:8} {c.id}{extra}")
    return lines


def eta_s(manifest: Manifest) -> float | None:
    """Remaining time: per device, remaining cells x mean finished-cell duration; devices run in parallel."""
    durations = [c.ended - c.started for c in manifest.cells if c.state == "done" and c.started and c.ended]
    if not durations:
        return None
    mean = sum(durations) / len(durations)
    per_device: dict[str, int] = {}
    for c in manifest.cells:
        if c.state != "done":
            per_device[c.device] = per_device.get(c.device, 0) + 1
    return max(per_device.values(), default=0) * mean


ProgressFn = Callable[[Manifest, Cell], None]


# --- running --------------------------------------------------------------------------------

SPEC_COPY = "campaign.toml"  # the campaign file as it was when the campaign started
COOLDOWN_DIR = "_cooldown"  # short sampling runs that checked power was back near idle
COOLDOWN_PROBE_S = 1.0


class HostLost(WattlabError):
    """The cell's host stayed away past its lost_after_s while a cell ran."""


@dataclass
class CampaignRun:
    """What the executor needs besides the manifest: the spec, the lab, where runs go, hooks."""

    spec: CampaignSpec
    manifest: Manifest
    lab: Any = None  # console.lab.Lab
    on_progress: ProgressFn | None = None
    stop_event: threading.Event | None = None

    @property
    def out(self) -> Path:
        return self.manifest.out


def _campaign_lab(spec: CampaignSpec, lab: Any) -> Any:
    """The lab the campaign names (relative to its file), else the one given, else the default lab."""
    from console.lab import load_lab

    if spec.lab:
        lab_path = Path(spec.lab)
        if not lab_path.is_absolute():
            lab_path = spec.path.parent / lab_path
        return load_lab(lab_path)
    return lab if lab is not None else load_lab()


def load_for_run(path: str | Path, lab: Any = None) -> tuple[CampaignSpec, Any]:
    """Load a campaign file and its lab, validating host names against the lab; lists every problem."""
    path = Path(path)
    spec = load_campaign(path)  # syntax and keys first, so a bad `lab` key is reported with the rest
    lab = _campaign_lab(spec, lab)
    return load_campaign(path, known_hosts=list(lab.hosts)), lab


def run_campaign(spec: CampaignSpec, out: str | Path, *, lab: Any = None,
                 on_progress: ProgressFn | None = None,
                 stop_event: threading.Event | None = None) -> Manifest:
    """Start a new campaign in `out` (which must not hold one) and run it to the end."""
    out = Path(out)
    if (out / MANIFEST).exists():
        raise UsageError("a campaign already lives here", where=str(out),
                         fix=f"`wattlab campaign resume {out}` continues it, or choose another --out")
    lab = _campaign_lab(spec, lab)
    out.mkdir(parents=True, exist_ok=True)
    (out / SPEC_COPY).write_text(spec.path.read_text(encoding="utf-8"), encoding="utf-8")
    manifest = Manifest(out, spec.name, str(spec.path.resolve()), expand(spec), seed=spec.seed)
    manifest.save()
    return _execute(CampaignRun(spec, manifest, lab, on_progress, stop_event))


def resume_campaign(out: str | Path, *, lab: Any = None, on_progress: ProgressFn | None = None,
                    stop_event: threading.Event | None = None) -> Manifest:
    """Continue a campaign: skip done cells, re-attach to jobs still on their device, re-run the rest."""
    out = Path(out)
    manifest = Manifest.load(out)
    spec_file = out / SPEC_COPY
    original = Path(manifest.spec_path) if manifest.spec_path else None
    spec = load_campaign(spec_file)
    if original is not None and original.exists():
        # the lab path in the file is relative to where the campaign file lives
        spec = CampaignSpec(**{**spec.__dict__, "path": original})
    lab = _campaign_lab(spec, lab)
    for cell in manifest.cells:
        if cell.state != "done":
            cell.state = "queued"
    manifest.save()
    return _execute(CampaignRun(spec, manifest, lab, on_progress, stop_event))


def _execute(run: CampaignRun) -> Manifest:
    """One worker thread per device; cells of a device run one at a time in manifest order."""
    from console.lab import resolve_host, with_overrides

    by_device: dict[str, list[Cell]] = {}
    for cell in run.manifest.cells:
        if cell.state != "done":
            by_device.setdefault(cell.device, []).append(cell)
    threads = []
    for device, cells in by_device.items():
        overrides = run.spec.hosts.get(device, {})
        host = with_overrides(resolve_host(device, run.lab), grid=overrides.get("grid") or run.spec.grid,
                              pue=overrides.get("pue", run.spec.pue), power_mode=overrides.get("power_mode"),
                              device=overrides.get("device"))
        t = threading.Thread(target=_device_worker, args=(run, host, cells), name=f"campaign-{device}",
                             daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        while t.is_alive():
            t.join(0.5)
    return run.manifest


def _stopped(run: CampaignRun) -> bool:
    return run.stop_event is not None and run.stop_event.is_set()


def _device_worker(run: CampaignRun, host: Any, cells: list[Cell]) -> None:
    """Run one device's cells in order; a lost host marks its remaining cells lost (re-run on resume)."""
    from console.runner import open_link

    link = None
    previous: dict[str, Any] | None = None
    try:
        for i, cell in enumerate(cells):
            if _stopped(run):
                return
            try:
                if link is None:
                    link = open_link(host)
                if previous is not None:
                    _cooldown(run, host, link, previous)
                previous = _run_cell(run, host, link, cell)
            except HostLost as exc:
                _mark_lost(run, cells[i:], str(exc))
                return
            except WattlabError as exc:
                if link is None or _link_lost(link):
                    _mark_lost(run, cells[i:], str(exc))
                    return
                run.manifest.update(cell, state="failed", ended=time.time(), error=str(exc))
                _notify(run, cell)
    finally:
        if link is not None:
            link.close()


def _link_lost(link: Any) -> bool:
    return link.state().kind in ("lost", "error", "closed")


def _mark_lost(run: CampaignRun, cells: list[Cell], why: str) -> None:
    for cell in cells:
        run.manifest.update(cell, state="lost", error=f"host lost: {why}")
        _notify(run, cell)


def _notify(run: CampaignRun, cell: Cell) -> None:
    if run.on_progress is not None:
        run.on_progress(run.manifest, cell)


def _cell_meta(cell: Cell, run: CampaignRun) -> dict[str, Any]:
    return {"campaign": run.manifest.name, "scenario": cell.scenario,
            "cell": {"id": cell.id, "host": cell.device, "scenario": cell.scenario, "kind": cell.kind,
                     "params": cell.params, "repeat": cell.repeat}}


def _watch(link: Any, host: Any) -> Callable[[Any], None]:
    """on_progress for the runner: abort the wait (run left resumable) once the host counts as lost."""

    def check(_progress: Any) -> None:
        state = link.state()
        if state.kind == "lost":
            raise HostLost(state.describe(), where=f"host {host.name}")

    return check


def _run_cell(run: CampaignRun, host: Any, link: Any, cell: Cell) -> dict[str, Any]:
    """Run (or re-attach to) one cell; returns its summary. Raises HostLost / WattlabError."""
    from console.runner import JobSpec, attach, run_job

    run.manifest.update(cell, state="running", started=time.time(), ended=None, error=None,
                        attempts=cell.attempts + 1)
    _notify(run, cell)
    result = None
    prior = unfinished_run(run.out, cell.id)
    if prior is not None:
        try:
            result = attach(prior, on_progress=_watch(link, host), link=link, stop=run.stop_event)
        except HostLost:
            raise
        except WattlabError as exc:  # the job is gone from the device (reboot, pruned): run it again
            _supersede(prior, f"could not re-attach: {exc}")
    if result is None:
        params = cell.params
        spec = JobSpec(device=host.device, interval_ms=run.spec.interval_ms, idle_s=run.spec.idle_s,
                       duration_s=params.get("duration_s") if cell.kind == "measure" else None,
                       workload=workload_for(cell, run.spec), grid=host.grid, pue=host.pue,
                       meta=_cell_meta(cell, run))
        result = run_job(host, spec, run.out.parent, run.out.name, on_progress=_watch(link, host), link=link,
                         stop=run.stop_event)
    # what is on disk decides: "complete" is only known once the run directory is finished
    summary = json.loads((Path(result.run_dir) / "summary.json").read_text())
    ok = bool(summary.get("complete")) and not summary.get("error")
    error = None if ok else (summary.get("error") or "run incomplete")
    run.manifest.update(cell, state="done" if ok else "failed", run_dir=str(result.run_dir),
                        ended=time.time(), job=result.job_id, error=error)
    if not ok:
        _supersede(result.run_dir, cell.error or "failed")
    _notify(run, cell)
    return summary


def unfinished_run(out: Path, cell_id: str) -> Path | None:
    """The newest run directory of `cell_id` that never finished (a console crash), if any."""
    found = []
    for meta_path in out.glob("*/run.json"):
        run_dir = meta_path.parent
        if (run_dir / "summary.json").exists() and not any(run_dir.glob("*.part.jsonl")):
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("superseded"):
            continue
        if ((meta.get("meta") or {}).get("cell") or {}).get("id") == cell_id and meta.get("job_id"):
            found.append(run_dir)
    return sorted(found)[-1] if found else None


def _supersede(run_dir: Path, why: str) -> None:
    """Mark a run directory as not counting for its cell (a newer attempt replaces it)."""
    try:
        meta = read_meta(run_dir)
        meta["superseded"] = why
        atomic_write_text(Path(run_dir) / "run.json", json.dumps(meta, indent=2, sort_keys=True))
    except (OSError, WattlabError):
        pass  # the manifest already names the newer attempt; this mark only helps a human reader


def _cooldown(run: CampaignRun, host: Any, link: Any, previous: dict[str, Any]) -> None:
    """Wait cooldown_s; then, with cooldown_within_pct, sample until power is back near idle (or max)."""
    spec = run.spec
    if spec.cooldown_s and run.stop_event is not None:
        run.stop_event.wait(spec.cooldown_s)
    elif spec.cooldown_s:
        time.sleep(spec.cooldown_s)
    idle_w = previous.get("idle_w")
    if not spec.cooldown_within_pct or not idle_w:
        return
    from console.runner import JobSpec, run_job

    limit = idle_w * (1.0 + spec.cooldown_within_pct / 100.0)
    deadline = time.monotonic() + spec.cooldown_max_s
    while time.monotonic() < deadline and not _stopped(run):
        probe = run_job(host, JobSpec(device=host.device, interval_ms=spec.interval_ms,
                                      duration_s=COOLDOWN_PROBE_S, meta={"campaign": run.manifest.name,
                                                                         "purpose": "cooldown"}),
                        run.out, COOLDOWN_DIR, link=link)
        mean_w = probe.summary.get("mean_w")
        if mean_w is None or mean_w <= limit:
            return


def cell_run_dirs(manifest: Manifest) -> dict[str, Path]:
    """cell id -> its run directory, for done cells (what reports count)."""
    return {c.id: Path(c.run_dir) for c in manifest.cells if c.state == "done" and c.run_dir}
