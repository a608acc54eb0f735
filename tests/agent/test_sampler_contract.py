"""One contract over every sampler that can open here: sim, none, ina3221 and rapl on fake trees,
tegrastats on a fake binary, nvml and jtop on injected fakes."""

import shutil
import tempfile
import unittest

from agents import protocol
from agents.samplers.base import Reading, Sampler
from agents.samplers.registry import SAMPLERS, open_sampler
from tests.agent.fake_sysfs import FakeClock, make_jp5_tree, make_rapl_tree
from tests.agent.test_samplers_jtop import POWER_ORIN_NX, FakeJetson
from tests.agent.test_samplers_nvml import h100_node
from tests.agent.test_samplers_tegrastats import make_fake_tegrastats, wait_until

DESCRIBE_KEYS = {
    "name",
    "device",
    "rails",
    "total_rail",
    "total_rule",
    "resolution_w",
    "min_interval_ms",
    "check_cmd",
    "notes",
}


class SamplerContractTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root)

    def cases(self):
        """(label, device id, options) for every source, each backed by a fake that works here."""
        jp5 = self.root + "/jp5"
        make_jp5_tree(jp5, [("VDD_IN", 5080, 1840), ("VDD_SOC", 5072, 250)])
        rapl = self.root + "/rapl"
        make_rapl_tree(rapl, [("intel-rapl:0", "package-0", 10, 2**32)])
        binary, _ = make_fake_tegrastats(self.root, "xavier-nx-class_mW_idle-then-load.txt")
        return [
            ("sim", "sim:jetson-agx-orin-64gb", {}),
            ("none", "none", {}),
            ("ina3221", "jetson", {"root": jp5}),
            ("rapl", "rapl", {"root": rapl}),
            ("tegrastats", "jetson", {"sampler": "tegrastats", "binary": binary}),
            ("nvml", "nvml:0", {"nvml": h100_node()}),
            ("jtop", "jetson", {"sampler": "jtop", "jtop": FakeJetson(POWER_ORIN_NX)}),
        ]

    def test_the_cases_cover_every_registered_sampler(self):
        self.assertEqual(sorted(label for label, _d, _o in self.cases()), sorted(SAMPLERS))

    def test_every_sampler_honours_the_contract(self):
        for label, device, opts in self.cases():
            with self.subTest(sampler=label):
                self.check(label, device, opts)

    def check(self, label, device, opts):
        clock = FakeClock()
        s = open_sampler(device, 20, clock=clock, **opts)
        try:
            self.assertIsInstance(s, Sampler)
            self.assertEqual(s.name, label)
            if label == "tegrastats":
                self.assertTrue(wait_until(lambda: bool(s.read().rails)))
            readings = []
            for i in range(3):
                clock.tick(0.05)
                s.set_load(i / 2.0)  # harmless everywhere, drives sim
                readings.append(s.read())
            desc = s.describe()
            notices = s.drain_notices()
        finally:
            s.close()
        s.close()  # closing twice is safe

        self.assertEqual(set(desc) - {"hardware_id"}, DESCRIBE_KEYS)
        self.assertEqual(desc["name"], label)
        self.assertEqual(desc["device"], device)
        self.assertIsInstance(desc["total_rule"], str)
        self.assertIsInstance(desc["notes"], list)
        self.assertIsInstance(notices, list)
        times = [r.t for r in readings]
        self.assertEqual(times, sorted(times))
        for r in readings:
            self.assertIsInstance(r, Reading)
            self.assertEqual(sorted(r.rails), sorted(desc["rails"]))
            for name, watts in r.rails.items():
                self.assertIsInstance(name, str)
                self.assertTrue(watts is None or (isinstance(watts, float) and watts >= 0), (name, watts))
            self.assertTrue(r.total_w is None or r.total_w >= 0)
            if label != "none":
                self.assertIsNotNone(r.total_w, label)
            # Every reading travels: it must fit a protocol sample row.
            row = protocol.sample_row(0, r.t - clock.t, r.total_w, r.rails, r.energy_j)
            protocol.parse_sample_row(
                protocol.decode(protocol.encode({"type": "event", "rows": [row]}))["rows"][0]
            )

    def test_available_is_none_or_a_reason_for_every_sampler(self):
        for name, cls in SAMPLERS.items():
            with self.subTest(sampler=name):
                reason = cls.available(root=self.root)
                self.assertTrue(reason is None or (isinstance(reason, str) and reason), reason)

    def test_sim_and_none_are_available_everywhere(self):
        self.assertIsNone(SAMPLERS["sim"].available())
        self.assertIsNone(SAMPLERS["none"].available())


if __name__ == "__main__":
    unittest.main()
