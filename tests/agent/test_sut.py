"""SUT adapters: builtin CPU loop, argv per query and as a server, OpenAI-compatible HTTP."""

import sys
import threading
import time
import unittest

from agents.sut import SutError, SutSpecError, make_sut
from tests.agent.http_stub import StubServer

PY = sys.executable

# A line server: answers {"echo": samples} per line; crashes (exit 3) on the query given as argv[1].
SERVER_SRC = """
import json, sys
crash_at = int(sys.argv[1]) if len(sys.argv) > 1 else -1
for n, line in enumerate(iter(sys.stdin.readline, "")):
    q = json.loads(line)
    if n == crash_at:
        sys.stderr.write("model blew up on query %d\\n" % n)
        sys.exit(3)
    if q["samples"] == [99]:
        print(json.dumps({"error": "sample 99 is poison"}))
    elif q["samples"] == [77]:
        continue  # never answers this one
    else:
        print(json.dumps({"echo": q["samples"]}))
    sys.stdout.flush()
"""


class BuiltinSutTest(unittest.TestCase):
    def test_builtin_busy_loop_lasts_work_ms_per_sample(self):
        sut = make_sut({"kind": "builtin", "work_ms": 20})
        t0 = time.monotonic()
        sut.infer([0, 1])
        elapsed_ms = (time.monotonic() - t0) * 1000
        self.assertGreaterEqual(elapsed_ms, 39.0)
        self.assertLess(elapsed_ms, 400.0)

    def test_negative_work_ms_is_refused(self):
        with self.assertRaises(SutSpecError):
            make_sut({"kind": "builtin", "work_ms": -1})

    def test_unknown_kind_is_refused_with_its_name(self):
        with self.assertRaises(SutSpecError) as ctx:
            make_sut({"kind": "grpc"})
        self.assertIn("grpc", str(ctx.exception))


class ArgvPerQueryTest(unittest.TestCase):
    def test_shell_string_is_refused(self):
        with self.assertRaises(SutSpecError):
            make_sut({"kind": "argv", "argv": "python -c 'print(1)'"})

    def test_sample_placeholder_reaches_the_command(self):
        sut = make_sut(
            {
                "kind": "argv",
                "argv": [PY, "-c", "import sys; sys.exit(0 if sys.argv[1] == '7' else 1)", "{sample}"],
            }
        )
        self.assertEqual(sut.infer([7]), {})
        with self.assertRaises(SutError):
            sut.infer([8])

    def test_nonzero_exit_fails_the_query_with_code_and_stderr(self):
        sut = make_sut(
            {"kind": "argv", "argv": [PY, "-c", "import sys; sys.stderr.write('no model'); sys.exit(4)"]}
        )
        with self.assertRaises(SutError) as ctx:
            sut.infer([0])
        self.assertIn("code 4", str(ctx.exception))
        self.assertIn("no model", str(ctx.exception))

    def test_slow_command_times_out(self):
        sut = make_sut({"kind": "argv", "argv": [PY, "-c", "import time; time.sleep(5)"], "timeout_s": 0.3})
        t0 = time.monotonic()
        with self.assertRaises(SutError) as ctx:
            sut.infer([0])
        self.assertIn("timed out", str(ctx.exception))
        self.assertLess(time.monotonic() - t0, 3.0)


    def test_timeout_also_kills_the_commands_children(self):
        # The child keeps stdout open: if it survived, reading the output would wait for it.
        src = ("import subprocess, sys, time; "
               "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(5)']); time.sleep(5)")
        sut = make_sut({"kind": "argv", "argv": [PY, "-c", src], "timeout_s": 0.5})
        t0 = time.monotonic()
        with self.assertRaises(SutError):
            sut.infer([0])
        self.assertLess(time.monotonic() - t0, 3.0)


class ArgvServerTest(unittest.TestCase):
    def make(self, *args, **kw):
        spec = {"kind": "argv", "mode": "server", "argv": [PY, "-c", SERVER_SRC] + [str(a) for a in args]}
        spec.update(kw)
        sut = make_sut(spec)
        sut.open()
        self.addCleanup(sut.close)
        return sut

    def test_one_line_per_query_is_answered(self):
        sut = self.make()
        for i in range(3):
            self.assertIn("answer_chars", sut.infer([i]))
        self.assertEqual(sut.starts, 1)

    def test_crash_fails_that_query_and_the_next_query_restarts_the_server(self):
        sut = self.make(1)
        sut.infer([0])
        with self.assertRaises(SutError) as ctx:
            sut.infer([1])
        self.assertIn("exited with code 3", str(ctx.exception))
        self.assertIn("blew up", str(ctx.exception))
        sut.infer([2])  # a fresh process; its query 1 is the crash one only in the old process's count
        self.assertEqual(sut.starts, 2)

    def test_error_answer_fails_the_query(self):
        sut = self.make()
        with self.assertRaises(SutError) as ctx:
            sut.infer([99])
        self.assertIn("poison", str(ctx.exception))

    def test_missing_answer_times_out_and_restarts(self):
        sut = self.make(timeout_s=0.3)
        with self.assertRaises(SutError) as ctx:
            sut.infer([77])
        self.assertIn("no answer within", str(ctx.exception))
        sut.infer([1])
        self.assertEqual(sut.starts, 2)


