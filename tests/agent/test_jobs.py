"""Jobs: absolute-deadline sampling, idle window and net energy, workloads, failures that keep samples."""

import errno
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

from agents.jobs import Job, SpecError, normalize_spec
from agents.samplers.base import Reading, Sampler, SamplerError
from agents.spool import Spool


class FakeClock(object):
    """Monotonic time the test controls; sleep() advances it exactly."""

    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds


class ScriptedSampler(Sampler):
    """A test double: power is a function of time since `start`; reads can fail or come late."""

    name = "double"

    def __init__(
        self, clock, power=None, counter=None, start=1000.0, fail_at=(), delay_at=None, notices=None
    ):
        Sampler.__init__(self, "double:0", clock)
        self.power = power or (lambda t: 10.0)
        self.counter = counter
        self.start = start
        self.fail_at = set(fail_at)
        self.delay_at = delay_at or {}
        self.notices = list(notices or [])
        self.reads = 0
        self.loads = []
        self.closed = False

    @classmethod
    def available(cls, **kw):
        return None

    def read(self):
        self.reads += 1
        if self.reads in self.fail_at:
            raise SamplerError("i2c read timed out on /dev/i2c-1")
        if self.reads in self.delay_at and hasattr(self.clock, "sleep"):
            self.clock.sleep(self.delay_at[self.reads])
        t = self.clock()
        w = self.power(t - self.start)
        e = self.counter(t - self.start) if self.counter else None
        return Reading(t, {"rail": w}, w, e)

    def drain_notices(self):
        out, self.notices = self.notices, []
        return out

    def set_load(self, level):
        self.loads.append(level)

    def close(self):
        self.closed = True

    def describe(self):
        return {"name": "double", "device": self.device, "rails": ["rail"], "total_rail": "rail"}


class FailingWriter(object):
    """os.write that stores `budget` bytes, then fails with ENOSPC."""

    def __init__(self, budget):
        self.budget = budget

    def __call__(self, fd, data):
        data = bytes(data)
        if len(data) > self.budget:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.budget -= len(data)
        return os.write(fd, data)


def spec(**kw):
    args = {"device": "double:0", "interval_ms": 100}
    args.update(kw)
    return normalize_spec(args)


class JobCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wl-jobs-")
        self.spool = Spool(self.tmp)
        self.events = []

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def fake_job(self, job_spec, sampler=None, clock=None, spool=None, **kw):
        """A job on a fake clock, run synchronously to its end."""
        clock = clock or FakeClock()
        sampler = sampler or ScriptedSampler(clock)
        js = (spool or self.spool).create("j{}".format(len(os.listdir(self.tmp))), {})
        job = Job(
            js.job_id, job_spec, sampler, js, clock, lambda: 1.7e9, self.events.append, clock.sleep, **kw
        )
        job.prepare()
        job.run()
        return job

    def real_job(self, job_spec, sampler=None, **kw):
        """A job on the real clock in its own thread (for workloads and stop)."""
        sampler = sampler or ScriptedSampler(time.monotonic, start=time.monotonic())
        js = self.spool.create("r{}".format(len(os.listdir(self.tmp))), {})
        job = Job(js.job_id, job_spec, sampler, js, listener=self.events.append, **kw)
        job.start()
        return job

    def rows(self, job, stream):
        return job.spool.read(stream, -1, 100000)

    def event_kinds(self, job):
        return [r[2] for r in self.rows(job, "events")]


class ScheduleTest(JobCase):
    def test_samples_follow_absolute_deadlines_without_drift(self):
        clock = FakeClock()
        sampler = ScriptedSampler(clock)
        orig_read = sampler.read

        def slow_read():
            r = orig_read()
            clock.sleep(0.03)  # each read costs 30 ms: a relative sleep would drift by 30 ms a sample
            return r

        sampler.read = slow_read
        job = self.fake_job(spec(duration_s=2.0), sampler, clock)
        ts = [r[1] for r in self.rows(job, "samples")]
        self.assertEqual(len(ts), 21)
        for k, t in enumerate(ts):
            self.assertAlmostEqual(t, k * 0.1, places=6)
        self.assertEqual(job.state, "finished")

    def test_a_late_read_keeps_its_real_time_and_missed_deadlines_are_skipped(self):
        clock = FakeClock()
        sampler = ScriptedSampler(clock, delay_at={5: 0.33})
        job = self.fake_job(spec(duration_s=1.0), sampler, clock)
        ts = [r[1] for r in self.rows(job, "samples")]
        self.assertEqual([round(t, 6) for t in ts[:7]], [0.0, 0.1, 0.2, 0.3, 0.73, 0.73, 0.8])
        self.assertEqual(job.totals.skipped_ticks, 2)
        self.assertEqual(job.totals.late_reads, 1)
        self.assertEqual([r[0] for r in self.rows(job, "samples")], list(range(len(ts))))

    def test_constant_power_integrates_exactly(self):
        job = self.fake_job(spec(duration_s=2.0))
        totals = job.status()["totals"]
        self.assertAlmostEqual(totals["energy_j"], 20.0, places=9)
        self.assertAlmostEqual(totals["mean_w"], 10.0, places=9)
        self.assertEqual(totals["samples"], 21)

    def test_hardware_counter_energy_is_relative_to_the_job_start(self):
        clock = FakeClock()
        sampler = ScriptedSampler(clock, counter=lambda t: 5000.0 + 10.0 * t)
        job = self.fake_job(spec(duration_s=1.0), sampler, clock)
        for row in self.rows(job, "samples"):
            self.assertAlmostEqual(row[4], 10.0 * row[1], places=6)
        self.assertAlmostEqual(job.status()["totals"]["energy_counter_j"], 10.0, places=6)


