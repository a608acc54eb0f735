"""Run a loadgen workload in a child process, so no workload can take the daemon down.

The real MLPerf LoadGen is a process-wide C++ singleton: two tests at once in one process abort
it ("terminate called without an active exception"), and any SUT or LoadGen crash in the daemon
would end every job on the device. So each loadgen job runs `agent loadgen-child`, which calls
agents.loadgen.run_workload and reports over its stdout, one JSON object per line:

    {"q": [query_id, issue_t, done_t, ok, extra]}   a finished query (times on CLOCK_MONOTONIC)
    {"load": level}                                   the SUT's busy level (drives the sim sampler)
    {"result": {...}} | {"error": "..."}              the end

time.monotonic() is CLOCK_MONOTONIC, shared by every process on the machine, so the child's query
times are on the same clock as the daemon's samples. The parent writes the spec as one line on
the child's stdin, then "stop" when the job is stopped. Stdlib only, CPython 3.6.
"""

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

STOP_GRACE_S = 5.0
STDERR_TAIL = 2000


class WorkloadProcessError(RuntimeError):
    """The workload child died or spoke nonsense; the message says how and shows its stderr."""


def child_command() -> Tuple[List[str], Optional[str]]:
    """(argv, extra PYTHONPATH) that runs `loadgen-child` with the code we run from (zipapp or source)."""
    from agents.bridge import agent_command

    return agent_command("loadgen-child")


def run_in_child(
    spec: Dict[str, Any],
    clock: Callable[[], float],
    emit_query: Callable[..., None],
    set_load: Callable[[float], None],
    should_stop: Callable[[], bool],
) -> Dict[str, Any]:
    """Same contract as agents.loadgen.run_workload, but the workload runs in its own process."""
    if clock is not time.monotonic:
        # an injected clock (tests) cannot be shared with another process: run in-process
        from agents.loadgen import run_workload

        return run_workload(spec, clock, emit_query, set_load, should_stop)
    argv, pythonpath = child_command()
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, close_fds=True)
    stderr_chunks: List[bytes] = []
    err_thread = threading.Thread(target=_drain, args=(proc.stderr, stderr_chunks), daemon=True)
    err_thread.start()
    done = threading.Event()
    stopper = threading.Thread(target=_watch_stop, args=(proc, should_stop, done), daemon=True)
    try:
        proc.stdin.write((json.dumps(spec) + "\n").encode("utf-8"))
        proc.stdin.flush()
    except OSError:
        pass  # the child died at once: reported below with its exit status
    stopper.start()
    result: Optional[Dict[str, Any]] = None
    error: Optional[str] = None
    try:
        for raw in proc.stdout:
            try:
                msg = json.loads(raw.decode("utf-8"))
            except ValueError:
                continue  # a stray print from a SUT library: not ours
            if not isinstance(msg, dict):
                continue
            if "q" in msg and isinstance(msg["q"], list) and len(msg["q"]) == 5:
                qid, issue_t, done_t, ok, extra = msg["q"]
                emit_query(qid, issue_t, done_t, bool(ok), extra if isinstance(extra, dict) else {})
            elif "load" in msg:
                try:
                    set_load(float(msg["load"]))
                except (TypeError, ValueError):
                    pass
            elif "result" in msg:
                result = msg["result"] if isinstance(msg["result"], dict) else {}
            elif "error" in msg:
                error = str(msg["error"])
    finally:
        done.set()
        code = proc.wait()
        err_thread.join(timeout=2)
        set_load(0.0)
    if error is not None:
        raise WorkloadProcessError(error)
    if result is None:
        tail = b"".join(stderr_chunks)[-STDERR_TAIL:].decode("utf-8", "replace").strip()
        how = "killed by signal {}".format(-code) if code < 0 else "exit status {}".format(code)
        raise WorkloadProcessError("the load generator process died ({}){}".format(
            how, ": " + tail.replace("\n", " | ") if tail else ""))
    result["isolated"] = True
    return result


def _drain(stream: Any, sink: List[bytes]) -> None:
    for chunk in iter(lambda: stream.read(4096), b""):
        sink.append(chunk)
        if len(sink) > 64:  # keep a bounded tail
            del sink[:32]


def _watch_stop(proc: Any, should_stop: Callable[[], bool], done: threading.Event) -> None:
    """Forward a stop to the child ("stop" line), and kill it if it does not end within the grace."""
    while not done.wait(0.05):
        if should_stop():
            try:
                proc.stdin.write(b"stop\n")
                proc.stdin.flush()
            except OSError:
                pass
            if not done.wait(STOP_GRACE_S):
                proc.kill()
            return


def child_main() -> int:
    """The child side: read the spec, run the workload, report on stdout (see module docstring)."""
    from agents.loadgen import run_workload

    out_lock = threading.Lock()
    stop = threading.Event()

    def send(msg: Dict[str, Any]) -> None:
        line = json.dumps(msg, separators=(",", ":")) + "\n"
        with out_lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    spec_line = sys.stdin.readline()
    try:
        spec = json.loads(spec_line)
    except ValueError as exc:
        send({"error": "workload child got no valid spec: {}".format(exc)})
        return 2

    def read_stop() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                stop.set()
        stop.set()  # the parent went away: stop too

    threading.Thread(target=read_stop, daemon=True).start()

    def emit(qid: Any, issue_t: float, done_t: Optional[float], ok: bool,
             extra: Optional[Dict[str, Any]]) -> None:
        send({"q": [qid, issue_t, done_t, bool(ok), extra or {}]})

    try:
        result = run_workload(spec, time.monotonic, emit, lambda level: send({"load": level}), stop.is_set)
    except Exception as exc:  # reported to the parent, which fails the job with this message
        send({"error": "{}: {}".format(type(exc).__name__, exc)})
        return 1
    send({"result": result})
    return 0
