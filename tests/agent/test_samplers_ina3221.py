"""ina3221: both sysfs layouts read correctly; rails are found once and read cheaply."""

import os
import shutil
import tempfile
import unittest

from agents.samplers.base import SamplerUnavailable
from agents.samplers.ina3221 import Ina3221Sampler, read_rails
from tests.agent.fake_sysfs import FakeClock, make_jp4_tree, make_jp5_tree, write_value

# AGX Orin JP6: the four module rails on two chips, one NC channel (values: a plausible idle).
ORIN_0040 = [("VDD_GPU_SOC", 843, 6170), ("VDD_CPU_CV", 780, 3437), ("VIN_SYS_5V0", 4968, 953)]
ORIN_0041 = [("NC", 0, 0), ("VDDQ_VDD2_1V8AO", 1800, 341)]


class Ina3221Test(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root)

    def test_jp4_iio_tree_reads_in_power_milliwatts(self):
        make_jp4_tree(self.root, [("POM_5V_IN", 2559), ("POM_5V_GPU", 40), ("POM_5V_CPU", 563)])
        self.assertEqual(
            read_rails(self.root), {"POM_5V_IN": 2.559, "POM_5V_GPU": 0.040, "POM_5V_CPU": 0.563}
        )

    def test_jp5_hwmon_tree_reads_millivolts_times_milliamps(self):
        make_jp5_tree(
            self.root, [("VDD_IN", 5080, 1840), ("VDD_CPU_GPU_CV", 5072, 310), ("VDD_SOC", 5072, 250)]
        )
        rails = read_rails(self.root)
        self.assertEqual(sorted(rails), ["VDD_CPU_GPU_CV", "VDD_IN", "VDD_SOC"])
        self.assertAlmostEqual(rails["VDD_IN"], 5.080 * 1.840, places=9)  # 9.347 W, the JP6 user report
        self.assertAlmostEqual(rails["VDD_SOC"], 5.072 * 0.250, places=9)

    def test_sum_channel_and_nc_labels_are_skipped_across_chips_and_hwmon_indices(self):
        make_jp5_tree(self.root, ORIN_0040, bus="1-0040", hwmon=3)
        make_jp5_tree(self.root, ORIN_0041, bus="1-0041", hwmon=4, with_sum_channel=False)
        rails = read_rails(self.root)
        self.assertEqual(sorted(rails), ["VDDQ_VDD2_1V8AO", "VDD_CPU_CV", "VDD_GPU_SOC", "VIN_SYS_5V0"])
        self.assertAlmostEqual(rails["VIN_SYS_5V0"], 4.968 * 0.953, places=9)

    def test_class_hwmon_link_to_the_same_chip_is_not_counted_twice(self):
        make_jp5_tree(self.root, ORIN_0040, hwmon=2)
        chip = os.path.join(self.root, "bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon2")
        os.makedirs(os.path.join(self.root, "class/hwmon"))
        os.symlink(chip, os.path.join(self.root, "class/hwmon/hwmon2"))
        self.assertEqual(len(read_rails(self.root)), 3)

    def test_no_tree_is_unavailable_with_the_path_it_looked_at(self):
        with self.assertRaises(SamplerUnavailable) as cm:
            read_rails(self.root)
        self.assertIn(self.root, str(cm.exception))
        self.assertIn("INA3221", Ina3221Sampler.available(root=self.root))

    def test_sampler_sees_new_values_without_rediscovery(self):
        files = make_jp5_tree(self.root, ORIN_0040)
        clock = FakeClock()
        with Ina3221Sampler("jetson", clock, root=self.root) as s:
            first = s.read()
            # Discovery files may vanish: read() must only touch the value files it opened.
            os.remove(os.path.join(os.path.dirname(files["VDD_GPU_SOC"][0]), "in1_label"))
            write_value(files["VDD_GPU_SOC"][1], 12000)
            clock.tick(0.1)
            second = s.read()
        self.assertAlmostEqual(first.rails["VDD_GPU_SOC"], 0.843 * 6.170, places=9)
        self.assertAlmostEqual(second.rails["VDD_GPU_SOC"], 0.843 * 12.0, places=9)
        self.assertEqual(second.t, first.t + 0.1)

    def test_agx_orin_total_is_the_sum_of_rails_and_describe_says_so(self):
        make_jp5_tree(self.root, ORIN_0040)
        with Ina3221Sampler("jetson", FakeClock(), root=self.root) as s:
            r = s.read()
            d = s.describe()
        self.assertAlmostEqual(r.total_w, sum(r.rails.values()), places=12)
        self.assertIsNone(d["total_rail"])
        self.assertIn("sum of rails", d["total_rule"])
        self.assertIn("no input rail", d["total_rule"])

    def test_vdd_in_is_the_total_where_present(self):
        make_jp4_tree(self.root, [("VDD_IN", 5542), ("VDD_CPU_GPU_CV", 1594), ("VDD_SOC", 1234)])
        with Ina3221Sampler("jetson", FakeClock(), root=self.root) as s:
            self.assertEqual(s.read().total_w, 5.542)
            self.assertEqual(s.describe()["total_rail"], "VDD_IN")

    def test_an_unreadable_rail_is_none_and_the_others_still_read(self):
        files = make_jp4_tree(self.root, [("VDD_IN", 5542), ("VDD_SOC", 1234)])
        with Ina3221Sampler("jetson", FakeClock(), root=self.root) as s:
            write_value(files["VDD_SOC"], "garbage")
            r = s.read()
        self.assertIsNone(r.rails["VDD_SOC"])
        self.assertEqual(r.rails["VDD_IN"], 5.542)
        self.assertEqual(r.total_w, 5.542)


if __name__ == "__main__":
    unittest.main()
