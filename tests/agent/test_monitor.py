"""The `monitor` op: idle devices' power pushed to the asking client only, never two readers of a
device with a running job, and no sampler left open once the client stops or leaves."""

import shutil
import socket
import tempfile
import threading
import time
import unittest

from agents import protocol
from agents.samplers.base import Reading, Sampler, SamplerUnavailable
from agents.server import Agent, serve_connection


class CountingSampler(Sampler):
    """A double whose power climbs by 1 W per read, so every reading differs."""

    name = "double"
    opened = []  # type: list
    lock = threading.Lock()

    @classmethod
    def available(cls, **kw):
        return None

    def open(self):
        self.n = 0
        self.is_open = True
        with CountingSampler.lock:
            CountingSampler.opened.append(self)

    def read(self):
        self.n += 1
        return Reading(self.clock(), {"rail": 5.0 + self.n}, 10.0 + self.n, None)

    def close(self):
        self.is_open = False

    def describe(self):
        return {"name": "double", "device": self.device, "rails": ["rail"], "total_rail": None}


def open_double(device, interval_ms, clock=None, **opts):
    if not device.startswith("double:"):
        raise SamplerUnavailable("unknown device {!r}".format(device))
    s = CountingSampler(device, clock)
    s.open()
    return s


def open_samplers():
    with CountingSampler.lock:
        return [s for s in CountingSampler.opened if s.is_open]


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


class Client(object):
    """One connection to the agent; collects events on a thread, answers requests by id."""

    def __init__(self, agent):
        ours, theirs = socket.socketpair()
        self.thread, self.conn = serve_connection(theirs, agent)
        self.sock = ours
        self.sock.settimeout(5)
        self.events = []
        self.replies = {}
        self.lock = threading.Lock()
        self.rid = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        lines = protocol.LineReader()
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            for msg in lines.feed(data):
                with self.lock:
                    if msg.get("type") == "event":
                        self.events.append(msg)
                    elif msg.get("type") in ("reply", "error"):
                        self.replies[msg.get("id")] = msg

    def call(self, op, **args):
        self.rid += 1
        rid = self.rid
        self.sock.sendall(protocol.encode(protocol.request(rid, op, args)))
        assert wait_for(lambda: rid in self.replies), "no answer to " + op
        return self.replies[rid]

    def monitor_events(self, device=None):
        with self.lock:
            return [e for e in self.events if e.get("event") == "monitor" and device in (None, e["device"])]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes our reader's recv; a bare close would not
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


