"""Loadgen workloads run in a child process: results come back, stops reach it, its death is reported."""

import sys
import threading
import time
import unittest
from unittest import mock

from agents import workload_proc
from agents.workload_proc import WorkloadProcessError, run_in_child

SPEC = {"kind": "loadgen", "scenario": "singlestream", "queries": 8, "generator": "builtin",
        "sut": {"kind": "builtin", "work_ms": 5.0}}


class WorkloadInChildTest(unittest.TestCase):
    def test_queries_come_back_on_the_parents_monotonic_clock(self):
        queries, loads = [], []
        t_before = time.monotonic()
        result = run_in_child(SPEC, time.monotonic, lambda *q: queries.append(q), loads.append, lambda: False)
        t_after = time.monotonic()
        self.assertTrue(result["isolated"])
        self.assertEqual(len(queries), 8)
        for _qid, issue_t, done_t, ok, _extra in queries:
            self.assertTrue(ok)
            self.assertTrue(t_before <= issue_t <= done_t <= t_after)
        self.assertIn(1.0, loads)
        self.assertEqual(loads[-1], 0.0)

    def test_a_stop_ends_the_child_early(self):
        spec = dict(SPEC, queries=100000)
        stop = threading.Event()
        threading.Timer(0.5, stop.set).start()
        t0 = time.monotonic()
        run_in_child(spec, time.monotonic, lambda *q: None, lambda level: None, stop.is_set)
        self.assertLess(time.monotonic() - t0, 5.0)

    def test_a_child_that_dies_is_an_error_not_a_crash(self):
        code = "import os, sys; sys.stderr.write('boom'); sys.stderr.flush(); os.abort()"
        argv = [sys.executable, "-c", code]
        with mock.patch.object(workload_proc, "child_command", return_value=(argv, None)):
            with self.assertRaises(WorkloadProcessError) as ctx:
                run_in_child(SPEC, time.monotonic, lambda *q: None, lambda level: None, lambda: False)
        self.assertIn("signal 6", str(ctx.exception))
        self.assertIn("boom", str(ctx.exception))

    def test_a_bad_spec_is_reported_with_the_generators_message(self):
        with self.assertRaises(WorkloadProcessError) as ctx:
            run_in_child(dict(SPEC, scenario="nope"), time.monotonic, lambda *q: None, lambda level: None,
                         lambda: False)
        self.assertIn("scenario", str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
