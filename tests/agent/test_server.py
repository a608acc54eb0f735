"""Request dispatch and client connections: every op, errors that never crash, lagging subscribers."""

import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest

from agents import protocol
from agents.samplers.base import Reading, Sampler, SamplerUnavailable
from agents.server import Agent, Connection, serve_connection


class ConstantSampler(Sampler):
    """A test double: 10 W on one rail at the real clock."""

    name = "double"

    @classmethod
    def available(cls, **kw):
        return None

    def read(self):
        return Reading(self.clock(), {"rail": 10.0}, 10.0, None)

    def describe(self):
        return {"name": "double", "device": self.device, "rails": ["rail"], "total_rail": "rail"}


def open_double(device, interval_ms, clock=None, **opts):
    if not device.startswith("double:"):
        raise SamplerUnavailable("unknown device {!r}; device ids: double:<n>".format(device))
    s = ConstantSampler(device, clock)
    s.open()
    return s


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


class AgentCase(unittest.TestCase):
    def setUp(self):
        self.home = tempfile.mkdtemp(prefix="wl-server-")
        self.agent = Agent(self.home, open_sampler=open_double, probe=lambda: {"samplers": {"double": None}})
        self.rid = 0

    def tearDown(self):
        self.agent.stop_all("test over")
        shutil.rmtree(self.home, ignore_errors=True)

    def call(self, op, **args):
        self.rid += 1
        msg = self.agent.handle(protocol.request(self.rid, op, args))
        self.assertEqual(msg["id"], self.rid)
        return msg

    def ok(self, op, **args):
        msg = self.call(op, **args)
        self.assertEqual(msg["type"], "reply", msg)
        return msg["result"]

    def err(self, op, code, **args):
        msg = self.call(op, **args)
        self.assertEqual(msg["type"], "error", msg)
        self.assertEqual(msg["code"], code, msg)
        return msg["message"]

    def finished(self, job):
        self.assertTrue(
            wait_for(lambda: self.ok("status", job=job)["state"] not in ("starting", "idle", "running"))
        )


class DispatchTest(AgentCase):
    def test_unknown_op_is_an_error_not_a_crash(self):
        self.assertIn("frobnicate", self.err("frobnicate", protocol.E_UNKNOWN_OP))
        self.assertIn("t_wall", self.ok("ping"))

    def test_bad_arguments_are_named(self):
        self.assertIn("'job'", self.err("fetch", protocol.E_BAD_ARGS))
        self.assertIn("after_seq", self.err("fetch", protocol.E_BAD_ARGS, job="x", after_seq="3"))
        self.assertIn(
            "interval_ms", self.err("start", protocol.E_BAD_ARGS, device="double:0", interval_ms=-5)
        )

    def test_a_handler_exception_becomes_internal_and_the_agent_still_answers(self):
        def broken(device, interval_ms, clock=None, **opts):
            raise RuntimeError("sensor driver exploded")

        self.agent.open_sampler = broken
        self.assertIn("sensor driver exploded", self.err("start", protocol.E_INTERNAL, device="double:0"))
        self.assertIn("t_mono", self.ok("ping"))

    def test_no_job_starts_once_shutdown_was_asked(self):
        self.ok("shutdown")
        self.assertIn("shutting down", self.err("start", protocol.E_INTERNAL, device="double:0"))
        self.assertEqual(self.agent.jobs, {})

    def test_an_unknown_device_is_no_such_device(self):
        self.assertIn("nvml:9", self.err("start", protocol.E_NO_SUCH_DEVICE, device="nvml:9"))

    def test_sampler_options_reach_the_sampler(self):
        seen = {}

        def recording_open(device, interval_ms, clock=None, **opts):
            seen.update(opts)
            return open_double(device, interval_ms, clock)

        self.agent.open_sampler = recording_open
        self.ok(
            "start",
            device="double:0",
            duration_s=0.01,
            sampler="double",
            sampler_opts={"seed": 7, "noise": 0.0},
        )
        self.assertEqual(seen, {"seed": 7, "noise": 0.0, "sampler": "double"})

    def test_an_unknown_job_is_no_such_job(self):
        self.err("status", protocol.E_NO_SUCH_JOB, job="nope")
        self.err("fetch", protocol.E_NO_SUCH_JOB, job="nope", stream="samples")

    def test_hello_and_probe_answer(self):
        self.assertEqual(self.ok("hello")["type"], "hello")
        self.assertEqual(self.ok("probe"), {"samplers": {"double": None}})


