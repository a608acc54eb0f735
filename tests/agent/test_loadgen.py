"""The built-in load generator: scenarios, timing rows, load level, errors and stopping (stdlib unittest)."""

import sys
import threading
import time
import unittest

from agents.loadgen import LoadgenError, WorkloadSpecError, normalize_spec, run_workload
from tests.agent.http_stub import StubServer
from tests.agent.test_sut import SERVER_SRC


class Recorder(object):
    """Collects what run_workload reports: query rows and (time, level) load changes."""

    def __init__(self, stop_after=None):
        self.rows = []
        self.loads = []
        self.stop_after = stop_after

    def emit(self, qid, issue_t, done_t, ok, extra):
        self.rows.append((qid, issue_t, done_t, ok, extra))

    def set_load(self, level):
        self.loads.append((time.monotonic(), level))

    def should_stop(self):
        return self.stop_after is not None and len(self.rows) >= self.stop_after


def run(rec=None, **spec):
    spec.setdefault("generator", "builtin")
    spec.setdefault("sut", {"kind": "builtin", "work_ms": 2})
    rec = rec or Recorder()
    summary = run_workload(spec, time.monotonic, rec.emit, rec.set_load, rec.should_stop)
    return rec, summary


class ScenarioTest(unittest.TestCase):
    def test_singlestream_runs_queries_back_to_back_on_the_given_clock(self):
        rec, summary = run(scenario="singlestream", queries=6)
        self.assertEqual([r[0] for r in rec.rows], list(range(6)))
        for (_, issue, done, ok, _), nxt in zip(rec.rows, rec.rows[1:]):
            self.assertTrue(ok)
            self.assertGreaterEqual(done - issue, 0.0019)
            self.assertLessEqual(done, nxt[1])  # the next query is issued after this one is done
        self.assertEqual(summary["generator"], "builtin")
        self.assertEqual((summary["queries_ok"], summary["queries_failed"]), (6, 0))
        self.assertGreaterEqual(summary["latency_ms"]["p50"], 1.9)

    def test_set_load_is_one_while_a_query_runs_and_zero_after(self):
        rec, _ = run(scenario="singlestream", queries=3)
        self.assertEqual([lvl for _, lvl in rec.loads], [1.0, 0.0] * 3 + [0.0])

    def test_offline_issues_every_query_at_once_and_reports_fractional_load(self):
        rec, summary = run(scenario="offline", queries=8, workers=4)
        self.assertEqual(len({r[1] for r in rec.rows}), 1)
        self.assertEqual(sorted(r[0] for r in rec.rows), list(range(8)))
        levels = {lvl for _, lvl in rec.loads}
        self.assertTrue(levels <= {0.0, 0.25, 0.5, 0.75, 1.0}, levels)
        self.assertTrue(any(0 < lvl < 1 for lvl in levels))
        self.assertEqual(summary["workers"], 4)

    def test_multistream_queries_carry_samples_per_query(self):
        rec, _ = run(scenario="multistream", queries=3, samples_per_query=4,
                     sut={"kind": "builtin", "work_ms": 1})
        self.assertEqual([r[4]["samples"] for r in rec.rows], [4, 4, 4])
        self.assertTrue(all(r[2] - r[1] >= 0.0039 for r in rec.rows))

    def test_batch_is_one_query_of_batch_size_samples(self):
        rec, summary = run(scenario="batch", batch_size=5, sut={"kind": "builtin", "work_ms": 1})
        self.assertEqual(len(rec.rows), 1)
        self.assertEqual(rec.rows[0][4]["samples"], 5)
        self.assertEqual(summary["queries_planned"], 1)

    def test_gaps_leave_idle_time_within_the_asked_range(self):
        rec, _ = run(scenario="gaps", queries=5, min_ms=30, max_ms=60, sut={"kind": "builtin", "work_ms": 1})
        gaps_ms = [(nxt[1] - cur[2]) * 1000 for cur, nxt in zip(rec.rows, rec.rows[1:])]
        self.assertEqual(len(gaps_ms), 4)
        for gap in gaps_ms:
            self.assertGreaterEqual(gap, 29.9)
            self.assertLess(gap, 60 + 250)  # upper slack for a busy CI machine

    def test_bursts_issue_each_burst_together_and_pause_between(self):
        rec, summary = run(scenario="bursts", bursts=3, burst_size=4, pause_ms=40,
                           sut={"kind": "builtin", "work_ms": 1})
        self.assertEqual(summary["queries_issued"], 12)
        by_burst = {}
        for row in rec.rows:
            by_burst.setdefault(row[4]["burst"], []).append(row)
        self.assertEqual(sorted(by_burst), [0, 1, 2])
        for b in (1, 2):
            self.assertEqual(len({r[1] for r in by_burst[b]}), 1)
            prev_done = max(r[2] for r in by_burst[b - 1])
            self.assertGreaterEqual(by_burst[b][0][1] - prev_done, 0.0399)

    def test_server_arrivals_are_seeded(self):
        def run_samples(seed):
            rec, _ = run(scenario="server", queries=6, qps=500, seed=seed,
                         sut={"kind": "builtin", "work_ms": 0})
            return [r[4]["sample"] for r in sorted(rec.rows)]

        self.assertEqual(run_samples(7), run_samples(7))
        self.assertNotEqual(run_samples(7), run_samples(8))


    def test_warmup_queries_load_the_device_but_are_not_reported(self):
        rec, summary = run(scenario="singlestream", queries=2, warmup=3, seed=5)
        self.assertEqual([r[0] for r in rec.rows], [0, 1])
        self.assertEqual([lvl for _, lvl in rec.loads].count(1.0), 5)
        self.assertEqual(summary["warmup"], {"queries": 3, "failed": 0, "first_error": None})
        plain, _ = run(scenario="singlestream", queries=2, seed=5)
        self.assertEqual([r[4]["sample"] for r in rec.rows], [r[4]["sample"] for r in plain.rows])

    def test_max_duration_ends_a_long_run(self):
        t0 = time.monotonic()
        rec, summary = run(scenario="gaps", queries=100, min_ms=50, max_ms=50, max_duration_s=0.3,
                           sut={"kind": "builtin", "work_ms": 1})
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertLess(len(rec.rows), 100)
        self.assertEqual(summary["stopped"], "max_duration_s reached")


