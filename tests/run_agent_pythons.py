"""Run the agent test suite (tests/agent, stdlib unittest) under every CPython 3.6..3.13 found here.

Usage: python tests/run_agent_pythons.py [--timeout S] [--pattern GLOB]
Looks in ~/.pyenv/versions/3.*/bin/python and for python3.X on PATH, runs
`python -m unittest discover -s tests/agent -t .` from the repository root under each, one after the
other, and prints which interpreters ran, passed, failed or are absent. Exits non-zero if any
interpreter ran and failed, or if none ran at all.
"""

import argparse
import concurrent.futures
import glob
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINORS = range(6, 14)  # 3.6 .. 3.13, the agent's supported range
_RAN = re.compile(r"^Ran (\d+) tests? in", re.M)


def find_interpreters():
    """{"3.X": path} for each minor version, pyenv builds first, then python3.X on PATH."""
    found = {}
    for path in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python"))):
        m = re.search(r"/versions/3\.(\d+)\.", path)
        if m and int(m.group(1)) in MINORS:
            found.setdefault("3." + m.group(1), path)
    for minor in MINORS:
        version = f"3.{minor}"
        if version not in found:
            path = shutil.which("python" + version)
            if path:
                found[version] = path
    return found


def run_one(python, timeout, pattern):
    """(status, tests run, seconds, output) for one interpreter."""
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [python, "-m", "unittest", "discover", "-s", "tests/agent", "-t", ".", "-p", pattern],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.output or b"").decode("utf-8", "replace")
        return "timeout", None, time.monotonic() - start, out
    out = proc.stdout.decode("utf-8", "replace")
    m = _RAN.search(out)
    tests = int(m.group(1)) if m else None
    status = "passed" if proc.returncode == 0 and tests else "failed"
    return status, tests, time.monotonic() - start, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per interpreter (default 120)")
    parser.add_argument("--pattern", default="test*.py", help="test file glob (default test*.py, all)")
    parser.add_argument("--jobs", type=int, default=3,
                        help="interpreters run at once (default 3: the suite mostly waits on timed sampling)")
    args = parser.parse_args(argv)

    found = find_interpreters()
    present = [(f"3.{m}", found.get(f"3.{m}")) for m in MINORS]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {v: pool.submit(run_one, p, args.timeout, args.pattern) for v, p in present if p}
    rows = []
    failures = []
    for version, path in present:
        if path is None:
            rows.append((version, "absent", "", "", "-"))
            continue
        status, tests, seconds, out = futures[version].result()
        rows.append((version, status, "" if tests is None else str(tests), f"{seconds:.1f}", path))
        if status != "passed":
            failures.append((version, out))

    print("{:<6} {:<8} {:>6} {:>7}  {}".format("python", "result", "tests", "seconds", "interpreter"))
    for version, status, tests, seconds, path in rows:
        print(f"{version:<6} {status:<8} {tests:>6} {seconds:>7}  {path}")
    for version, out in failures:
        print(f"\n--- python {version} (last 40 lines) ---")
        print("\n".join(out.splitlines()[-40:]))

    ran = [r for r in rows if r[1] != "absent"]
    if not ran:
        print("no CPython 3.6..3.13 interpreter found: nothing ran", file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
