"""Systems under test (SUT) for the load generator: what one query runs.

Every SUT has `open()`, `infer(samples) -> extra dict`, `close()` and `describe()`. `infer` runs one
query (a list of sample indices: one for SingleStream/Server, several for MultiStream or a batch)
and either returns a dict of per-query details or raises SutError with a message that says what
failed. It never raises anything else for a failed query, so the load generator can mark that
query and go on. Adapters:

  builtin  a deterministic CPU busy loop of `work_ms` per sample (no model needed)
  argv     a command per query (`mode: per_query`) or one long-lived process that answers one
           line on stdout per line written to its stdin (`mode: server`); never a shell
  http     an OpenAI-compatible endpoint (vLLM, llama.cpp server, Ollama /v1, TGI, NIM) with
           streaming, so time to first token and time per output token are recorded

Stdlib only, CPython 3.6.
"""

import collections
import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Deque, Dict, List, Optional

Clock = Callable[[], float]

DEFAULT_TIMEOUT_S = 60.0
ERROR_TAIL_CHARS = 300


class SutError(Exception):
    """One query failed; the message says what and where (exit code, HTTP status, timeout...)."""


class SutSpecError(ValueError):
    """A SUT spec that cannot work (unknown kind, argv given as a shell string, bad URL)."""


def make_sut(spec: Optional[Dict[str, Any]], clock: Clock = time.monotonic) -> "Sut":
    """Build the SUT a workload spec asks for; None or {} means the builtin CPU workload."""
    spec = dict(spec or {"kind": "builtin"})
    kind = spec.get("kind", "builtin")
    if kind == "builtin":
        return BuiltinSut(spec, clock)
    if kind == "argv":
        mode = spec.get("mode", "per_query")
        if mode == "per_query":
            return ArgvSut(spec, clock)
        if mode == "server":
            return ArgvServerSut(spec, clock)
        raise SutSpecError("sut argv mode must be 'per_query' or 'server', got {!r}".format(mode))
    if kind == "http":
        return HttpSut(spec, clock)
    raise SutSpecError("unknown sut kind {!r} (builtin, argv, http)".format(kind))


def _tail(text: str, n: int = ERROR_TAIL_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= n else "..." + text[-n:]


def _timeout_s(spec: Dict[str, Any]) -> float:
    value = spec.get("timeout_s", DEFAULT_TIMEOUT_S)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise SutSpecError("sut timeout_s must be a positive number, got {!r}".format(value))
    return float(value)


STOP_POLL_S = 0.1  # how often a waiting SUT call looks at should_stop()


def _never() -> bool:
    return False


def _stopped(what: str) -> SutError:
    return SutError("{} interrupted: the job was stopped".format(what))


class Sut(object):
    """Base class: one query at a time per call of infer(); subclasses say if calls may overlap."""

    kind = "base"
    # Whether infer() may be called from several threads at once (Offline/Server pools).
    concurrent = True

    def __init__(self, spec: Dict[str, Any], clock: Clock) -> None:
        self.spec = spec
        self.clock = clock
        # Set by the load generator: a query still running when the job is stopped fails with
        # "stopped" instead of holding the job's end for up to timeout_s.
        self.should_stop: Callable[[], bool] = _never

    def open(self) -> None:
        """Acquire what the SUT needs (start a server process); failures raise SutError."""

    def infer(self, samples: List[int]) -> Dict[str, Any]:
        """Run one query over the given sample indices; returns per-query details."""
        raise NotImplementedError

    def close(self) -> None:
        """Release everything; safe to call twice."""

    def describe(self) -> Dict[str, Any]:
        """What runs, for the run's metadata."""
        return {"kind": self.kind}


class BuiltinSut(Sut):
    """A CPU busy loop of work_ms per sample: deterministic load with no model and no files."""

    kind = "builtin"

    def __init__(self, spec: Dict[str, Any], clock: Clock) -> None:
        Sut.__init__(self, spec, clock)
        work_ms = spec.get("work_ms", 10.0)
        if not isinstance(work_ms, (int, float)) or isinstance(work_ms, bool) or work_ms < 0:
            raise SutSpecError("builtin sut work_ms must be a number >= 0, got {!r}".format(work_ms))
        self.work_ms = float(work_ms)

    def infer(self, samples: List[int]) -> Dict[str, Any]:
        # Spin (not sleep) so the CPU really is busy, as a model would keep it.
        deadline = time.perf_counter() + self.work_ms * len(samples) / 1000.0
        x = 0
        while time.perf_counter() < deadline:
            for i in range(200):
                x += i * i
            if self.should_stop():
                raise _stopped("builtin work")
        return {}

    def describe(self) -> Dict[str, Any]:
        return {"kind": self.kind, "work_ms": self.work_ms}


def _argv_of(spec: Dict[str, Any]) -> List[str]:
    argv = spec.get("argv")
    if isinstance(argv, str):
        raise SutSpecError("sut argv must be a list of strings, not a shell string: {!r}".format(argv))
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise SutSpecError("sut argv must be a non-empty list of strings, got {!r}".format(argv))
    return list(argv)


def _env_of(spec: Dict[str, Any]) -> Optional[Dict[str, str]]:
    extra = spec.get("env")
    if not extra:
        return None
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in extra.items()})
    return env