class JobOpsTest(AgentCase):
    def test_start_fetch_ack_forget_round_trip(self):
        started = self.ok("start", device="double:0", interval_ms=20, duration_s=0.3, job_id="j1")
        self.assertEqual(started["job"], "j1")
        self.assertEqual(started["sampler"]["name"], "double")
        self.finished("j1")
        status = self.ok("status", job="j1")
        self.assertEqual(status["state"], "finished")
        n = status["totals"]["samples"]
        self.assertEqual(
            n + status["totals"]["skipped_ticks"], 16
        )  # 0.3 s at 20 ms: every tick read or counted
        got = self.ok("fetch", job="j1", stream="samples", after_seq=-1, limit=100000)
        self.assertEqual([r[0] for r in got["rows"]], list(range(n)))
        self.assertTrue(got["done"])
        part = self.ok("fetch", job="j1", stream="samples", after_seq=3, limit=2)
        self.assertEqual([r[0] for r in part["rows"]], [4, 5])
        self.assertFalse(part["done"])
        self.assertEqual([j["job"] for j in self.ok("jobs")["jobs"]], ["j1"])
        self.assertIn("not acknowledged", self.err("forget", protocol.E_BAD_ARGS, job="j1"))
        for stream in protocol.STREAMS:
            self.ok("ack", job="j1", stream=stream, upto_seq=10**6)
        self.ok("forget", job="j1")
        self.err("status", protocol.E_NO_SUCH_JOB, job="j1")

    def test_a_workloads_output_can_be_read_back_in_slices(self):
        script = "import sys; print('latency p50 = 1.5 ms ' * 100); sys.stderr.write('warn: fp16\\n')"
        wl = {"kind": "argv", "argv": [sys.executable, "-c", script]}
        self.ok("start", device="double:0", interval_ms=20, workload=wl, job_id="j1")
        self.finished("j1")
        text, offset = "", 0
        while True:
            part = self.ok("output", job="j1", which="stdout", offset=offset, limit=1000)
            text += part["data"]
            offset = part["next_offset"]
            if part["eof"]:
                break
        self.assertEqual(text, "latency p50 = 1.5 ms " * 100 + "\n")
        self.assertEqual(self.ok("output", job="j1", which="stderr")["data"], "warn: fp16\n")
        exits = [r for r in self.ok("fetch", job="j1", stream="events")["rows"] if r[2] == "workload_exit"]
        self.assertTrue(exits[0][3]["stdout_tail"].endswith("1.5 ms \n"))
        self.assertIn("which", self.err("output", protocol.E_BAD_ARGS, job="j1", which="stdin"))

    def test_a_job_without_a_workload_has_empty_output(self):
        self.ok("start", device="double:0", interval_ms=20, duration_s=0.05, job_id="j1")
        self.finished("j1")
        self.assertEqual(self.ok("output", job="j1")["data"], "")
        self.assertTrue(self.ok("output", job="j1")["eof"])

    def test_a_running_job_is_not_done_and_cannot_be_forgotten(self):
        self.ok("start", device="double:0", interval_ms=20, job_id="j1")
        self.assertTrue(wait_for(lambda: self.ok("status", job="j1")["last_seq"]["samples"] >= 2))
        self.assertFalse(self.ok("fetch", job="j1", stream="samples", after_seq=-1, limit=10)["done"])
        self.assertIn("stop it", self.err("forget", protocol.E_BAD_ARGS, job="j1"))
        self.assertEqual(self.ok("stop", job="j1")["state"], "stopped")

    def test_a_mark_goes_into_the_events_stream(self):
        self.ok("start", device="double:0", interval_ms=20, job_id="j1")
        seq = self.ok("mark", job="j1", label="model loaded")["seq"]
        self.ok("stop", job="j1")
        events = self.ok("fetch", job="j1", stream="events", after_seq=seq - 1, limit=1)["rows"]
        self.assertEqual(events[0][2:], ["mark", {"label": "model loaded"}])

    def test_a_used_job_id_is_refused(self):
        self.ok("start", device="double:0", interval_ms=20, duration_s=0.05, job_id="j1")
        self.assertIn("already used", self.err("start", protocol.E_BAD_ARGS, device="double:0", job_id="j1"))
        self.assertIn(
            "invalid job id", self.err("start", protocol.E_BAD_ARGS, device="double:0", job_id="../x")
        )

    def test_a_restarted_agent_marks_orphaned_running_jobs_interrupted(self):
        js = self.agent.spool.create("old", {"state": "running", "device": "double:0", "t0_mono": 5.0})
        js.append("samples", [0.0, 10.0, {}, None])
        js.append("samples", [0.1, 10.0, {}, None])
        js.maybe_flush(force=True)
        js.close()
        fresh = Agent(self.home, open_sampler=open_double)
        self.assertEqual(fresh.recover(), ["old"])
        status = fresh.handle(protocol.request(1, "status", {"job": "old"}))["result"]
        self.assertEqual(status["state"], "interrupted")
        self.assertEqual(status["last_seq"]["samples"], 1)
        events = fresh.handle(protocol.request(2, "fetch", {"job": "old", "stream": "events"}))["result"]
        # placed at the last stored sample: when the old daemon died is unknown
        self.assertEqual(
            events["rows"][-1][1:],
            [0.1, "state", {"state": "interrupted", "reason": "agent daemon restarted"}],
        )