class MonitorTest(unittest.TestCase):
    def setUp(self):
        CountingSampler.opened = []
        self.home = tempfile.mkdtemp(prefix="wl-monitor-")
        self.agent = Agent(self.home, open_sampler=open_double, probe=lambda: {"devices": []})
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()
        self.agent.stop_all("test over")
        shutil.rmtree(self.home, ignore_errors=True)

    def client(self):
        c = Client(self.agent)
        self.clients.append(c)
        return c

    def test_readings_of_every_asked_device_reach_the_asking_client_only(self):
        watcher, other = self.client(), self.client()
        other.call("subscribe", jobs=None)
        reply = watcher.call("monitor", devices=["double:a", "double:b"], interval_ms=200)
        self.assertEqual(reply["result"], {"devices": ["double:a", "double:b"], "interval_ms": 200})
        self.assertTrue(wait_for(lambda: len(watcher.monitor_events("double:b")) >= 3))
        first, later = watcher.monitor_events("double:a")[:2]
        self.assertNotIn("job", first)
        self.assertEqual(first["total_w"], 11.0)
        self.assertEqual(first["rails"], {"rail": 6.0})
        self.assertEqual(later["total_w"], 12.0)
        self.assertGreaterEqual(later["t_wall"] - first["t_wall"], 0.15)
        self.assertEqual(other.monitor_events(), [])

    def test_a_device_with_a_running_job_is_left_to_the_job_and_read_again_after_it(self):
        watcher = self.client()
        watcher.call("monitor", devices=["double:a"], interval_ms=200)
        self.assertTrue(wait_for(lambda: len(watcher.monitor_events()) >= 1))
        start = watcher.call("start", device="double:a", interval_ms=50)
        job = start["result"]["job"]
        self.assertTrue(wait_for(lambda: len(open_samplers()) == 1), "the monitor kept its own sampler")
        self.assertTrue(wait_for(lambda: any(e.get("busy_job") for e in watcher.monitor_events())))
        during = len(watcher.monitor_events())
        time.sleep(0.6)
        self.assertEqual(len(watcher.monitor_events()), during)  # said once, then quiet
        busy = [e for e in watcher.monitor_events() if e.get("busy_job")]
        self.assertEqual([(e["busy_job"], e["total_w"]) for e in busy], [(job, None)])
        watcher.call("stop", job=job)
        self.assertTrue(wait_for(lambda: len(watcher.monitor_events()) > during))

    def test_an_empty_device_list_stops_the_monitor_and_closes_its_samplers(self):
        watcher = self.client()
        watcher.call("monitor", devices=["double:a"], interval_ms=200)
        self.assertTrue(wait_for(lambda: len(open_samplers()) == 1))
        self.assertEqual(watcher.call("monitor", devices=[])["result"]["devices"], [])
        self.assertTrue(wait_for(lambda: not open_samplers()))
        count = len(watcher.monitor_events())
        time.sleep(0.5)
        self.assertEqual(len(watcher.monitor_events()), count)

    def test_a_client_that_disconnects_leaves_no_sampler_open(self):
        watcher = self.client()
        watcher.call("monitor", devices=["double:a"], interval_ms=200)
        self.assertTrue(wait_for(lambda: len(open_samplers()) == 1))
        watcher.close()
        self.assertTrue(wait_for(lambda: not open_samplers()))

    def test_closing_the_connection_closes_the_monitor_samplers_before_it_returns(self):
        watcher = self.client()
        watcher.call("monitor", devices=["double:a"], interval_ms=60000)  # asleep for a minute
        self.assertTrue(wait_for(lambda: len(open_samplers()) == 1))
        watcher.conn.close()  # what the daemon does to every client when it exits
        self.assertEqual(open_samplers(), [])

    def test_a_device_that_cannot_be_opened_is_reported_once_and_the_others_still_move(self):
        watcher = self.client()
        watcher.call("monitor", devices=["gone:0", "double:a"], interval_ms=200)
        self.assertTrue(wait_for(lambda: len(watcher.monitor_events("double:a")) >= 3))
        errors = watcher.monitor_events("gone:0")
        self.assertEqual(len(errors), 1)
        self.assertIn("unknown device", errors[0]["error"])
        self.assertIsNone(errors[0]["total_w"])

    def test_wrong_arguments_are_refused_by_name(self):
        watcher = self.client()
        for args, word in (
            ({"devices": ["double:a"], "interval_ms": 50}, "interval_ms"),
            ({"devices": ["double:a"], "interval_ms": True}, "interval_ms"),
            ({"devices": "double:a"}, "devices"),
            ({"devices": [3]}, "devices"),
        ):
            answer = watcher.call("monitor", **args)
            self.assertEqual(answer.get("code"), protocol.E_BAD_ARGS, args)
            self.assertIn(word, answer["message"])
        self.assertEqual(watcher.monitor_events(), [])

    def test_null_devices_means_every_device_the_probe_finds(self):
        self.agent.probe = lambda: {
            "devices": [{"id": "double:p"}, {"id": "sim:<hardware-id>"}, {"id": "none"}]
        }
        watcher = self.client()
        self.assertIsNone(watcher.call("monitor", devices=None)["result"]["devices"])
        self.assertTrue(wait_for(lambda: len(watcher.monitor_events()) >= 1))
        self.assertEqual({e["device"] for e in watcher.monitor_events()}, {"double:p"})


if __name__ == "__main__":
    unittest.main()