class ErrorTest(unittest.TestCase):
    def server_sut(self, crash_at):
        return {"kind": "argv", "mode": "server", "argv": [sys.executable, "-c", SERVER_SRC, str(crash_at)]}

    def test_sut_crash_mid_run_marks_that_query_and_the_run_continues(self):
        rec, summary = run(scenario="singlestream", queries=5, sut=self.server_sut(2))
        self.assertEqual([r[3] for r in rec.rows], [True, True, False, True, True])
        self.assertIn("exited with code 3", rec.rows[2][4]["error"])
        self.assertEqual((summary["queries_ok"], summary["queries_failed"]), (4, 1))
        self.assertIn("query 2", summary["first_error"])
        self.assertEqual(summary["errors"][0]["count"], 1)
        self.assertIsNone(summary["stopped"])

    def test_on_error_stop_ends_the_run_after_the_failed_query(self):
        rec, summary = run(scenario="singlestream", queries=5, sut=self.server_sut(1), on_error="stop")
        self.assertEqual([r[3] for r in rec.rows], [True, False])
        self.assertIn("on_error", summary["stopped"])

    def test_endpoint_that_times_out_fails_each_query_and_the_run_completes(self):
        with StubServer(hang_s=1.0) as stub:
            _rec, summary = run(scenario="singlestream", queries=2,
                                sut={"kind": "http", "url": stub.url, "timeout_s": 0.2})
        self.assertEqual(summary["queries_failed"], 2)
        self.assertIn("timed out", summary["errors"][0]["error"])
        self.assertEqual(summary["errors"][0]["count"], 2)

    def test_sut_that_cannot_start_fails_the_workload_with_its_name(self):
        with self.assertRaises(LoadgenError) as ctx:
            run(scenario="singlestream", queries=2,
                sut={"kind": "argv", "mode": "server", "argv": ["/nonexistent/wattlab-sut"]})
        self.assertIn("/nonexistent/wattlab-sut", str(ctx.exception))

    def test_bad_spec_names_the_key(self):
        for spec, key in (({"scenario": "nope"}, "scenario"), ({"scenario": "server", "qps": -1}, "qps"),
                          ({"scenario": "singlestream", "queries": 2.5}, "queries"),
                          ({"scenario": "gaps", "min_ms": 10, "max_ms": 5}, "max_ms"),
                          ({"scenario": "offline", "on_error": "panic"}, "on_error"),
                          ({"scenario": "gaps", "generator": "mlperf"}, "generator")):
            with self.assertRaises(WorkloadSpecError) as ctx:
                normalize_spec(spec)
            self.assertIn(key, str(ctx.exception))


    def test_a_failing_query_recorder_ends_a_pooled_run_with_an_error_instead_of_hanging(self):
        def emit(qid, *rest):
            raise IOError("disk full")

        t0 = time.monotonic()
        with self.assertRaises(LoadgenError) as ctx:
            run_workload({"scenario": "offline", "queries": 20, "workers": 2, "generator": "builtin",
                          "sut": {"kind": "builtin", "work_ms": 1}},
                         time.monotonic, emit, lambda lvl: None, lambda: False)
        self.assertIn("disk full", str(ctx.exception))
        self.assertLess(time.monotonic() - t0, 5.0)


