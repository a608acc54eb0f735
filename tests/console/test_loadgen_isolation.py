"""Real MLPerf LoadGen aborts its process when two tests overlap; the agent isolates each job."""

from __future__ import annotations

import threading
import time

import pytest

from agents.workload_proc import run_in_child

pytest.importorskip("mlperf_loadgen", reason="mlcommons-loadgen is a dev dependency; installed by make test")


def test_concurrent_jobs_with_real_loadgen_all_finish():
    spec = {"kind": "loadgen", "scenario": "singlestream", "queries": 16, "generator": "mlperf",
            "sut": {"kind": "builtin", "work_ms": 5.0}}
    results: list[dict] = []
    counts: list[int] = []

    def one() -> None:
        queries: list[tuple] = []
        results.append(run_in_child(spec, time.monotonic, lambda *q: queries.append(q), lambda level: None,
                                    lambda: False))
        counts.append(len(queries))

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r["generator"] for r in results] == ["mlperf_loadgen"] * 3
    assert counts == [16, 16, 16]
