"""Field conditions on the device: a disk that fills up mid-job, and a wall clock that jumps (NTP step).

A full disk is injected as an os.write that runs out of space (portable, no root, no tmpfs), at the
job level, then the spool is reopened as a restarted daemon would. The wall clock is injected too:
sample times come from the monotonic clock and are mapped to wall time once per job (t0_wall).
stdlib unittest only, Python 3.6 compatible.
"""

import errno
import json
import os
import shutil
import tempfile
import unittest

from agents.jobs import Job, normalize_spec
from agents.samplers.base import Reading, Sampler
from agents.spool import Spool

WALL0 = 1.7e9  # the device's wall clock at job start (UTC epoch s)


class MonoClock(object):
    """The device's monotonic clock, advanced only by the job's sleeps."""

    def __init__(self, t=5000.0):
        self.t = t

    def __call__(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds


class SteppingWall(object):
    """A wall clock that follows `mono` and steps by `step_s` once mono passes `at_mono` (an NTP step)."""

    def __init__(self, mono, at_mono, step_s):
        self.mono = mono
        self.start = mono()
        self.at_mono = at_mono
        self.step_s = step_s

    def __call__(self):
        wall = WALL0 + (self.mono() - self.start)
        return wall + self.step_s if self.mono() >= self.at_mono else wall


class RampSampler(Sampler):
    """Power rises 1 W per second of monotonic time; `stamp` gives each reading's own timestamp."""

    name = "ramp"

    def __init__(self, clock, stamp=None):
        Sampler.__init__(self, "ramp:0", clock)
        self.stamp = stamp or clock
        self.start = clock()

    @classmethod
    def available(cls, **kw):
        return None

    def read(self):
        w = 10.0 + (self.clock() - self.start)
        return Reading(self.stamp(), {"rail": w}, w, None)

    def describe(self):
        return {"name": "ramp", "device": self.device, "rails": ["rail"], "total_rail": "rail"}


class DiskFills(object):
    """os.write for one spool: stores `budget` bytes, writes part of the next batch, then ENOSPC forever."""

    def __init__(self, budget):
        self.budget = budget
        self.failures = 0

    def __call__(self, fd, data):
        data = bytes(data)
        if len(data) <= self.budget:
            self.budget -= len(data)
            return os.write(fd, data)
        if self.budget > 0:  # the disk takes a torn half row before it is full
            n = os.write(fd, data[: self.budget])
            self.budget = 0
            return n
        self.failures += 1
        raise OSError(errno.ENOSPC, "No space left on device")


class DeviceCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wl-field-")
        self.published = []

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_job(self, spool, job_id, clock, wall, sampler=None, **spec):
        args = {"device": "ramp:0", "interval_ms": 100}
        args.update(spec)
        js = spool.create(job_id, {})
        job = Job(job_id, normalize_spec(args), sampler or RampSampler(clock), js, clock, wall,
                  self.published.append, clock.sleep)
        job.prepare()
        job.run()
        return job


class DiskFullTest(DeviceCase):
    def setUp(self):
        DeviceCase.setUp(self)
        self.root = os.path.join(self.tmp, "jobs")
        self.disk = DiskFills(budget=4000)
        clock = MonoClock()
        wall = SteppingWall(clock, 1e9, 0)
        self.job = self.run_job(Spool(self.root, writer=self.disk), "full", clock, wall, duration_s=60.0)

    def test_a_full_disk_stops_sampling_early_with_one_clear_error(self):
        self.assertEqual(self.job.state, "failed")
        self.assertLess(self.job.totals.samples, 601, "sampling must stop, not run on into memory")
        errors = [r[3]["message"] for r in self.job.spool.read("events", -1, 1000) if r[2] == "error"]
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("disk full", errors[0])
        self.assertIn("sampling stopped", errors[0])
        self.assertIn(self.job.spool.path, errors[0], "the message says where to free space")
        self.assertEqual(self.job.status()["spool_error"][:9], "disk full")

    def test_the_error_reaches_the_console_live_although_the_disk_cannot_store_it(self):
        live = [m["rows"][0] for m in self.published if m.get("event") == "log"]
        self.assertTrue(any(r[2] == "error" and "disk full" in r[3]["message"] for r in live))
        self.assertEqual(self.published[-1]["event"], "job")
        self.assertEqual(self.published[-1]["state"], "failed")

    def test_every_sample_taken_stays_readable_while_the_daemon_lives(self):
        rows = self.job.spool.read("samples", -1, 100000)
        self.assertEqual([r[0] for r in rows], list(range(self.job.totals.samples)))

    def test_what_is_stored_is_never_corrupted_and_reopens_cleanly(self):
        self.assertGreater(self.disk.failures, 0)
        in_memory = self.job.spool.read("samples", -1, 100000)
        reopened = Spool(self.root).open("full")  # a restarted daemon, the disk still full
        stream = reopened.stream("samples")
        self.assertEqual(stream.repaired_bytes, 0, "the torn half row was cut back at once, not left behind")
        with open(stream.path, "rb") as f:
            lines = f.read().splitlines(True)
        self.assertTrue(lines, "rows written before the disk filled are kept")
        stored = [json.loads(line.decode("utf-8")) for line in lines]  # every line is one whole row
        self.assertEqual(stored, in_memory[: len(stored)])
        self.assertEqual(reopened.last_seq()["samples"], len(stored) - 1)
        with open(os.path.join(reopened.path, "job.json")) as f:
            self.assertEqual(json.load(f)["job"], "full")  # job.json is whole (old or new, never torn)


class WallClockJumpTest(DeviceCase):
    def jump_job(self, step_s):
        clock = MonoClock()
        wall = SteppingWall(clock, at_mono=clock() + 2.05, step_s=step_s)  # the step lands mid-job
        job = self.run_job(Spool(self.tmp), "jump{}".format(int(abs(step_s))), clock, wall, duration_s=4.0)
        return job

    def check_untorn(self, job):
        rows = job.spool.read("samples", -1, 100000)
        self.assertEqual(job.state, "finished")
        self.assertEqual([r[0] for r in rows], list(range(41)), "seq contiguous, none skipped or doubled")
        self.assertEqual([r[1] for r in rows], [round(k * 0.1, 6) for k in range(41)])
        self.assertEqual(job.totals.skipped_ticks, 0)
        self.assertEqual(job.totals.late_reads, 0)
        self.assertAlmostEqual(job.totals.as_dict()["duration_s"], 4.0)
        return rows

    def test_a_wall_clock_step_forward_mid_job_does_not_tear_the_run(self):
        job = self.jump_job(+3600.0)
        self.check_untorn(job)
        self.assertAlmostEqual(job.totals.energy.energy_j, 10 * 4.0 + 4.0 ** 2 / 2, places=6)

    def test_a_wall_clock_step_back_mid_job_does_not_tear_the_run(self):
        job = self.jump_job(-3600.0)
        self.check_untorn(job)

    def test_wall_time_is_mapped_once_per_job_from_t0_wall(self):
        job = self.jump_job(+3600.0)
        self.assertEqual(job.t0_wall, WALL0)
        with open(os.path.join(job.spool.path, "job.json")) as f:
            meta = json.load(f)
        self.assertEqual(meta["t0_wall"], WALL0, "t0_wall is taken at t0 and never rewritten")
        self.assertEqual(job.status()["t0_wall"], WALL0)
        # the console places sample k at t0_wall + t_s: 4 s of samples span 4 s of wall time
        rows = job.spool.read("samples", -1, 100000)
        self.assertAlmostEqual(meta["t0_wall"] + rows[-1][1] - (meta["t0_wall"] + rows[0][1]), 4.0)
        started = [m for m in self.published if m.get("event") == "job" and m.get("t0_wall") is not None]
        self.assertTrue(all(m["t0_wall"] == WALL0 for m in started))

    def test_reading_timestamps_from_a_jumping_clock_are_replaced_by_the_monotonic_time(self):
        # a source that stamps readings with the (stepping) wall clock must not leak that clock into t_s
        clock = MonoClock()
        wall = SteppingWall(clock, at_mono=clock() + 2.05, step_s=3600.0)
        sampler = RampSampler(clock, stamp=wall)
        job = self.run_job(Spool(self.tmp), "stamped", clock, wall, sampler, duration_s=4.0)
        self.check_untorn(job)


if __name__ == "__main__":
    unittest.main()