class IdleWindowTest(JobCase):
    def test_idle_window_gives_idle_power_and_net_energy(self):
        clock = FakeClock()
        sampler = ScriptedSampler(clock, power=lambda t: 5.0 if t < 0.999 else 15.0)
        job = self.fake_job(spec(idle_s=1.0, duration_s=1.0), sampler, clock)
        totals = job.status()["totals"]
        self.assertEqual(totals["samples"], 21)
        self.assertAlmostEqual(totals["idle_w"], 5.0)
        self.assertAlmostEqual(totals["energy_j"], 4.5 + 1.0 + 15.0)
        self.assertAlmostEqual(totals["load_energy_j"], 16.0)
        self.assertAlmostEqual(totals["load_duration_s"], 1.1)
        self.assertAlmostEqual(totals["energy_net_j"], 16.0 - 5.0 * 1.1)
        marks = [r for r in self.rows(job, "events") if r[2] == "load_start"]
        self.assertEqual(len(marks), 1)
        self.assertAlmostEqual(marks[0][1], 1.0)
        states = [r[3]["state"] for r in self.rows(job, "events") if r[2] == "state"]
        self.assertEqual(states, ["idle", "running", "finished"])

    def test_no_idle_window_means_no_idle_figures(self):
        totals = self.fake_job(spec(duration_s=0.5)).status()["totals"]
        self.assertIsNone(totals["idle_w"])
        self.assertIsNone(totals["energy_net_j"])


class SamplerTroubleTest(JobCase):
    def test_read_errors_give_none_values_and_one_notice(self):
        clock = FakeClock()
        sampler = ScriptedSampler(clock, fail_at=(3, 4, 5))
        job = self.fake_job(spec(duration_s=1.0), sampler, clock)
        samples = self.rows(job, "samples")
        self.assertEqual(len(samples), 11)
        self.assertEqual([r[2] for r in samples[2:5]], [None, None, None])
        self.assertEqual(samples[2][3], {})
        notices = [r for r in self.rows(job, "events") if r[2] == "notice"]
        self.assertEqual(len(notices), 1)
        self.assertIn("i2c read timed out", notices[0][3]["message"])
        self.assertEqual(job.totals.read_errors, 3)
        self.assertEqual(job.state, "finished")

    def test_sampler_notices_become_event_rows(self):
        clock = FakeClock()
        sampler = ScriptedSampler(clock, notices=["power rails need root: run tegrastats as root"])
        job = self.fake_job(spec(duration_s=0.3), sampler, clock)
        notices = [r[3]["message"] for r in self.rows(job, "events") if r[2] == "notice"]
        self.assertEqual(notices, ["power rails need root: run tegrastats as root"])

    def test_a_job_stopped_before_it_runs_takes_one_sample_and_starts_no_workload(self):
        clock = FakeClock()
        js = self.spool.create("early", {})
        wl = {"kind": "argv", "argv": [sys.executable, "-c", "import time; time.sleep(60)"]}
        job = Job(
            "early", spec(workload=wl), ScriptedSampler(clock), js, clock, lambda: 1.7e9, None, clock.sleep
        )
        job.prepare()
        job.stop()
        job.run()
        self.assertEqual(job.state, "stopped")
        self.assertEqual(job.totals.samples, 1)
        self.assertNotIn("workload_start", self.event_kinds(job))

    def test_the_job_closes_its_sampler(self):
        clock = FakeClock()
        sampler = ScriptedSampler(clock)
        self.fake_job(spec(duration_s=0.1), sampler, clock)
        self.assertTrue(sampler.closed)


