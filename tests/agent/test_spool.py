"""Spool: contiguous seq, crash-safe reopen, indexed reads, acks, and a full disk that corrupts nothing."""

import errno
import json
import os
import shutil
import tempfile
import unittest

from agents.spool import INDEX_EVERY, JobSpool, Spool, SpoolError, Stream


class FakeClock(object):
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


class FailingWriter(object):
    """os.write that stores `budget` bytes, then fails with ENOSPC (optionally after a partial write)."""

    def __init__(self, budget, partial=False):
        self.budget = budget
        self.partial = partial

    def __call__(self, fd, data):
        data = bytes(data)
        if len(data) <= self.budget:
            self.budget -= len(data)
            return os.write(fd, data)
        if self.partial and self.budget > 0:
            n = os.write(fd, data[: self.budget])
            self.budget = 0
            return n
        raise OSError(errno.ENOSPC, "No space left on device")


class TmpDirCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wl-spool-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)


class StreamTest(TmpDirCase):
    def test_seq_is_contiguous_from_zero(self):
        s = Stream(self.path("s.jsonl"))
        rows = [s.append([i * 0.1, float(i)]) for i in range(5)]
        self.assertEqual([r[0] for r in rows], [0, 1, 2, 3, 4])
        self.assertIsNone(s.flush())
        self.assertEqual(s.last_seq, 4)
        with open(self.path("s.jsonl")) as f:
            self.assertEqual([json.loads(line)[0] for line in f], [0, 1, 2, 3, 4])

    def test_empty_stream_has_last_seq_minus_one(self):
        self.assertEqual(Stream(self.path("s.jsonl")).last_seq, -1)

    def test_reopen_continues_the_seq(self):
        s = Stream(self.path("s.jsonl"))
        for i in range(3):
            s.append([i])
        s.close()
        s2 = Stream(self.path("s.jsonl"))
        self.assertEqual(s2.append(["x"])[0], 3)

    def test_torn_last_line_is_dropped_on_reopen(self):
        s = Stream(self.path("s.jsonl"))
        for i in range(3):
            s.append([i])
        s.close()
        with open(self.path("s.jsonl"), "ab") as f:
            f.write(b'[3,0.3,{"a":')  # a crash in the middle of a write
        s2 = Stream(self.path("s.jsonl"))
        self.assertEqual(s2.last_seq, 2)
        self.assertGreater(s2.repaired_bytes, 0)
        s2.append(["next"])
        s2.close()
        with open(self.path("s.jsonl")) as f:
            rows = [json.loads(line) for line in f]
        self.assertEqual([r[0] for r in rows], [0, 1, 2, 3])
        self.assertEqual(rows[3], [3, "next"])

    def test_a_garbled_last_row_at_an_index_boundary_is_dropped_and_reads_stay_right(self):
        s = Stream(self.path("s.jsonl"))
        for i in range(INDEX_EVERY):
            s.append([i])
        s.close()
        with open(self.path("s.jsonl"), "ab") as f:
            f.write(b'[256,{"torn":]\n')  # looks like a row, is not JSON
        s2 = Stream(self.path("s.jsonl"))
        self.assertEqual(s2.last_seq, INDEX_EVERY - 1)
        s2.append(["new"])
        s2.flush()
        self.assertEqual(
            s2.read(INDEX_EVERY - 2, 5), [[INDEX_EVERY - 1, INDEX_EVERY - 1], [INDEX_EVERY, "new"]]
        )
        self.assertEqual(Stream(self.path("s.jsonl")).read(INDEX_EVERY - 1, 5), [[INDEX_EVERY, "new"]])

    def test_rows_are_readable_before_they_are_flushed(self):
        s = Stream(self.path("s.jsonl"))
        for i in range(10):
            s.append([i])
        s.flush()
        for i in range(10, 15):
            s.append([i])
        self.assertEqual([r[0] for r in s.read(7, 100)], list(range(8, 15)))
        self.assertEqual([r[0] for r in s.read(11, 100)], [12, 13, 14])

    def test_read_after_seq_seeks_through_the_index(self):
        s = Stream(self.path("s.jsonl"))
        n = INDEX_EVERY * 3 + 17
        for i in range(n):
            s.append([i, "x" * (i % 7)])
            if i % 100 == 0:
                s.flush()
        s.close()
        s2 = Stream(self.path("s.jsonl"))
        for after in (-1, 0, INDEX_EVERY - 1, INDEX_EVERY, 2 * INDEX_EVERY + 5, n - 2, n - 1):
            rows = s2.read(after, 5)
            expected = list(range(after + 1, min(after + 6, n)))
            self.assertEqual([r[0] for r in rows], expected, "after_seq={}".format(after))
            for r in rows:
                self.assertEqual(r, [r[0], r[0], "x" * (r[0] % 7)])

    def test_read_is_bounded_by_bytes_but_returns_at_least_one_row(self):
        s = Stream(self.path("s.jsonl"))
        for i in range(50):
            s.append([i, "y" * 100])
        s.flush()
        self.assertEqual(len(s.read(-1, 1000, max_bytes=1)), 1)
        rows = s.read(-1, 1000, max_bytes=1000)
        self.assertTrue(5 <= len(rows) < 10, len(rows))

    def test_disk_full_keeps_rows_in_memory_and_the_file_intact(self):
        s = Stream(self.path("s.jsonl"), writer=FailingWriter(budget=60))
        for i in range(3):
            s.append([i, 1.5])
        self.assertIsNone(s.flush())  # 3 short rows fit in the budget
        stored = open(self.path("s.jsonl"), "rb").read()
        for i in range(3, 20):
            s.append([i, 1.5])
        err = s.flush()
        self.assertIn("disk full", err)
        self.assertEqual(open(self.path("s.jsonl"), "rb").read(), stored)
        self.assertEqual([r[0] for r in s.read(-1, 100)], list(range(20)))
        s.append([20, 1.5])  # later rows still get their seq, in memory
        self.assertEqual(s.last_seq, 20)

    def test_a_partial_write_before_enospc_is_cut_back_to_whole_rows(self):
        s = Stream(self.path("s.jsonl"), writer=FailingWriter(budget=25, partial=True))
        for i in range(5):
            s.append([i, "abcdef"])
        self.assertIn("disk full", s.flush())
        s.close()
        self.assertEqual(os.path.getsize(self.path("s.jsonl")), 0)
        self.assertEqual(Stream(self.path("s.jsonl")).last_seq, -1)


