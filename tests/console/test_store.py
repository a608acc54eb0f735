"""Run directories: round trip, idempotence by seq, crash readability, size per sample."""

from __future__ import annotations

import json
import random
import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console import store
from console.store import RunWriter, list_runs, load_run, make_run_id


def _samples(start: int, stop: int, rails: bool = True) -> list[list]:
    rows = []
    for seq in range(start, stop):
        r = {"VDD_GPU_SOC": 10.0 + seq % 7, "VDD_CPU_CV": 3.5} if rails else {}
        rows.append([seq, seq * 0.1, 20.0 + seq % 5, r, seq * 2.0])
    return rows


def test_run_id_is_sortable_and_sanitised():
    a = make_run_id("lab host/1", "sim:jetson-agx-orin-64gb", now=1_700_000_000)
    b = make_run_id("lab host/1", "sim:jetson-agx-orin-64gb", now=1_700_000_001)
    assert re.fullmatch(r"20231114-221320-lab-host-1-sim-jetson-agx-orin-64gb-[0-9a-f]{4}", a)
    assert sorted([b, a]) == [a, b]


def test_finished_run_round_trips_samples_queries_events_and_summary(tmp_path):
    w = RunWriter(tmp_path, None, host="h", device="sim:x")
    w.write_meta({"host": "h", "device": "sim:x"})
    w.add_samples(_samples(0, 50))
    w.add_queries([[i, i, i * 0.1, i * 0.1 + 0.02, True, {"tokens": 3}] for i in range(10)])
    w.event("started", job="j1")
    w.add_device_events([[0, 0.5, "mark", {"label": "warm"}]])
    w.finish({"energy_j": 1.5})

    run = load_run(w.path)
    assert run.complete
    assert w.path.parent.name == "adhoc"
    assert not list(w.path.glob("*.part.jsonl"))
    assert run.meta["device"] == "sim:x" and run.meta["run_id"] == w.run_id
    total = run.total()
    assert list(total["seq"]) == list(range(50))
    assert total["watts"].iloc[3] == pytest.approx(23.0)
    assert total["energy_j"].iloc[3] == pytest.approx(6.0)
    gpu = run.samples[run.samples["rail"] == "VDD_GPU_SOC"]
    assert len(gpu) == 50 and gpu["watts"].iloc[6] == pytest.approx(16.0)
    assert run.queries["latency_ms"].iloc[0] == pytest.approx(20.0)
    assert json.loads(run.queries["extra"].iloc[0]) == {"tokens": 3}
    assert [e["kind"] for e in run.events] == ["started", "mark"]
    assert run.summary["energy_j"] == 1.5 and run.summary["complete"] is True
    # pandas/pyarrow read the files directly too
    assert len(pd.read_parquet(w.path / "samples.parquet")) == 150


def test_same_seq_stored_twice_keeps_one_copy(tmp_path):
    w = RunWriter(tmp_path, "c1", host="h", device="d")
    assert w.add_samples(_samples(0, 30)) == 30
    assert w.add_samples(_samples(20, 40)) == 10  # backfill overlapping the live stream
    assert w.add_samples(_samples(35, 36)) == 0
    assert w.last_seq("samples") == 39
    w.finish({})
    seqs = list(load_run(w.path).total()["seq"])
    assert seqs == list(range(40))


def test_last_seq_stops_at_the_first_gap(tmp_path):
    w = RunWriter(tmp_path, None, host="h", device="d")
    w.add_samples(_samples(0, 5) + _samples(8, 10))
    assert w.last_seq("samples") == 4
    w.add_samples(_samples(5, 8))
    assert w.last_seq("samples") == 9
    w.close()


def test_a_crashed_run_reads_back_partial_and_incomplete(tmp_path):
    w = RunWriter(tmp_path, None, host="h", device="d")
    w.write_meta({"host": "h"})
    w.add_samples(_samples(0, 20))
    w.add_queries([[0, 0, 0.0, 0.01, True, {}]])
    # simulate a crash mid-write: a torn last line and no finish()
    with open(w.path / "samples.part.jsonl", "a") as fh:
        fh.write('[20, 2.0, 21.0, {"VDD_')
    run = load_run(w.path)
    assert not run.complete
    assert list(run.total()["seq"]) == list(range(20))
    assert len(run.queries) == 1
    assert [r.complete for r in list_runs(tmp_path)] == [False]