class DiskFullTest(JobCase):
    def test_disk_full_stops_sampling_with_an_event_and_keeps_every_row(self):
        spool = Spool(os.path.join(self.tmp, "full"), writer=FailingWriter(budget=1500))
        job = self.fake_job(spec(duration_s=30.0), spool=spool)
        self.assertEqual(job.state, "failed")
        self.assertIn("disk full", job.error)
        samples = self.rows(job, "samples")
        self.assertLess(len(samples), 301)  # it stopped early...
        self.assertEqual([r[0] for r in samples], list(range(len(samples))))  # ...with nothing lost
        errors = [r[3]["message"] for r in self.rows(job, "events") if r[2] == "error"]
        self.assertTrue(errors and "disk full" in errors[0])
        live = [m for m in self.events if m["event"] == "log" and m["rows"][0][2] == "error"]
        self.assertTrue(live, "the disk-full error is sent live")
        with open(os.path.join(job.spool.path, "samples.jsonl")) as f:
            stored = [json.loads(line) for line in f]  # every stored line is a whole row
        self.assertEqual(stored, samples[: len(stored)])


class LiveEventsTest(JobCase):
    def test_live_sample_batches_are_rate_limited_and_complete(self):
        job = self.fake_job(spec(interval_ms=10, duration_s=2.0))
        batches = [m for m in self.events if m["event"] == "samples"]
        self.assertLessEqual(len(batches), 2.0 / 0.2 + 2)
        seqs = [r[0] for m in batches for r in m["rows"]]
        self.assertEqual(seqs, list(range(job.totals.samples)))
        self.assertTrue(all(m["job"] == job.job_id and m["type"] == "event" for m in self.events))
        self.assertEqual(self.events[-1]["event"], "job")
        self.assertEqual(self.events[-1]["state"], "finished")