class StopTest(unittest.TestCase):
    def test_should_stop_is_honoured_between_queries(self):
        rec, summary = run(Recorder(stop_after=3), scenario="singlestream", queries=50)
        self.assertEqual(len(rec.rows), 3)
        self.assertEqual(summary["stopped"], "stop requested")

    def test_should_stop_interrupts_a_long_idle_gap(self):
        flag = threading.Event()
        threading.Timer(0.2, flag.set).start()
        rows = []
        t0 = time.monotonic()
        summary = run_workload(
            {"scenario": "gaps", "queries": 3, "min_ms": 20000, "max_ms": 20000, "generator": "builtin",
             "sut": {"kind": "builtin", "work_ms": 1}},
            time.monotonic, lambda *a: rows.append(a), lambda lvl: None, flag.is_set)
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(len(rows), 1)
        self.assertEqual(summary["stopped"], "stop requested")

    def test_stop_interrupts_a_query_still_running(self):
        flag = threading.Event()
        threading.Timer(0.2, flag.set).start()
        rows = []
        t0 = time.monotonic()
        summary = run_workload({"scenario": "singlestream", "queries": 3, "generator": "builtin",
                                "sut": {"kind": "builtin", "work_ms": 5000}},
                               time.monotonic, lambda *a: rows.append(a), lambda lvl: None, flag.is_set)
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(len(rows), 1)
        self.assertFalse(rows[0][3])
        self.assertIn("interrupted", rows[0][4]["error"])
        self.assertEqual(summary["stopped"], "stop requested")

    def test_stop_during_offline_leaves_the_rest_not_run(self):
        rec, summary = run(Recorder(stop_after=2), scenario="offline", queries=40, workers=1)
        self.assertLess(len(rec.rows), 40)
        self.assertEqual(summary["queries_not_run"] + summary["queries_issued"], 40)


class HttpWorkloadTest(unittest.TestCase):
    def test_http_queries_carry_ttft_and_tpot(self):
        with StubServer(ttft_ms=40, tpot_ms=10, tokens=4) as stub:
            rec, summary = run(scenario="singlestream", queries=2, sut={"kind": "http", "url": stub.url})
        self.assertEqual(summary["queries_ok"], 2)
        for row in rec.rows:
            self.assertGreaterEqual(row[4]["ttft_ms"], 39.0)
            self.assertGreaterEqual(row[4]["tpot_ms"], 9.0)
            self.assertEqual(row[4]["output_tokens"], 4)


if __name__ == "__main__":
    unittest.main()