def test_reopened_run_continues_seqs_and_finishes(tmp_path):
    w = RunWriter(tmp_path, None, host="h", device="d")
    w.write_meta({"host": "h"})
    w.add_samples(_samples(0, 10))
    w.close()  # console killed
    w2 = RunWriter.reopen(w.path)
    assert w2.last_seq("samples") == 9
    assert w2.add_samples(_samples(5, 15)) == 5
    w2.finish({})
    assert list(load_run(w.path).total()["seq"]) == list(range(15))
    with pytest.raises(store.StoreError, match="already finished"):
        RunWriter.reopen(w.path)


def test_crash_between_parquet_and_part_removal_reads_the_same_rows(tmp_path):
    w = RunWriter(tmp_path, None, host="h", device="d")
    w.write_meta({})
    w.add_samples(_samples(0, 10))
    part = (w.path / "samples.part.jsonl").read_text()
    w.finish({})
    (w.path / "samples.part.jsonl").write_text(part)
    run = load_run(w.path)
    assert not run.complete
    assert list(run.total()["seq"]) == list(range(10))


def test_time_only_samples_are_kept(tmp_path):
    w = RunWriter(tmp_path, None, host="h", device="none")
    w.write_meta({})
    w.add_samples([[i, i * 0.1, None, {}, None] for i in range(5)])
    w.finish({})
    total = load_run(w.path).total()
    assert list(total["t"]) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert total["watts"].isna().all()


def test_list_runs_finds_runs_of_every_campaign_sorted(tmp_path):
    for campaign, t in (("b", 2), ("a", 1), (None, 3)):
        w = RunWriter(tmp_path, campaign, run_id=make_run_id("h", "d", now=1_700_000_000 + t))
        w.write_meta({})
        w.finish({})
    runs = list_runs(tmp_path)
    assert [r.campaign for r in runs] == ["a", "b", "adhoc"]
    assert all(r.complete for r in runs)


def test_parquet_stays_under_8_bytes_per_stored_reading(tmp_path):
    # One hour at 10 Hz of a sim-like Orin: total + 3 rails, 1 mW resolution, realistic noise and jitter.
    rng = random.Random(4)
    n = 36_000
    rows = []
    energy = 0.0
    for seq in range(n):
        load = 1.0 if (seq // 600) % 2 else 0.2
        gpu = 5 + 20 * load + rng.gauss(0, 0.4)
        cpu = 3 + 4 * load + rng.gauss(0, 0.2)
        soc = 4 + rng.gauss(0, 0.1)
        total = gpu + cpu + soc
        energy += total * 0.1
        rows.append([seq, seq * 0.1 + rng.gauss(0, 0.0002), total,
                     {"VDD_GPU_SOC": gpu, "VDD_CPU_CV": cpu, "VIN_SYS_5V0": soc}, energy])
    w = RunWriter(tmp_path, None, host="h", device="d")
    w.write_meta({})
    w.add_samples(rows)
    w.finish({})
    size = (w.path / "samples.parquet").stat().st_size
    per_reading = size / (n * 4)
    per_timestamp = size / n
    print(f"samples.parquet: {size} B, {per_reading:.2f} B/reading, {per_timestamp:.2f} B/timestamp")
    assert per_reading <= 8.0


def test_two_writers_never_record_the_same_run(tmp_path):
    w = RunWriter(tmp_path, None, host="h", device="d")
    with pytest.raises(store.StoreError, match="another wattlab process"):
        RunWriter.reopen(w.path)
    w.close()
    w2 = RunWriter.reopen(w.path)  # free again once the first one let go
    w2.finish({})
    assert not (w.path / store.LOCK_NAME).exists()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 15)), min_size=1, max_size=12))
def test_any_order_of_overlapping_batches_stores_each_seq_once(tmp_path_factory, batches):
    w = RunWriter(tmp_path_factory.mktemp("runs"), None, host="h", device="d")
    expected: set[int] = set()
    for start, n in batches:
        w.add_samples(_samples(start, start + n, rails=False))
        expected |= set(range(start, start + n))
    contiguous = -1
    while contiguous + 1 in expected:
        contiguous += 1
    assert w.last_seq("samples") == contiguous and w.count("samples") == len(expected)
    w.finish({})
    assert list(load_run(w.path).total()["seq"]) == sorted(expected)