class ArgvSut(Sut):
    """One process per query. `{sample}` and `{samples}` in argv items are replaced per query;
    the samples are also in $WATTLAB_SAMPLES. Non-zero exit or a timeout fails the query."""

    kind = "argv"

    def __init__(self, spec: Dict[str, Any], clock: Clock) -> None:
        Sut.__init__(self, spec, clock)
        self.argv = _argv_of(spec)
        self.timeout_s = _timeout_s(spec)
        self.cwd: Optional[str] = spec.get("cwd")

    def infer(self, samples: List[int]) -> Dict[str, Any]:
        joined = ",".join(str(s) for s in samples)
        argv = [a.replace("{samples}", joined).replace("{sample}", str(samples[0])) for a in self.argv]
        env = _env_of(self.spec) or dict(os.environ)
        env["WATTLAB_SAMPLES"] = joined
        try:
            # Own session: a timeout kills the whole process group, children included.
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=self.cwd, env=env, start_new_session=True,
            )
        except OSError as exc:
            raise SutError("cannot start sut {!r}: {}".format(argv[0], exc)) from None
        err = self._wait(proc, argv[0])
        if proc.returncode != 0:
            raise SutError("sut {!r} exited with code {}: {}".format(
                argv[0], proc.returncode, _tail(err.decode("utf-8", "replace"))))
        return {}

    def _wait(self, proc: subprocess.Popen, name: str) -> bytes:
        """stderr of the finished process; SutError after timeout_s or a stop (process group killed)."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:  # short slices so a stop is seen; communicate() may be called again after a timeout
                return proc.communicate(timeout=max(0.0, min(STOP_POLL_S, deadline - time.monotonic())))[1]
            except subprocess.TimeoutExpired:
                stop = self.should_stop()
                if not stop and time.monotonic() < deadline:
                    continue
                _kill_group(proc)
                proc.communicate()
                if stop:
                    raise _stopped("sut {!r}".format(name)) from None
                raise SutError("sut {!r} timed out after {:g} s".format(name, self.timeout_s)) from None

    def describe(self) -> Dict[str, Any]:
        return {"kind": self.kind, "mode": "per_query", "argv": self.argv, "timeout_s": self.timeout_s}


class ArgvServerSut(Sut):
    """One long-lived process: per query one JSON line {"id", "samples"} on its stdin, one answer
    line on its stdout. An answer that is a JSON object with "error" fails that query. If the
    process dies or does not answer in time, the query fails and the process is restarted at the
    next query (a late answer would otherwise be taken for the next query's)."""

    kind = "argv"
    concurrent = False

    def __init__(self, spec: Dict[str, Any], clock: Clock) -> None:
        Sut.__init__(self, spec, clock)
        self.argv = _argv_of(spec)
        self.timeout_s = _timeout_s(spec)
        self.cwd: Optional[str] = spec.get("cwd")
        self.proc: Optional[subprocess.Popen] = None
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.stderr_tail: Deque[str] = collections.deque(maxlen=20)
        self.starts = 0
        self._stderr_thread: Optional[threading.Thread] = None
        self._next_id = 0
        self._lock = threading.Lock()

    def open(self) -> None:
        self._start()

    def _start(self) -> None:
        try:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=self.cwd, env=_env_of(self.spec), start_new_session=True,
            )
        except OSError as exc:
            raise SutError("cannot start sut server {!r}: {}".format(self.argv[0], exc)) from None
        self.starts += 1
        # Fresh queues per process, so a dead one's late lines never reach the new one.
        self.lines = queue.Queue()
        self.stderr_tail = collections.deque(maxlen=20)
        # Reader threads: a pipe nobody drains would block the server; EOF is signalled by None.
        threading.Thread(target=self._pump_stdout, args=(self.proc, self.lines), daemon=True).start()
        self._stderr_thread = threading.Thread(target=self._pump_stderr, args=(self.proc, self.stderr_tail),
                                               daemon=True)
        self._stderr_thread.start()

    @staticmethod
    def _pump_stdout(proc: subprocess.Popen, lines: "queue.Queue[Optional[str]]") -> None:
        with proc.stdout:
            for raw in iter(proc.stdout.readline, b""):
                lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        lines.put(None)

    @staticmethod
    def _pump_stderr(proc: subprocess.Popen, tail: Deque[str]) -> None:
        with proc.stderr:
            for raw in iter(proc.stderr.readline, b""):
                tail.append(raw.decode("utf-8", "replace").rstrip())

    def _died(self) -> SutError:
        code = self.proc.wait() if self.proc is not None else None
        if self._stderr_thread is not None:
            self._stderr_thread.join(1.0)  # so the message carries the last words on stderr
        self._release()
        return SutError("sut server {!r} exited with code {}: {}".format(
            self.argv[0], code, _tail("\n".join(self.stderr_tail))))

    def infer(self, samples: List[int]) -> Dict[str, Any]:
        with self._lock:
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            qid = self._next_id
            self._next_id += 1
            line = json.dumps({"id": qid, "samples": samples}) + "\n"
            try:
                self.proc.stdin.write(line.encode("utf-8"))
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                raise self._died() from None
            try:
                answer = self._answer()
            except queue.Empty:
                self._kill()
                raise SutError("sut server {!r} gave no answer within {:g} s (killed; restarted at the "
                               "next query)".format(
                    self.argv[0], self.timeout_s)) from None
            if answer is None:
                raise self._died()
        return _answer_extra(answer, self.argv[0])

    def _answer(self) -> Optional[str]:
        """The next stdout line (None at EOF); queue.Empty after timeout_s; SutError if stopped."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                return self.lines.get(timeout=max(0.0, min(STOP_POLL_S, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    raise
                if self.should_stop():
                    self._kill()  # its late answer must not be read as the next query's
                    raise _stopped("sut server {!r}".format(self.argv[0])) from None

    def _kill(self) -> None:
        if self.proc is not None:
            _kill_group(self.proc)
            self.proc.wait()
        self._release()

    def _release(self) -> None:
        # stdout/stderr are closed by their reader threads at EOF (closing them here would race).
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        self.proc = None

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()  # a well-behaved server exits at EOF
            self.proc.wait(timeout=2.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.proc is not None and self.proc.poll() is None:
            _kill_group(self.proc)
            self.proc.wait()
        self._release()

    def describe(self) -> Dict[str, Any]:
        return {"kind": self.kind, "mode": "server", "argv": self.argv, "timeout_s": self.timeout_s}


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group of a process started with start_new_session=True."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()


def _answer_extra(answer: str, name: str) -> Dict[str, Any]:
    try:
        obj = json.loads(answer)
    except ValueError:
        return {"answer_chars": len(answer)}
    if isinstance(obj, dict) and obj.get("error"):
        raise SutError("sut server {!r} answered an error: {}".format(name, _tail(str(obj["error"]))))
    return {"answer_chars": len(answer)}


class HttpSut(Sut):
    """An OpenAI-compatible endpoint. url is the API base (".../v1") or a full route; `api` picks
    "chat" (/chat/completions, default) or "completions". With stream (default), TTFT is the time
    from sending the request to the first chunk with text, TPOT = (E2E - TTFT) / (n_out - 1) (the
    vLLM definition), n_out from the usage chunk or, when the server sends none, the text chunks."""

    kind = "http"

    def __init__(self, spec: Dict[str, Any], clock: Clock) -> None:
        Sut.__init__(self, spec, clock)
        url = spec.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise SutSpecError("http sut url must start with http:// or https://, got {!r}".format(url))
        self.api = spec.get("api", "chat")
        if self.api not in ("chat", "completions"):
            raise SutSpecError("http sut api must be 'chat' or 'completions', got {!r}".format(self.api))
        url = url.rstrip("/")
        if url.endswith("/chat/completions"):
            self.api = "chat"
        elif url.endswith("/completions"):
            self.api = "completions"
        else:
            url += "/chat/completions" if self.api == "chat" else "/completions"
        self.url = url
        self.model = spec.get("model") or "default"
        prompts = spec.get("prompts") or [spec.get("prompt") or "Say hello."]
        self.prompts: List[str] = [str(p) for p in prompts]
        self.max_tokens = int(spec.get("max_tokens", 64))
        self.stream = bool(spec.get("stream", True))
        self.timeout_s = _timeout_s(spec)
        self.headers = {"Content-Type": "application/json"}
        # No proxy unless asked: clusters often set http_proxy, and a proxy hop would be timed too.
        proxies = None if spec.get("use_proxy") else {}
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))
        if spec.get("api_key"):
            self.headers["Authorization"] = "Bearer " + str(spec["api_key"])

    def _body(self, samples: List[int]) -> bytes:
        prompts = [self.prompts[s % len(self.prompts)] for s in samples]
        body: Dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens, "stream": self.stream}
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": prompts[0]}]
        else:
            body["prompt"] = prompts[0] if len(prompts) == 1 else prompts
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        body.update(self.spec.get("extra_body") or {})
        return json.dumps(body).encode("utf-8")

    def infer(self, samples: List[int]) -> Dict[str, Any]:
        # Several samples on /v1/completions: ONE request with a list of prompts (the cost study's
        # "one request of 500 texts"); TPOT is then undefined and left out. The chat API takes one
        # conversation per request: one request per sample, back to back, first TTFT, summed tokens.
        if len(samples) == 1:
            return self._one(samples)
        if self.api == "completions":
            extra = self._one(samples)
            extra.pop("tpot_ms", None)
            extra["prompts"] = len(samples)
            return extra
        results = [self._one([s]) for s in samples]
        extra = dict(results[0])
        extra.pop("tpot_ms", None)
        extra["output_tokens"] = sum(r.get("output_tokens") or 0 for r in results)
        extra["requests"] = len(results)
        return extra

    def _one(self, samples: List[int]) -> Dict[str, Any]:
        req = urllib.request.Request(self.url, data=self._body(samples), headers=self.headers, method="POST")
        t_send = self.clock()
        try:
            # The socket timeout bounds every read; the total deadline is checked between chunks.
            resp = self._opener.open(req, timeout=self.timeout_s)
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")
            raise SutError("HTTP {} from {}: {}".format(exc.code, self.url, _tail(body, 200))) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, socket.timeout):
                raise SutError("{} timed out after {:g} s".format(self.url, self.timeout_s)) from None
            raise SutError("cannot reach {}: {}".format(self.url, exc.reason)) from None
        except socket.timeout:
            raise SutError("{} timed out after {:g} s".format(self.url, self.timeout_s)) from None
        except (OSError, ValueError) as exc:
            raise SutError("request to {} failed: {}".format(self.url, exc)) from None
        try:
            with resp:
                if self.stream:
                    return self._read_stream(resp, t_send)
                return self._read_plain(resp, t_send)
        except socket.timeout:
            raise SutError("{} timed out after {:g} s".format(self.url, self.timeout_s)) from None
        except (OSError, ValueError) as exc:
            raise SutError("reading the answer of {} failed: {}".format(self.url, exc)) from None

    def _read_plain(self, resp: Any, t_send: float) -> Dict[str, Any]:
        obj = json.loads(resp.read().decode("utf-8"))
        e2e_ms = (self.clock() - t_send) * 1000.0
        usage = obj.get("usage") or {}
        return _clean({"e2e_ms": e2e_ms, "output_tokens": usage.get("completion_tokens"),
                       "prompt_tokens": usage.get("prompt_tokens")})

    def _read_stream(self, resp: Any, t_send: float) -> Dict[str, Any]:
        t_first: Optional[float] = None
        chunks = 0
        usage: Dict[str, Any] = {}
        server: Dict[str, Any] = {}
        while True:
            raw = resp.readline()
            if not raw:
                break
            if self.should_stop():
                raise _stopped("request to {}".format(self.url))
            if self.clock() - t_send > self.timeout_s:
                raise SutError("{} timed out after {:g} s (stream still running)".format(
                    self.url, self.timeout_s))
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:"):
                continue  # SSE comments, event: lines, keep-alives
            data = line[5:].strip()
            if data == "[DONE]":
                break
            obj = json.loads(data)
            if isinstance(obj, dict) and obj.get("error"):
                raise SutError("{} streamed an error: {}".format(
                    self.url, _tail(json.dumps(obj["error"]), 200)))
            if _chunk_text(obj):
                chunks += 1
                if t_first is None:
                    t_first = self.clock()
            if obj.get("usage"):
                usage = obj["usage"]
            for key in ("timings", "metrics"):  # llama.cpp, vLLM per-request metrics
                if isinstance(obj.get(key), dict):
                    server[key] = obj[key]
        t_end = self.clock()
        n_out = usage.get("completion_tokens") or chunks
        extra: Dict[str, Any] = {"e2e_ms": (t_end - t_send) * 1000.0, "output_tokens": n_out,
                                 "prompt_tokens": usage.get("prompt_tokens")}
        if t_first is not None:
            extra["ttft_ms"] = (t_first - t_send) * 1000.0
            if n_out and n_out > 1:
                extra["tpot_ms"] = (t_end - t_first) * 1000.0 / (n_out - 1)
        if server:
            extra["server"] = server
        return _clean(extra)

    def describe(self) -> Dict[str, Any]:
        return {"kind": self.kind, "url": self.url, "api": self.api, "model": self.model,
                "max_tokens": self.max_tokens, "stream": self.stream, "timeout_s": self.timeout_s}


def _chunk_text(obj: Any) -> str:
    """The generated text in one stream chunk (chat delta content, reasoning, or completion text)."""
    if not isinstance(obj, dict):
        return ""
    text = ""
    for choice in obj.get("choices") or []:
        delta = choice.get("delta") or {}
        for part in (delta.get("content"), delta.get("reasoning_content"), choice.get("text")):
            text += part or ""
    return text


def _clean(extra: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in extra.items() if v is not None}
