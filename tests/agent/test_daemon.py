"""The daemon and the bridge: a private socket dir, one daemon per home, jobs that outlive bridges."""

import json
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from agents import protocol
from agents.__main__ import request_once
from agents.daemon import Daemon, DaemonError, connect, run_dir, secure_run_dir, socket_path
from agents.samplers.base import Reading, Sampler
from agents.server import Agent
from agents.workload import process_start_time, terminate_orphan

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ConstantSampler(Sampler):
    name = "double"

    @classmethod
    def available(cls, **kw):
        return None

    def read(self):
        return Reading(self.clock(), {"rail": 10.0}, 10.0, None)

    def describe(self):
        return {"name": "double", "device": self.device}


def open_double(device, interval_ms, clock=None, **opts):
    return ConstantSampler(device, clock)


class BulkySampler(ConstantSampler):
    """Twenty rails: big live batches that fill a socket quickly."""

    RAILS = {"rail_{:02d}".format(i): 1.2345678 for i in range(20)}

    def read(self):
        return Reading(self.clock(), dict(self.RAILS), 24.691356, None)


def open_bulky(device, interval_ms, clock=None, **opts):
    return BulkySampler(device, clock)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def pid_alive(pid):
    """True while `pid` runs (a zombie nobody reaped counts as gone)."""
    try:
        with open("/proc/{}/stat".format(pid)) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


