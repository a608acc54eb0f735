"""tegrastats: every fixture line parses to the right rails and watts; the sampler keeps one process."""

import os
import stat
import sys
import tempfile
import time
import unittest

from agents.samplers.base import SamplerError
from agents.samplers.tegrastats import NEED_ROOT, TegrastatsSampler, board_total, parse_line

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tegrastats")

# Expected watts per line of each fixture, read off the lines themselves (first value, mW / 1000).
EXPECTED = {
    "tx2_jp4_no-units.txt": [
        {
            "VDD_IN": 1.931,
            "VDD_CPU": 0.231,
            "VDD_GPU": 0.154,
            "VDD_SOC": 0.385,
            "VDD_WIFI": 0.038,
            "VDD_DDR": 0.326,
        }
    ],
    "agx-xavier-class_jp4.txt": [
        {"GPU": 0.0, "CPU": 0.216, "SOC": 0.864, "CV": 0.0, "VDDRQ": 0.144, "SYS5V": 1.889}
    ],
    "xavier-nx-class_mW_idle-then-load.txt": [
        {"VDD_IN": 5.542, "VDD_CPU_GPU_CV": 1.594, "VDD_SOC": 1.234},
        {"VDD_IN": 13.353, "VDD_CPU_GPU_CV": 7.340, "VDD_SOC": 1.944},
    ],
    "agx-orin-64gb_mW_date.txt": [{"VDD_GPU_SOC": 2.798, "VDD_CPU_CV": 0.799, "VIN_SYS_5V0": 3.315}],
    "synthetic_agx-orin_jp7_three-values.txt": [
        {"VDD_GPU_SOC": 4.385, "VDD_CPU_CV": 1.190, "VIN_SYS_5V0": 4.968, "VDDQ_VDD2_1V8AO": 1.091}
    ],
    "synthetic_agx-orin_jp5_nc-channels.txt": [
        {"VDD_GPU_SOC": 3.150, "VDD_CPU_CV": 1.412, "VIN_SYS_5V0": 4.968, "VDDQ_VDD2_1V8AO": 1.091}
    ],
    "synthetic_nano_jp4_pom5v.txt": [{"POM_5V_IN": 2.559, "POM_5V_GPU": 0.040, "POM_5V_CPU": 0.563}],
    "synthetic_tx2_jp4_vdd-sys.txt": [
        {
            "VDD_SYS_GPU": 0.152,
            "VDD_SYS_SOC": 0.457,
            "VDD_4V0_WIFI": 0.0,
            "VDD_IN": 2.361,
            "VDD_SYS_CPU": 0.152,
            "VDD_SYS_DDR": 0.134,
        }
    ],
    "synthetic_nano_not-root_no-rails.txt": [{}],
}


