"""A tiny OpenAI-compatible streaming server for tests: loopback only, stdlib, CPython 3.6.

It answers POST .../chat/completions and .../completions with `tokens` text chunks: the first
after `ttft_ms`, each next one `tpot_ms` later, then a usage chunk and `data: [DONE]`. `hang_s`
delays the response headers (to test client timeouts); `status` != 200 answers an error.

In a test:   with StubServer(ttft_ms=50, tpot_ms=10, tokens=8) as stub: url = stub.url
As a process: python tests/agent/http_stub.py --ttft-ms 50 --tpot-ms 10  (prints the base URL)
"""

import argparse
import json
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Dict, List


class _Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class StubServer(object):
    """Serve on 127.0.0.1, a free port, in a daemon thread; `requests` records every JSON body."""

    def __init__(
        self,
        ttft_ms: float = 50.0,
        tpot_ms: float = 10.0,
        tokens: int = 8,
        hang_s: float = 0.0,
        status: int = 200,
        usage: bool = True,
    ) -> None:
        self.ttft_ms = ttft_ms
        self.tpot_ms = tpot_ms
        self.tokens = tokens
        self.hang_s = hang_s
        self.status = status
        self.usage = usage
        self.requests: List[Dict[str, Any]] = []
        self._httpd = _Server(("127.0.0.1", 0), _make_handler(self))
        self.port = self._httpd.server_address[1]
        self.url = "http://127.0.0.1:{}/v1".format(self.port)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> "StubServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() would wait forever for a loop that never ran
            self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "StubServer":
        return self.start()

    def __exit__(self, *exc: Any) -> bool:
        self.stop()
        return False


def _make_handler(stub: StubServer) -> type:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length).decode("utf-8") or "{}")
            stub.requests.append(body)
            if stub.hang_s:
                time.sleep(stub.hang_s)
            if stub.status != 200:
                self._send(stub.status, {"error": {"message": "stub failure", "code": stub.status}})
                return
            if not self.path.endswith("/completions"):
                self._send(404, {"error": {"message": "no route " + self.path}})
                return
            chat = self.path.endswith("/chat/completions")
            if body.get("stream"):
                try:
                    self._stream(chat, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to report
            else:
                time.sleep((stub.ttft_ms + stub.tpot_ms * (stub.tokens - 1)) / 1000.0)
                text = "tok " * stub.tokens
                choice = {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
                self._send(200, {"choices": [choice], "usage": self._usage()})

        def _usage(self, n: int = 1) -> Dict[str, int]:
            out = stub.tokens * n
            return {"prompt_tokens": 5 * n, "completion_tokens": out, "total_tokens": 5 * n + out}

        def _send(self, status: int, obj: Dict[str, Any]) -> None:
            data = json.dumps(obj).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _event(self, obj: Any) -> None:
            payload = obj if isinstance(obj, str) else json.dumps(obj)
            self.wfile.write(("data: " + payload + "\n\n").encode("utf-8"))
            self.wfile.flush()

        def _stream(self, chat: bool, body: Dict[str, Any]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()  # HTTP/1.0: the body ends when the connection closes
            if chat:  # servers send the role first, with no text: it must not count as the first token
                self._event({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
            prompts = body.get("prompt")
            n = len(prompts) if isinstance(prompts, list) else 1  # /v1/completions takes a list of prompts
            for i in range(stub.tokens):
                time.sleep((stub.ttft_ms if i == 0 else stub.tpot_ms) / 1000.0)
                for j in range(n):
                    text = "t%d " % i
                    choice = {"index": j, "delta": {"content": text}} if chat else {"index": j, "text": text}
                    self._event({"choices": [choice]})
            if stub.usage and (body.get("stream_options") or {}).get("include_usage"):
                self._event({"choices": [], "usage": self._usage(n)})
            self._event("[DONE]")

    return Handler


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ttft-ms", type=float, default=50.0)
    parser.add_argument("--tpot-ms", type=float, default=10.0)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--hang-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    stub = StubServer(args.ttft_ms, args.tpot_ms, args.tokens, args.hang_s)
    print(stub.url, flush=True)
    try:
        stub._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
