"""rapl: power from counter deltas, wraparound added back, nested domains not double-counted."""

import os
import shutil
import tempfile
import unittest

from agents.samplers.base import SamplerPermission, SamplerUnavailable
from agents.samplers.rapl import RaplSampler, unwrap_delta
from tests.agent.fake_sysfs import FakeClock, make_rapl_tree, set_rapl_energy

MAX = 262143328850  # a common max_energy_range_uj


class RaplTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root)

    def tree(self, **kw):
        return make_rapl_tree(
            self.root,
            [
                ("intel-rapl:0", "package-0", 1000000, MAX),
                ("intel-rapl:0:0", "core", 500, MAX),
                ("intel-rapl:0:1", "dram", 2000000, MAX),
            ],
            **kw,
        )

    def test_unwrap_delta_adds_back_one_wrap(self):
        self.assertEqual(unwrap_delta(100, 250, 1000), 150)
        self.assertEqual(unwrap_delta(900, 50, 1000), 150)

    def test_power_is_energy_delta_over_time_per_rail(self):
        paths = self.tree(with_psys=True)
        clock = FakeClock()
        with RaplSampler("rapl", clock, root=self.root) as s:
            clock.tick(0.5)
            set_rapl_energy(paths, "intel-rapl:0", 1000000 + 10000000)  # 10 J in 0.5 s
            set_rapl_energy(paths, "intel-rapl:0:1", 2000000 + 1000000)  # 1 J
            r = s.read()
        self.assertEqual(sorted(r.rails), ["dram-0", "package-0"])  # no core, no psys
        self.assertAlmostEqual(r.rails["package-0"], 20.0)
        self.assertAlmostEqual(r.rails["dram-0"], 2.0)
        self.assertAlmostEqual(r.total_w, 22.0)
        self.assertAlmostEqual(r.energy_j, 1.0 + 10.0 + 2.0 + 1.0)  # absolute, unwrapped

    def test_a_counter_wrap_is_added_back_to_power_and_energy(self):
        paths = make_rapl_tree(self.root, [("intel-rapl:0", "package-0", 1000 - 300, 1000)])
        clock = FakeClock()
        with RaplSampler("rapl", clock, root=self.root) as s:
            clock.tick(0.001)
            set_rapl_energy(paths, "intel-rapl:0", 200)  # 300 uJ to the wrap, then 200 more
            r1 = s.read()
            clock.tick(0.001)
            set_rapl_energy(paths, "intel-rapl:0", 700)
            r2 = s.read()
        self.assertAlmostEqual(r1.rails["package-0"], 500e-6 / 0.001)
        self.assertAlmostEqual(r2.rails["package-0"], 500e-6 / 0.001)
        self.assertAlmostEqual(r2.energy_j - r1.energy_j, 500e-6)
        self.assertAlmostEqual(r2.energy_j, (700 + 500 + 500) * 1e-6)  # first raw + both deltas

    def test_reads_at_the_same_instant_give_no_power_and_lose_no_energy(self):
        paths = make_rapl_tree(self.root, [("intel-rapl:0", "package-0", 0, MAX)])
        clock = FakeClock()
        with RaplSampler("rapl", clock, root=self.root) as s:
            set_rapl_energy(paths, "intel-rapl:0", 1000000)
            self.assertIsNone(s.read().rails["package-0"])
            clock.tick(1.0)
            self.assertAlmostEqual(s.read().rails["package-0"], 1.0)

    def test_permission_denied_says_how_to_fix_it(self):
        self.tree()

        def deny(path, flags):
            raise PermissionError(13, "Permission denied", path)

        class Unprivileged(RaplSampler):
            _open_fd = staticmethod(deny)

        with self.assertRaises(SamplerPermission) as cm:
            Unprivileged("rapl", FakeClock(), root=self.root).open()
        msg = str(cm.exception)
        self.assertIn("intel-rapl:0/energy_uj", msg)
        self.assertIn("root", msg)
        self.assertIn("chmod", msg)

    @unittest.skipIf(os.geteuid() == 0, "root reads files whatever their mode")
    def test_an_unreadable_counter_file_is_a_permission_error(self):
        paths = self.tree()
        os.chmod(paths["intel-rapl:0"], 0o200)
        with self.assertRaises(SamplerPermission):
            RaplSampler("rapl", FakeClock(), root=self.root).open()

    def test_no_powercap_tree_is_unavailable(self):
        with self.assertRaises(SamplerUnavailable):
            RaplSampler("rapl", FakeClock(), root=self.root).open()
        self.assertIn("no RAPL package zones", RaplSampler.available(root=self.root))


if __name__ == "__main__":
    unittest.main()