class StreamClient(object):
    """Speaks the protocol over a readable fd and a write callable, with timeouts."""

    def __init__(self, read_fd, write):
        self.read_fd = read_fd
        self.write = write
        self.reader = protocol.LineReader()
        self.pending = []
        self.rid = 0

    def next(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise AssertionError("no message within {} s".format(timeout))
            data = os.read(self.read_fd, 65536)
            if not data:
                raise EOFError("stream closed")
            self.pending.extend(m for m in self.reader.feed(data))
        return self.pending.pop(0)

    def call(self, op, **args):
        self.rid += 1
        self.write(protocol.encode(protocol.request(self.rid, op, args)))
        while True:
            msg = self.next()
            if msg.get("type") in ("reply", "error") and msg.get("id") == self.rid:
                if msg["type"] == "error":
                    raise AssertionError("{} failed: {}".format(op, msg))
                return msg["result"]


class Bridge(object):
    """`python -m agents bridge` as a subprocess, the way the console runs it over SSH."""

    def __init__(self, home, python=sys.executable, argv=None):
        env = dict(os.environ, WATTLAB_AGENT_HOME=home, PYTHONPATH=REPO)
        self.proc = subprocess.Popen(
            argv or [python, "-m", "agents", "bridge"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        self.client = StreamClient(self.proc.stdout.fileno(), self._write)
        self.hello = self.client.next(timeout=20)

    def _write(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stdin.close()
        self.proc.stdout.close()


class HomeCase(unittest.TestCase):
    def setUp(self):
        self.home = tempfile.mkdtemp(prefix="wl-d-")
        self.daemon_pids = set()
        self.daemon_threads = []

    def tearDown(self):
        # Never leave a daemon behind: ask it to stop, then make sure it is gone.
        request_once(self.home, "shutdown", timeout=10)
        for t in self.daemon_threads:
            t.join(15)  # its jobs write their end state before the directory goes
        for pid in self.daemon_pids:
            if not wait_for(lambda p=pid: not pid_alive(p), 10):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.home, ignore_errors=True)


class RunDirTest(HomeCase):
    def test_the_socket_dir_is_created_with_mode_0700(self):
        path = secure_run_dir(self.home)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o700)

    def test_a_socket_dir_open_to_others_is_refused(self):
        os.mkdir(run_dir(self.home), 0o755)
        os.chmod(run_dir(self.home), 0o755)
        with self.assertRaisesRegex(DaemonError, "chmod 700"):
            secure_run_dir(self.home)

    def test_a_symlinked_socket_dir_is_refused(self):
        elsewhere = os.path.join(self.home, "elsewhere")
        os.mkdir(elsewhere, 0o700)
        os.symlink(elsewhere, run_dir(self.home))
        with self.assertRaisesRegex(DaemonError, "not a directory"):
            secure_run_dir(self.home)


class InProcessDaemonTest(HomeCase):
    def start_daemon(self, idle_exit_s=600.0, open_sampler=open_double):
        d = Daemon(
            self.home, idle_exit_s=idle_exit_s, agent_factory=lambda h: Agent(h, open_sampler=open_sampler)
        )
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("exit", d.serve_forever()), daemon=True)
        t.start()
        self.daemon_threads.append(t)
        self.assertTrue(d.ready.wait(10))
        return d, t, result

    def connect_client(self):
        sock = connect(self.home)
        self.assertIsNotNone(sock)
        self.addCleanup(sock.close)
        sock.settimeout(10)
        return StreamClient(sock.fileno(), sock.sendall)

    def test_the_daemon_serves_on_a_private_socket_and_shuts_down(self):
        _, t, result = self.start_daemon()
        mode = stat.S_IMODE(os.stat(socket_path(self.home)).st_mode)
        self.assertEqual(mode & 0o077, 0)
        client = self.connect_client()
        self.assertEqual(client.next()["type"], "hello")
        self.assertIn("t_wall", client.call("ping"))
        client.call("shutdown")
        t.join(10)
        self.assertFalse(t.is_alive())
        self.assertEqual(result["exit"], "shutdown requested")
        self.assertFalse(os.path.exists(socket_path(self.home)))

    def test_a_second_daemon_for_the_same_home_is_refused(self):
        self.start_daemon()
        with self.assertRaisesRegex(DaemonError, "another agent daemon"):
            Daemon(
                self.home, agent_factory=lambda h: Agent(h, open_sampler=open_double), lock_wait_s=0.2
            ).serve_forever()
        self.assertIsNotNone(connect(self.home))  # the first one still serves

    def test_an_idle_daemon_exits_by_itself(self):
        _, t, result = self.start_daemon(idle_exit_s=0.3)
        t.join(10)
        self.assertFalse(t.is_alive())
        self.assertIn("idle", result["exit"])

    def test_a_daemon_with_a_running_job_does_not_exit_when_idle(self):
        _, t, _ = self.start_daemon(idle_exit_s=0.3)
        sock = connect(self.home)
        client = StreamClient(sock.fileno(), sock.sendall)
        client.next()
        client.call("start", device="double:0", interval_ms=50, job_id="j1")
        sock.close()  # no client left, one job running
        time.sleep(1.0)
        self.assertTrue(t.is_alive())

    def test_a_subscriber_that_stops_reading_never_slows_sampling_and_is_told_it_lagged(self):
        d, _, _ = self.start_daemon(open_sampler=open_bulky)
        d.agent.client_queue_max = 4
        sock = connect(self.home)
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client = StreamClient(sock.fileno(), sock.sendall)
        client.next()
        client.call("subscribe", jobs=None)
        for job in ("a", "b"):
            client.call("start", device="bulky:0", interval_ms=2, duration_s=2.0, job_id=job)
        time.sleep(2.5)  # the console's laptop sleeps: nobody reads this socket
        for job in ("a", "b"):
            self.assertTrue(wait_for(lambda j=job: d.agent.jobs[j].state == "finished"))
            totals = d.agent.jobs[job].totals
            self.assertEqual(totals.samples + totals.skipped_ticks, 1001)  # every tick read or counted
            # a blocked publisher would have stalled the job for the whole 2.5 s (a handful of samples)
            self.assertGreater(totals.samples, 500)
        lagged = None
        while lagged is None:
            msg = client.next()
            if msg.get("event") == "lagged":
                lagged = msg
        self.assertEqual(lagged["jobs"], ["a", "b"])
        self.assertGreater(lagged["dropped"], 0)
        got = client.call("fetch", job="a", stream="samples", after_seq=-1, limit=100000)
        self.assertEqual(len(got["rows"]), d.agent.jobs["a"].totals.samples)  # backfill has it all

    def test_shutdown_stops_running_jobs_and_records_their_end(self):
        _, t, _ = self.start_daemon()
        client = self.connect_client()
        client.next()
        client.call("start", device="double:0", interval_ms=20, job_id="j1")
        client.call("shutdown")
        t.join(15)
        with open(os.path.join(self.home, "jobs", "j1", "job.json")) as f:
            self.assertIn('"state": "stopped"', f.read())


class StopCommandTest(HomeCase):
    def test_stop_without_a_daemon_says_so_and_succeeds(self):
        out = subprocess.check_output(
            [sys.executable, "-m", "agents", "--home", self.home, "stop"], cwd=REPO, timeout=60
        ).decode()
        self.assertIn("no agent daemon running", out)

    def test_stop_ends_the_running_daemon(self):
        bridge = Bridge(self.home)
        pid = bridge.hello["pid"]
        self.daemon_pids.add(pid)
        bridge.kill()
        out = subprocess.check_output(
            [sys.executable, "-m", "agents", "--home", self.home, "stop"], cwd=REPO, timeout=60
        ).decode()
        self.assertIn("stopping", out)
        self.assertTrue(wait_for(lambda: not pid_alive(pid)))
        self.assertIsNone(connect(self.home))


class BridgeTest(HomeCase):
    def test_a_job_keeps_sampling_after_its_bridge_is_killed(self):
        first = Bridge(self.home)
        self.daemon_pids.add(first.hello["pid"])
        self.assertEqual(stat.S_IMODE(os.stat(run_dir(self.home)).st_mode), 0o700)
        started = first.client.call(
            "start", device="sim:jetson-agx-orin-64gb", interval_ms=50, duration_s=2.0, job_id="survivor"
        )
        self.assertEqual(started["sampler"]["name"], "sim")
        time.sleep(0.4)
        first.kill()  # the SSH session dies
        time.sleep(2.2)
        second = Bridge(self.home)
        self.assertEqual(second.hello["pid"], first.hello["pid"])  # same daemon, it never stopped
        status = second.client.call("status", job="survivor")
        self.assertEqual(status["state"], "finished")
        rows = []
        after = -1
        while True:
            got = second.client.call("fetch", job="survivor", stream="samples", after_seq=after, limit=7)
            rows.extend(got["rows"])
            if got["done"]:
                break
            after = got["rows"][-1][0]
        self.assertEqual([r[0] for r in rows], list(range(len(rows))))  # contiguous, none lost
        self.assertEqual(len(rows), status["totals"]["samples"])
        expected = 2.0 / 0.05 + 1 - status["totals"]["skipped_ticks"]
        self.assertEqual(len(rows), expected)
        self.assertGreaterEqual(len(rows), 30)  # a starved machine may skip a few deadlines
        self.assertAlmostEqual(rows[-1][1], 2.0, delta=0.2)
        second.kill()
        self.assertTrue(pid_alive(first.hello["pid"]))  # killing bridges never stops the daemon

    def test_a_killed_daemon_keeps_every_row_it_sent_live_and_its_job_reads_interrupted(self):
        first = Bridge(self.home)
        pid = first.hello["pid"]
        self.daemon_pids.add(pid)
        first.client.call("subscribe", jobs=["crash"])
        first.client.call("start", device="sim:tesla-t4", interval_ms=20, job_id="crash")
        live = []
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            msg = first.client.next()
            if msg.get("event") == "samples":
                live.extend(msg["rows"])
        os.kill(pid, signal.SIGKILL)  # OOM killer or a bug: no chance to flush anything
        first.kill()
        self.assertTrue(live)
        self.assertTrue(wait_for(lambda: not pid_alive(pid)))
        second = Bridge(self.home)
        self.daemon_pids.add(second.hello["pid"])
        status = second.client.call("status", job="crash")
        self.assertEqual(status["state"], "interrupted")
        self.assertIn("daemon", status["error"])
        rows = second.client.call("fetch", job="crash", stream="samples", after_seq=-1, limit=100000)["rows"]
        self.assertEqual([r[0] for r in rows], list(range(len(rows))))
        self.assertEqual(rows[: len(live)], live)  # every row the console saw live is on the device
        events = second.client.call("fetch", job="crash", stream="events", after_seq=-1, limit=100)["rows"]
        self.assertEqual(events[-1][3]["state"], "interrupted")
        second.kill()

    def test_a_workload_orphaned_by_a_killed_daemon_is_ended_by_the_next_one(self):
        first = Bridge(self.home)
        pid = first.hello["pid"]
        self.daemon_pids.add(pid)
        wl = {"kind": "argv", "argv": [sys.executable, "-c", "import time; time.sleep(120)"]}
        first.client.call("start", device="sim:tesla-t4", interval_ms=50, workload=wl, job_id="orphan")
        job_json = os.path.join(self.home, "jobs", "orphan", "job.json")
        self.assertTrue(wait_for(lambda: (_read_json(job_json).get("workload") or {}).get("pid")))
        wl_pid = _read_json(job_json)["workload"]["pid"]
        self.addCleanup(lambda: pid_alive(wl_pid) and os.kill(wl_pid, signal.SIGKILL))
        os.kill(pid, signal.SIGKILL)
        first.kill()
        self.assertTrue(wait_for(lambda: not pid_alive(pid)))
        self.assertTrue(pid_alive(wl_pid))  # the benchmark outlived its daemon...
        second = Bridge(self.home)
        self.daemon_pids.add(second.hello["pid"])
        self.assertTrue(wait_for(lambda: not pid_alive(wl_pid)))  # ...until the next daemon started
        events = second.client.call("fetch", job="orphan", stream="events", after_seq=-1, limit=100)["rows"]
        ended = [r[3] for r in events if r[2] == "workload_exit"]
        self.assertEqual(
            ended, [{"pid": wl_pid, "terminated": True, "reason": "orphaned by the agent daemon"}]
        )
        second.kill()

    def test_a_recorded_pid_that_now_names_another_process_is_left_alone(self):
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        started = process_start_time(proc.pid)
        self.assertIsNotNone(started)
        self.assertFalse(terminate_orphan(proc.pid, started + 1))
        self.assertIsNone(proc.poll())
        self.assertTrue(terminate_orphan(proc.pid, started))
        self.assertIsNotNone(proc.wait(10))

    def test_sigterm_stops_the_daemon_and_its_jobs_end_as_stopped(self):
        bridge = Bridge(self.home)
        pid = bridge.hello["pid"]
        self.daemon_pids.add(pid)
        bridge.client.call("start", device="sim:tesla-t4", interval_ms=50, job_id="term")
        time.sleep(0.3)
        os.kill(pid, signal.SIGHUP)  # a hang-up is ignored: the daemon has no terminal
        time.sleep(0.2)
        self.assertTrue(pid_alive(pid))
        os.kill(pid, signal.SIGTERM)
        self.assertTrue(wait_for(lambda: not pid_alive(pid)))
        bridge.kill()
        with open(os.path.join(self.home, "jobs", "term", "job.json")) as f:
            meta = json.load(f)
        self.assertEqual(meta["state"], "stopped")
        self.assertGreater(meta["summary"]["samples"], 3)
        with open(os.path.join(self.home, "daemon.log")) as f:
            self.assertIn("exit: signal 15", f.read())

    def test_two_bridges_starting_at_once_start_one_daemon(self):
        results = []

        def open_bridge():
            results.append(Bridge(self.home))

        threads = [threading.Thread(target=open_bridge) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        pids = {b.hello["pid"] for b in results}
        self.daemon_pids.update(pids)
        self.assertEqual(len(results), 3)
        self.assertEqual(len(pids), 1)
        for b in results:
            b.kill()

    def test_the_agent_opens_no_network_port(self):
        bridge = Bridge(self.home)
        pid = bridge.hello["pid"]
        self.daemon_pids.add(pid)
        bridge.client.call("start", device="sim:tesla-t4", interval_ms=50, duration_s=0.2)
        inodes = set()
        for fd in os.listdir("/proc/{}/fd".format(pid)):
            try:
                target = os.readlink("/proc/{}/fd/{}".format(pid, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        self.assertTrue(inodes)
        for table in ("tcp", "tcp6", "udp", "udp6"):
            with open("/proc/net/{}".format(table)) as f:
                for line in f.readlines()[1:]:
                    self.assertNotIn(line.split()[9], inodes, "daemon has a {} socket".format(table))
        bridge.kill()


if __name__ == "__main__":
    unittest.main()