class WorkloadTest(JobCase):
    def test_a_missing_workload_fails_the_job_and_keeps_its_samples(self):
        job = self.real_job(
            spec(
                interval_ms=20,
                idle_s=0.1,
                workload={"kind": "argv", "argv": ["/nonexistent/wattlab-no-such-program"]},
            )
        )
        self.assertTrue(job.join(10))
        self.assertEqual(job.state, "failed")
        self.assertIn("workload not found", job.error)
        self.assertIn("/nonexistent/wattlab-no-such-program", job.error)
        errors = [r[3]["message"] for r in self.rows(job, "events") if r[2] == "error"]
        self.assertEqual(errors, [job.error])
        # the idle window's samples (k = 0..4) and the one at the boundary are all kept
        self.assertEqual(len(self.rows(job, "samples")) + job.totals.skipped_ticks, 6)
        again = Spool(self.tmp).open(job.job_id)
        self.assertEqual(again.meta["state"], "failed")
        self.assertIn("workload not found", again.meta["error"])
        self.assertEqual(again.last_seq()["samples"], len(self.rows(job, "samples")) - 1)

    def test_a_workload_exiting_non_zero_fails_the_job_with_its_stderr(self):
        argv = [
            sys.executable,
            "-c",
            "import sys, time; time.sleep(0.2); sys.stderr.write('model.onnx missing\\n'); sys.exit(3)",
        ]
        job = self.real_job(spec(interval_ms=20, workload={"kind": "argv", "argv": argv}))
        self.assertTrue(job.join(10))
        self.assertEqual(job.state, "failed")
        self.assertIn("exited with code 3", job.error)
        exits = [r[3] for r in self.rows(job, "events") if r[2] == "workload_exit"]
        self.assertEqual(exits[0]["rc"], 3)
        self.assertIn("model.onnx missing", exits[0]["stderr_tail"])
        self.assertGreaterEqual(len(self.rows(job, "samples")) + job.totals.skipped_ticks, 10)  # >= 0.2 s

    def test_a_successful_workload_ends_the_job_and_drives_the_load(self):
        sampler = ScriptedSampler(time.monotonic, start=time.monotonic())
        argv = [sys.executable, "-c", "import time; time.sleep(0.3)"]
        job = self.real_job(spec(interval_ms=20, workload={"kind": "argv", "argv": argv}), sampler)
        self.assertTrue(job.join(10))
        self.assertEqual(job.state, "finished", job.error)
        self.assertEqual(sampler.loads[0], 1.0)
        self.assertEqual(sampler.loads[-1], 0.0)
        self.assertGreaterEqual(job.totals.samples + job.totals.skipped_ticks, 15)  # >= 0.3 s at 20 ms

    def test_argv_workloads_never_go_through_a_shell(self):
        out = os.path.join(self.tmp, "argv.json")
        script = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"
        tricky = ["a; touch pwned", "$(touch pwned2)", "*", "`id`"]
        argv = [sys.executable, "-c", script, out, *tricky]
        job = self.real_job(spec(interval_ms=20, workload={"kind": "argv", "argv": argv, "cwd": self.tmp}))
        self.assertTrue(job.join(10))
        self.assertEqual(job.state, "finished", job.error)
        with open(out) as f:
            self.assertEqual(json.load(f), tricky)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "pwned")))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "pwned2")))

    def test_a_missing_working_directory_is_named(self):
        wl = {"kind": "argv", "argv": [sys.executable, "-c", "pass"], "cwd": "/nonexistent/wattlab-dir"}
        job = self.real_job(spec(interval_ms=20, workload=wl))
        self.assertTrue(job.join(10))
        self.assertEqual(job.state, "failed")
        self.assertIn("cwd does not exist", job.error)

    def test_a_shell_string_workload_is_refused(self):
        with self.assertRaisesRegex(SpecError, "not a shell string"):
            spec(workload={"kind": "argv", "argv": "sleep 1; rm -rf ~"})

    def test_stop_ends_the_job_and_its_workload(self):
        argv = [sys.executable, "-c", "import time; time.sleep(60)"]
        job = self.real_job(spec(interval_ms=20, workload={"kind": "argv", "argv": argv}))
        time.sleep(0.3)
        t = time.monotonic()
        job.stop()
        self.assertTrue(job.join(10))
        self.assertLess(time.monotonic() - t, 6)
        self.assertEqual(job.state, "stopped")
        exits = [r[3] for r in self.rows(job, "events") if r[2] == "workload_exit"]
        self.assertTrue(exits[0]["terminated"])

    def test_loadgen_queries_are_spooled_on_the_job_clock(self):
        calls = {}

        def fake_run_workload(wl, clock, emit_query, set_load, should_stop):
            calls["spec"] = wl
            set_load(1.0)
            for q in range(3):
                t = clock()
                emit_query(q, t, t + 0.01, True, {"tokens": 4})
            set_load(0.0)
            return {"generator": "builtin", "scenario": wl["scenario"], "queries": 3}

        sampler = ScriptedSampler(time.monotonic, start=time.monotonic())
        wl = {
            "kind": "loadgen",
            "scenario": "singlestream",
            "queries": 3,
            "sut": {"kind": "builtin", "work_ms": 1},
        }
        job = self.real_job(spec(interval_ms=20, workload=wl), sampler, run_workload=fake_run_workload)
        self.assertTrue(job.join(10))
        self.assertEqual(job.state, "finished", job.error)
        queries = self.rows(job, "queries")
        self.assertEqual([q[:2] for q in queries], [[0, 0], [1, 1], [2, 2]])
        for q in queries:
            self.assertTrue(0 <= q[2] < 5, q)
            self.assertAlmostEqual(q[3] - q[2], 0.01, places=5)
            self.assertEqual(q[4:], [True, {"tokens": 4}])
        self.assertEqual(job.workload_summary["queries"], 3)
        self.assertIn(1.0, sampler.loads)


class SpecTest(unittest.TestCase):
    def test_bad_start_arguments_are_refused_with_their_name(self):
        for args, word in (
            ({}, "device"),
            ({"device": "sim:x", "interval_ms": 0}, "interval_ms"),
            ({"device": "sim:x", "interval_ms": True}, "interval_ms"),
            ({"device": "sim:x", "idle_s": -1}, "idle_s"),
            ({"device": "sim:x", "duration_s": "3"}, "duration_s"),
            ({"device": "sim:x", "workload": {"kind": "docker"}}, "workload"),
            ({"device": "sim:x", "workload": {"kind": "argv", "argv": []}}, "argv"),
            ({"device": "sim:x", "meta": [1]}, "meta"),
            ({"device": "sim:x", "sampler_opts": {"clock": 1}}, "sampler_opts"),
            ({"device": "sim:x", "sampler_opts": {"seed": [1]}}, "sampler_opts"),
        ):
            with self.assertRaisesRegex(SpecError, word, msg=str(args)):
                normalize_spec(args)

    def test_defaults_are_filled_in(self):
        s = normalize_spec({"device": "sim:x"})
        self.assertEqual(
            (s["interval_ms"], s["idle_s"], s["duration_s"], s["workload"]), (100, 0.0, None, None)
        )


if __name__ == "__main__":
    unittest.main()