class JobSpoolTest(TmpDirCase):
    def test_rows_are_written_every_tenth_of_a_second_and_synced_every_half(self):
        clock = FakeClock()
        root = Spool(self.tmp)
        root.create("j1", {"state": "running"}).close()
        js = JobSpool(root.job_path("j1"), clock=clock)
        path = os.path.join(js.path, "samples.jsonl")
        syncs = []
        js.stream("samples")._fsync = syncs.append
        sizes = []
        for i in range(12):  # one row every 50 ms for 0.6 s
            clock.t = 100.0 + i * 0.05
            js.append("samples", [i * 0.05, 1.0, {}, None])
            js.maybe_flush()
            sizes.append(os.path.getsize(path))
        grew = [i for i in range(1, 12) if sizes[i] > sizes[i - 1]]
        self.assertEqual(grew, [2, 4, 6, 8, 10])  # the first call wrote, then every 0.1 s
        self.assertEqual(len(syncs), 2)  # at 0 s and at 0.5 s

    def test_an_unsynced_flush_writes_without_fsync(self):
        syncs = []
        s = Stream(self.path("s.jsonl"), fsync=syncs.append)
        s.append([0])
        s.flush(sync=False)
        self.assertEqual((os.path.getsize(self.path("s.jsonl")), syncs), (len(b"[0,0]\n"), []))
        s.flush(sync=True)
        self.assertEqual(len(syncs), 1)
        s.flush(sync=True)  # nothing new written: nothing to sync
        self.assertEqual(len(syncs), 1)

    def test_ack_is_recorded_in_job_json_and_survives_reopen(self):
        root = Spool(self.tmp)
        js = root.create("j1", {"state": "running"})
        for i in range(4):
            js.append("samples", [i * 0.1, 1.0, {}, None])
        js.maybe_flush(force=True)
        js.ack("samples", 2)
        js.ack("samples", 1)  # acks never go back
        js.close()
        again = root.open("j1")
        self.assertEqual(again.meta["acked"]["samples"], 2)
        self.assertEqual(again.last_seq()["samples"], 3)

    def test_unacked_or_running_jobs_are_never_removed(self):
        root = Spool(self.tmp)
        js = root.create("j1", {"state": "running"})
        js.append("samples", [0.0, 1.0, {}, None])
        with self.assertRaises(SpoolError):
            root.remove(js)
        js.update_meta(state="finished")
        with self.assertRaisesRegex(SpoolError, "not acknowledged"):
            root.remove(js)
        self.assertTrue(root.exists("j1"))

    def test_a_finished_fully_acked_job_is_removed(self):
        root = Spool(self.tmp)
        js = root.create("j1", {"state": "finished"})
        js.append("samples", [0.0, 1.0, {}, None])
        js.append("events", [0.0, "state", {}])
        js.maybe_flush(force=True)
        js.ack("samples", 0)
        js.ack("events", 0)
        root.remove(js)
        self.assertFalse(root.exists("j1"))
        self.assertEqual(root.job_ids(), [])

    def test_job_ids_that_are_not_plain_names_are_refused(self):
        root = Spool(self.tmp)
        for bad in ("../x", "a/b", "", ".hidden", "x" * 65):
            with self.assertRaises(SpoolError, msg=bad):
                root.create(bad, {})

    def test_a_job_id_cannot_be_reused(self):
        root = Spool(self.tmp)
        root.create("j1", {}).close()
        with self.assertRaisesRegex(SpoolError, "already exists"):
            root.create("j1", {})

    def test_job_json_write_failure_keeps_the_previous_file(self):
        root = Spool(self.tmp)
        js = root.create("j1", {"state": "running"})
        os.mkdir(os.path.join(js.path, "job.json.tmp"))  # the temporary file cannot be created
        self.assertIsNotNone(js.update_meta(state="finished"))
        self.assertEqual(js.meta["state"], "finished")  # memory stays authoritative
        with open(os.path.join(js.path, "job.json")) as f:
            self.assertEqual(json.load(f)["state"], "running")


if __name__ == "__main__":
    unittest.main()