class HttpSutTest(unittest.TestCase):
    def test_streaming_chat_records_ttft_and_tpot_close_to_the_server_delays(self):
        with StubServer(ttft_ms=80, tpot_ms=20, tokens=6) as stub:
            extra = make_sut({"kind": "http", "url": stub.url, "model": "m", "max_tokens": 6}).infer([0])
        self.assertEqual(extra["output_tokens"], 6)
        self.assertGreaterEqual(extra["ttft_ms"], 78.0)
        self.assertLess(extra["ttft_ms"], 80.0 + 60.0)
        self.assertGreaterEqual(extra["tpot_ms"], 19.0)
        self.assertLess(extra["tpot_ms"], 20.0 + 15.0)
        self.assertEqual(stub.requests[0]["messages"][0]["role"], "user")
        self.assertTrue(stub.requests[0]["stream"])

    def test_completions_api_counts_chunks_when_the_server_sends_no_usage(self):
        with StubServer(ttft_ms=10, tpot_ms=5, tokens=4, usage=False) as stub:
            extra = make_sut({"kind": "http", "url": stub.url, "api": "completions"}).infer([0])
        self.assertEqual(extra["output_tokens"], 4)
        self.assertIn("prompt", stub.requests[0])

    def test_a_batch_on_completions_is_one_request_with_a_list_of_prompts(self):
        with StubServer(ttft_ms=20, tpot_ms=5, tokens=3) as stub:
            extra = make_sut({"kind": "http", "url": stub.url, "api": "completions",
                              "prompts": ["a", "b", "c"]}).infer([0, 1, 2, 3])
        self.assertEqual(len(stub.requests), 1)
        self.assertEqual(stub.requests[0]["prompt"], ["a", "b", "c", "a"])
        self.assertEqual(extra["output_tokens"], 12)
        self.assertEqual(extra["prompts"], 4)
        self.assertGreaterEqual(extra["ttft_ms"], 19.0)
        self.assertNotIn("tpot_ms", extra)

    def test_several_samples_on_chat_are_one_request_each(self):
        with StubServer(ttft_ms=5, tpot_ms=1, tokens=2) as stub:
            extra = make_sut({"kind": "http", "url": stub.url}).infer([0, 1, 2])
        self.assertEqual(len(stub.requests), 3)
        self.assertEqual((extra["output_tokens"], extra["requests"]), (6, 3))

    def test_non_streaming_request_records_end_to_end_latency(self):
        with StubServer(ttft_ms=30, tpot_ms=0, tokens=3) as stub:
            extra = make_sut({"kind": "http", "url": stub.url, "stream": False}).infer([0])
        self.assertGreaterEqual(extra["e2e_ms"], 29.0)
        self.assertNotIn("ttft_ms", extra)

    def test_http_proxy_from_the_environment_is_not_used(self):
        import os

        saved = os.environ.get("http_proxy")
        os.environ["http_proxy"] = "http://127.0.0.1:9"  # discard port: a proxy that never answers
        try:
            with StubServer(ttft_ms=1, tpot_ms=1, tokens=2) as stub:
                extra = make_sut({"kind": "http", "url": stub.url, "timeout_s": 5}).infer([0])
        finally:
            if saved is None:
                del os.environ["http_proxy"]
            else:
                os.environ["http_proxy"] = saved
        self.assertEqual(extra["output_tokens"], 2)

    def test_endpoint_that_hangs_times_out(self):
        with StubServer(hang_s=2.0) as stub:
            sut = make_sut({"kind": "http", "url": stub.url, "timeout_s": 0.3})
            t0 = time.monotonic()
            with self.assertRaises(SutError) as ctx:
                sut.infer([0])
            self.assertLess(time.monotonic() - t0, 1.5)
        self.assertIn("timed out", str(ctx.exception))
        self.assertIn(stub.url, str(ctx.exception))

    def test_http_error_status_names_the_status(self):
        with StubServer(status=503) as stub:
            with self.assertRaises(SutError) as ctx:
                make_sut({"kind": "http", "url": stub.url}).infer([0])
        self.assertIn("HTTP 503", str(ctx.exception))

    def test_refused_connection_says_it_cannot_reach(self):
        stub = StubServer()
        url = stub.url
        stub.stop()  # never started: the port is closed now
        with self.assertRaises(SutError) as ctx:
            make_sut({"kind": "http", "url": url, "timeout_s": 2}).infer([0])
        self.assertIn("cannot reach", str(ctx.exception))


class StopTest(unittest.TestCase):
    """A stop reaches a query that is still running: it fails as interrupted, quickly."""

    def assert_stops_quickly(self, sut):
        flag = threading.Event()
        timer = threading.Timer(0.2, flag.set)
        timer.start()
        self.addCleanup(timer.cancel)
        sut.should_stop = flag.is_set
        t0 = time.monotonic()
        with self.assertRaises(SutError) as ctx:
            sut.infer([77])
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertIn("interrupted", str(ctx.exception))

    def test_stop_interrupts_builtin_work(self):
        self.assert_stops_quickly(make_sut({"kind": "builtin", "work_ms": 5000}))

    def test_stop_interrupts_a_command_and_kills_it(self):
        sleeper = [PY, "-c", "import time; time.sleep(5)"]
        self.assert_stops_quickly(make_sut({"kind": "argv", "argv": sleeper}))

    def test_stop_interrupts_a_server_that_has_not_answered(self):
        sut = make_sut({"kind": "argv", "mode": "server", "argv": [PY, "-c", SERVER_SRC]})
        sut.open()
        self.addCleanup(sut.close)
        self.assert_stops_quickly(sut)

    def test_stop_interrupts_a_long_stream(self):
        with StubServer(ttft_ms=10, tpot_ms=100, tokens=50) as stub:
            self.assert_stops_quickly(make_sut({"kind": "http", "url": stub.url}))


if __name__ == "__main__":
    unittest.main()