class PruneTest(AgentCase):
    def make_job(self, job_id, state, ended_wall, ack):
        js = self.agent.spool.create(job_id, {"state": state, "ended_wall": ended_wall})
        js.append("samples", [0.0, 10.0, {}, None])
        js.maybe_flush(force=True)
        if ack:
            for stream in protocol.STREAMS:
                js.ack(stream, 0)
        js.close()

    def test_only_old_finished_fully_acked_jobs_are_pruned(self):
        now = time.time()
        self.make_job("old-acked", "finished", now - 30 * 86400, ack=True)
        self.make_job("old-unacked", "finished", now - 30 * 86400, ack=False)
        self.make_job("new-acked", "finished", now - 60, ack=True)
        self.make_job("running", "running", None, ack=True)
        self.assertEqual(self.agent.prune(), ["old-acked"])
        self.assertEqual(self.agent.spool.job_ids(), ["new-acked", "old-unacked", "running"])


class LineClient(object):
    """Reads protocol messages from one end of a socket pair."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(5)
        self.reader = protocol.LineReader()
        self.pending = []

    def send(self, data):
        self.sock.sendall(data)

    def next(self):
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            self.pending.extend(self.reader.feed(data))
        return self.pending.pop(0)

    def until(self, pred):
        while True:
            msg = self.next()
            if pred(msg):
                return msg


class ConnectionTest(AgentCase):
    def setUp(self):
        AgentCase.setUp(self)
        ours, theirs = socket.socketpair()
        self.thread, self.conn = serve_connection(theirs, self.agent)
        self.client = LineClient(ours)

    def tearDown(self):
        self.client.sock.close()
        self.thread.join(5)
        AgentCase.tearDown(self)

    def test_hello_comes_first(self):
        hello = self.client.next()
        self.assertEqual(hello["type"], "hello")
        self.assertEqual(hello["v"], protocol.PROTOCOL_VERSION)

    def test_bad_lines_get_error_replies_and_the_connection_lives(self):
        self.client.next()
        self.client.send(b"not json\n")
        self.assertEqual(self.client.next()["code"], protocol.E_BAD_JSON)
        self.client.send(b"[1, 2]\n")
        self.assertEqual(self.client.next()["code"], protocol.E_BAD_MESSAGE)
        self.client.send(b'{"type": "reply", "id": 3}\n')
        self.assertEqual(self.client.next()["code"], protocol.E_BAD_MESSAGE)
        self.client.send(b"x" * (protocol.MAX_LINE_BYTES + 10) + b"\n")
        self.assertEqual(self.client.next()["code"], protocol.E_TOO_LONG)
        self.client.send(protocol.encode(protocol.request(7, "ping")))
        self.assertEqual(self.client.next()["id"], 7)

    def test_subscribers_get_live_events_of_their_jobs_only(self):
        self.client.next()
        self.client.send(protocol.encode(protocol.request(1, "subscribe", {"jobs": ["mine"]})))
        self.assertEqual(self.client.next()["id"], 1)
        self.agent.publish(protocol.event("samples", "other", rows=[[0, 0.0, 1.0, {}, None]]))
        self.agent.publish(protocol.event("samples", "mine", rows=[[0, 0.0, 2.0, {}, None]]))
        msg = self.client.next()
        self.assertEqual((msg["event"], msg["job"]), ("samples", "mine"))

    def test_a_slow_start_does_not_hold_up_other_requests(self):
        release = threading.Event()

        def slow_open(device, interval_ms, clock=None, **opts):
            release.wait(10)  # NVML init or a tegrastats start can take seconds
            return open_double(device, interval_ms, clock)

        self.agent.open_sampler = slow_open
        self.client.next()
        self.client.send(
            protocol.encode(protocol.request(1, "start", {"device": "double:0", "interval_ms": 20}))
        )
        self.client.send(protocol.encode(protocol.request(2, "ping")))
        self.assertEqual(self.client.next()["id"], 2)  # answered while the start still waits
        release.set()
        started = self.client.next()
        self.assertEqual((started["id"], started["type"]), (1, "reply"))

    def test_live_job_events_reach_a_subscriber(self):
        self.client.next()
        self.client.send(protocol.encode(protocol.request(1, "subscribe", {"jobs": None})))
        self.client.send(
            protocol.encode(
                protocol.request(2, "start", {"device": "double:0", "interval_ms": 20, "duration_s": 0.3})
            )
        )
        final = self.client.until(lambda m: m.get("event") == "job" and m.get("state") == "finished")
        self.assertEqual(final["summary"]["samples"] + final["summary"]["skipped_ticks"], 16)


class LagTest(AgentCase):
    def test_a_slow_subscriber_loses_live_events_and_is_told_once(self):
        ours, theirs = socket.socketpair()
        conn = Connection(theirs, self.agent, queue_max=3)
        conn.subscribed = True
        for i in range(10):  # nobody drains the queue yet: the client is "slow"
            conn.offer("j1", protocol.encode(protocol.event("samples", "j1", rows=[[i, 0.0, 1.0, {}, None]])))
        writer = threading.Thread(target=conn._writer, daemon=True)
        writer.start()
        client = LineClient(ours)
        got = [client.next() for _ in range(4)]
        self.assertEqual([m["rows"][0][0] for m in got[:3]], [0, 1, 2])
        self.assertEqual(got[3]["event"], "lagged")
        self.assertEqual(got[3]["jobs"], ["j1"])
        self.assertEqual(got[3]["dropped"], 7)
        conn.offer("j1", protocol.encode(protocol.event("samples", "j1", rows=[[10, 0.0, 1.0, {}, None]])))
        self.assertEqual(client.next()["rows"][0][0], 10)  # live again after the notice
        conn.close()
        writer.join(5)
        ours.close()


if __name__ == "__main__":
    unittest.main()
