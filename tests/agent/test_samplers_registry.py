"""registry: device ids pick the source; `jetson` falls back ina3221 -> tegrastats -> jtop; probe
always offers sim; unknown ids name what exists. Also the time-only `none` sampler."""

import os
import shutil
import tempfile
import unittest

from agents.samplers.base import SamplerPermission, SamplerUnavailable
from agents.samplers.registry import SAMPLERS, open_sampler, probe
from tests.agent.fake_sysfs import FakeClock, make_jp4_tree, make_rapl_tree
from tests.agent.test_samplers_jtop import POWER_ORIN_NX, FakeJetson
from tests.agent.test_samplers_nvml import h100_node
from tests.agent.test_samplers_tegrastats import make_fake_tegrastats


class RegistryTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root)
        self.missing = os.path.join(self.root, "missing")

    def test_sim_ids_open_a_sim_of_that_hardware(self):
        s = open_sampler("sim:h100-pcie-80gb", 100, clock=FakeClock(), seed=3, noise=0)
        self.assertEqual((s.name, s.hardware_id, s.tdp_w), ("sim", "h100-pcie-80gb", 350.0))
        s.close()

    def test_unknown_device_ids_are_refused_with_the_forms_that_exist(self):
        for bad in ("gpu0", "sim:", "jetson-agx-orin", ""):
            with self.subTest(device=bad):
                with self.assertRaises(SamplerUnavailable) as cm:
                    open_sampler(bad, 100)
                self.assertIn("sim:<hardware-id>", str(cm.exception))
                self.assertIn("nvml:<index>", str(cm.exception))

    def test_an_unknown_forced_sampler_names_the_samplers(self):
        with self.assertRaises(SamplerUnavailable) as cm:
            open_sampler("jetson", 100, sampler="nope")
        self.assertIn("tegrastats", str(cm.exception))

    def test_an_option_no_sampler_takes_is_a_type_error(self):
        with self.assertRaises(TypeError) as cm:
            open_sampler("none", 100, roott="/sys")
        self.assertIn("roott", str(cm.exception))

    def test_jetson_prefers_ina3221_sysfs(self):
        make_jp4_tree(self.root, [("VDD_IN", 5000)])
        binary, _ = make_fake_tegrastats(self.root, "tx2_jp4_no-units.txt")
        s = open_sampler("jetson", 100, clock=FakeClock(), root=self.root, binary=binary)
        self.assertEqual(s.name, "ina3221")
        s.close()

    def test_jetson_falls_back_to_tegrastats_then_jtop(self):
        binary, _ = make_fake_tegrastats(self.root, "tx2_jp4_no-units.txt")
        s = open_sampler("jetson", 50, root=self.missing, binary=binary, jtop=FakeJetson(POWER_ORIN_NX))
        self.assertEqual(s.name, "tegrastats")
        self.assertEqual(s.interval_ms, 50)
        s.close()
        s = open_sampler("jetson", 50, root=self.missing, binary=self.missing, jtop=FakeJetson(POWER_ORIN_NX))
        self.assertEqual(s.name, "jtop")
        s.close()

    def test_jetson_with_no_source_lists_why_each_failed(self):
        with self.assertRaises(SamplerUnavailable) as cm:
            open_sampler(
                "jetson",
                100,
                root=self.missing,
                binary=self.missing,
                jtop=FakeJetson(POWER_ORIN_NX, start_error="The jtop.service is not active."),
            )
        msg = str(cm.exception)
        for name in ("ina3221", "tegrastats", "jtop"):
            self.assertIn(name + ":", msg)

    def test_rapl_without_permission_raises_the_permission_error(self):
        make_rapl_tree(self.root, [("intel-rapl:0", "package-0", 1, 2**32)])

        class Denied(SAMPLERS["rapl"]):
            @staticmethod
            def _open_fd(path, flags):
                raise PermissionError(13, "Permission denied", path)

        saved = SAMPLERS["rapl"]
        SAMPLERS["rapl"] = Denied
        self.addCleanup(SAMPLERS.__setitem__, "rapl", saved)
        with self.assertRaises(SamplerPermission):
            open_sampler("rapl", 100, root=self.root)

    def test_probe_reports_every_sampler_and_always_offers_sim_and_none(self):
        make_rapl_tree(self.root, [("intel-rapl:0", "package-0", 1, 2**32)])
        tegra = os.path.join(self.root, "nv_tegra_release")
        samplers, devices = probe(root=self.root, binary=self.missing, nvml=h100_node(), tegra_release=tegra)
        self.assertEqual(sorted(samplers), sorted(SAMPLERS))
        self.assertIsNone(samplers["sim"])
        self.assertIsNone(samplers["rapl"])
        self.assertIsNone(samplers["nvml"])
        self.assertIn("tegrastats not found", samplers["tegrastats"])
        ids = [d["id"] for d in devices]
        self.assertEqual(ids, ["nvml:0", "nvml:1", "rapl", "sim:<hardware-id>", "none"])
        self.assertEqual(devices[0]["hardware_id"], "h100-sxm5-80gb")
        for d in devices:
            self.assertEqual(set(d), {"id", "sampler", "name", "hardware_id"})

    def test_probe_lists_jetson_once_from_the_preferred_source(self):
        make_jp4_tree(self.root, [("VDD_IN", 5000)])
        binary, _ = make_fake_tegrastats(self.root, "tx2_jp4_no-units.txt")
        _samplers, devices = probe(root=self.root, binary=binary)
        jetson = [d for d in devices if d["id"] == "jetson"]
        self.assertEqual([d["sampler"] for d in jetson], ["ina3221"])


class NoneSamplerTest(unittest.TestCase):
    def test_none_records_time_only(self):
        clock = FakeClock(5.0)
        with open_sampler("none", 100, clock=clock) as s:
            clock.tick(0.25)
            r = s.read()
            d = s.describe()
        self.assertEqual((r.t, r.rails, r.total_w, r.energy_j), (5.25, {}, None, None))
        self.assertIn("time only", d["total_rule"])


if __name__ == "__main__":
    unittest.main()
