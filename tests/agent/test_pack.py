"""The agent zipapp: reproducible bytes, the whole package, runnable on every Python we ship to."""

import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import zipfile

from agents.__main__ import request_once
from agents.pack import build_zipapp

# Oldest and a current CPython the agent ships to (JetPack 4 has 3.6), where this machine has them.
PYTHONS = sorted(
    set(glob.glob(os.path.expanduser("~/.pyenv/versions/3.6*/bin/python")))
    | set(glob.glob(os.path.expanduser("~/.pyenv/versions/3.11*/bin/python")))
)


class PackTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wl-pack-")
        self.pyz = os.path.join(self.tmp, "agent.pyz")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_the_zipapp_is_reproducible(self):
        first = build_zipapp(self.pyz)
        with open(self.pyz, "rb") as f:
            data = f.read()
        time.sleep(1.1)  # a build that leaked the clock into timestamps would now differ
        second = build_zipapp(os.path.join(self.tmp, "again.pyz"))
        self.assertEqual(first, second)
        self.assertEqual(first, hashlib.sha256(data).hexdigest())

    def test_the_zipapp_holds_the_agent_package_and_no_bytecode(self):
        build_zipapp(self.pyz)
        with zipfile.ZipFile(self.pyz) as zf:
            names = zf.namelist()
        self.assertEqual(names, sorted(names))
        for needed in (
            "__main__.py",
            "agents/__init__.py",
            "agents/__main__.py",
            "agents/protocol.py",
            "agents/daemon.py",
            "agents/samplers/base.py",
        ):
            self.assertIn(needed, names)
        self.assertFalse([n for n in names if n.endswith(".pyc") or "__pycache__" in n])
        self.assertEqual(os.stat(self.pyz).st_mode & 0o777, 0o755)

    def test_probe_json_runs_from_the_zipapp_on_every_shipped_python(self):
        build_zipapp(self.pyz)
        pythons = PYTHONS or [sys.executable]
        for python in pythons:
            out = subprocess.check_output([python, self.pyz, "probe", "--json"], cwd=self.tmp, timeout=60)
            info = json.loads(out.decode("utf-8"))
            version = subprocess.check_output(
                [python, "-c", "import platform; print(platform.python_version())"]
            )
            self.assertEqual(info["python"], version.decode().strip(), python)
            self.assertIsNone(info["samplers"]["sim"], python)
            self.assertIn("sim:<hardware-id>", [d["id"] for d in info["devices"]])

    def test_a_bridge_from_the_zipapp_starts_its_daemon_from_the_zipapp(self):
        build_zipapp(self.pyz)
        home = os.path.join(self.tmp, "home")
        env = dict(os.environ, WATTLAB_AGENT_HOME=home)
        env.pop("PYTHONPATH", None)
        python = PYTHONS[0] if PYTHONS else sys.executable
        bridge = subprocess.Popen(
            [python, self.pyz, "bridge"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=self.tmp
        )
        pid = None
        try:
            hello = json.loads(bridge.stdout.readline().decode("utf-8"))
            pid = hello["pid"]
            with open("/proc/{}/cmdline".format(pid), "rb") as f:
                cmdline = f.read().split(b"\0")
            self.assertIn(self.pyz.encode(), cmdline)
            self.assertIn(b"daemon", cmdline)
        finally:
            bridge.kill()
            bridge.wait(10)
            bridge.stdin.close()
            bridge.stdout.close()
            request_once(home, "shutdown")
            if pid is not None:
                _wait_gone(pid)


def _wait_gone(pid):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open("/proc/{}/stat".format(pid)) as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    unittest.main()