def fixture_lines(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return [line for line in f.read().splitlines() if line.strip()]


class ParseLineTest(unittest.TestCase):
    def assertRails(self, got, want):
        self.assertEqual(sorted(got), sorted(want))
        for rail, watts in want.items():
            self.assertAlmostEqual(got[rail], watts, places=9, msg=rail)

    def test_every_fixture_file_has_expectations(self):
        names = sorted(n for n in os.listdir(FIXTURES) if n.endswith(".txt"))
        self.assertEqual(names, sorted(EXPECTED))

    def test_every_fixture_line_parses_to_its_rails_in_watts(self):
        for name, want_lines in EXPECTED.items():
            lines = fixture_lines(name)
            self.assertEqual(len(lines), len(want_lines), name)
            for line, want in zip(lines, want_lines):
                with self.subTest(fixture=name):
                    self.assertRails(parse_line(line), want)

    def test_rails_come_out_in_the_order_the_board_prints_them(self):
        rails = parse_line(fixture_lines("agx-xavier-class_jp4.txt")[0])
        self.assertEqual(list(rails), ["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"])

    def test_nc_channels_are_skipped(self):
        rails = parse_line(fixture_lines("synthetic_agx-orin_jp5_nc-channels.txt")[0])
        self.assertNotIn("NC", rails)

    def test_three_value_rails_take_the_first_value(self):
        self.assertEqual(parse_line("VDD_IN 4385mW/3787mW/9999mW"), {"VDD_IN": 4.385})

    def test_memory_fields_are_not_rails(self):
        self.assertEqual(
            parse_line("RAM 1903/15692MB (lfb 3251x4MB) SWAP 278/8192MB IRAM 0/252kB(lfb 252kB)"), {}
        )

    def test_a_line_without_rails_gives_an_empty_dict(self):
        self.assertEqual(parse_line(""), {})
        self.assertEqual(parse_line(fixture_lines("synthetic_nano_not-root_no-rails.txt")[0]), {})


class BoardTotalTest(unittest.TestCase):
    def total(self, name, index=0):
        return board_total(parse_line(fixture_lines(name)[index]))

    def test_vdd_in_is_the_total_where_the_board_has_it(self):
        watts, rule = self.total("xavier-nx-class_mW_idle-then-load.txt", 1)
        self.assertAlmostEqual(watts, 13.353)
        self.assertTrue(rule.startswith("VDD_IN"), rule)

    def test_pom_5v_in_is_the_total_on_a_nano(self):
        watts, rule = self.total("synthetic_nano_jp4_pom5v.txt")
        self.assertAlmostEqual(watts, 2.559)
        self.assertTrue(rule.startswith("POM_5V_IN"), rule)

    def test_agx_xavier_total_is_the_labelled_sum_of_its_rails(self):
        watts, rule = self.total("agx-xavier-class_jp4.txt")
        self.assertAlmostEqual(watts, 0.216 + 0.864 + 0.144 + 1.889)
        self.assertEqual(rule, "sum of rails GPU+CPU+SOC+CV+VDDRQ+SYS5V (no input rail on this board)")

    def test_agx_orin_total_is_the_labelled_sum_of_its_rails(self):
        watts, rule = self.total("agx-orin-64gb_mW_date.txt")
        self.assertAlmostEqual(watts, 2.798 + 0.799 + 3.315)
        self.assertIn("sum of rails VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0", rule)

    def test_a_sum_with_an_unreadable_rail_is_unknown(self):
        watts, _rule = board_total({"GPU": 1.0, "CPU": None})
        self.assertIsNone(watts)

    def test_no_rails_gives_no_total(self):
        self.assertEqual(board_total({})[0], None)


FAKE_TEGRASTATS = """#!{python}
import sys, time
# A stand-in for tegrastats: prints the lines of a file every --interval ms, forever.
interval = int(sys.argv[sys.argv.index("--interval") + 1]) / 1000.0
with open({argv_file!r}, "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
lines = open({lines!r}).read().splitlines()
mode = {mode!r}
if mode == "die":
    sys.stderr.write("tegrastats: cannot open /dev/nvhost-ctrl\\n")
    sys.exit(3)
i = 0
while True:
    sys.stdout.write(lines[i % len(lines)] + "\\n")
    sys.stdout.flush()
    i += 1
    if mode == "once" and i == len(lines):
        sys.exit(0)
    while mode == "hold" and i == len(lines):  # print every line once, then stay alive and silent
        time.sleep(1)
    time.sleep(interval)
"""


def make_fake_tegrastats(tmpdir, fixture, mode="loop"):
    """An executable fake tegrastats printing `fixture`'s lines; returns (binary path, argv log path)."""
    path = os.path.join(tmpdir, "tegrastats")
    argv_file = os.path.join(tmpdir, "argv.log")
    with open(path, "w") as f:
        f.write(
            FAKE_TEGRASTATS.format(
                python=sys.executable, argv_file=argv_file, lines=os.path.join(FIXTURES, fixture), mode=mode
            )
        )
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path, argv_file


def wait_until(predicate, timeout=3.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


class TegrastatsSamplerTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def test_runs_one_tegrastats_process_with_the_interval(self):
        binary, argv_log = make_fake_tegrastats(self.tmp.name, "xavier-nx-class_mW_idle-then-load.txt")
        with TegrastatsSampler("jetson", interval_ms=20, binary=binary) as s:
            for _ in range(5):
                s.read()
                time.sleep(0.02)
        with open(argv_log) as f:
            self.assertEqual(f.read().splitlines(), ["--interval 20"])

    def test_read_returns_the_latest_line_in_watts_with_its_arrival_time(self):
        binary, _ = make_fake_tegrastats(self.tmp.name, "xavier-nx-class_mW_idle-then-load.txt", mode="hold")
        with TegrastatsSampler("jetson", interval_ms=10, binary=binary) as s:
            self.assertTrue(wait_until(lambda: s.read().total_w == 13.353))  # the 2nd (last) line
            first = s.read()
            time.sleep(0.05)
            again = s.read()
            self.assertEqual(again.t, first.t)  # no new line: same reading, stamped when it arrived
            self.assertLess(again.t, time.monotonic() - 0.04)
            self.assertEqual(again.rails, {"VDD_IN": 13.353, "VDD_CPU_GPU_CV": 7.340, "VDD_SOC": 1.944})
            self.assertEqual(s.describe()["total_rail"], "VDD_IN")

    def test_lines_without_rails_report_need_root_once(self):
        binary, _ = make_fake_tegrastats(self.tmp.name, "synthetic_nano_not-root_no-rails.txt")
        with TegrastatsSampler("jetson", interval_ms=5, binary=binary) as s:
            time.sleep(0.1)  # ~20 rail-less lines
            r = s.read()
            self.assertEqual(r.rails, {})
            self.assertIsNone(r.total_w)
            self.assertEqual(s.drain_notices(), [NEED_ROOT])
            time.sleep(0.05)
            self.assertEqual(s.drain_notices(), [])

    def test_a_tegrastats_that_dies_at_start_is_an_error_with_its_stderr(self):
        binary, _ = make_fake_tegrastats(self.tmp.name, "tx2_jp4_no-units.txt", mode="die")
        s = TegrastatsSampler("jetson", interval_ms=10, binary=binary)
        with self.assertRaises(SamplerError) as cm:
            s.open()
        self.assertIn("code 3", str(cm.exception))
        self.assertIn("nvhost-ctrl", str(cm.exception))

    def test_read_after_tegrastats_exits_is_an_error_naming_it(self):
        binary, _ = make_fake_tegrastats(self.tmp.name, "tx2_jp4_no-units.txt", mode="once")
        with TegrastatsSampler("jetson", interval_ms=10, binary=binary) as s:
            self.assertTrue(wait_until(lambda: s._proc.poll() is not None))
            self.assertTrue(wait_until(lambda: not s._thread.is_alive()))
            with self.assertRaises(SamplerError) as cm:
                s.read()
            self.assertIn("exited with code 0", str(cm.exception))

    def test_close_stops_the_process(self):
        binary, _ = make_fake_tegrastats(self.tmp.name, "tx2_jp4_no-units.txt")
        s = TegrastatsSampler("jetson", interval_ms=10, binary=binary)
        s.open()
        proc = s._proc
        s.close()
        self.assertIsNotNone(proc.poll())
        s.close()  # twice is fine

    def test_a_missing_binary_is_unavailable(self):
        reason = TegrastatsSampler.available(binary=os.path.join(self.tmp.name, "nope"))
        self.assertIn("tegrastats not found", reason)


if __name__ == "__main__":
    unittest.main()
