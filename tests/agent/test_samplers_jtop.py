"""jtop: power from an injected jtop client, both the >= 4.2 dict API and the <= 4.1 tuple API."""

import unittest

from agents.samplers.base import SamplerError, SamplerUnavailable
from agents.samplers.jtop import JtopSampler, parse_power
from tests.agent.fake_sysfs import FakeClock

# jtop >= 4.2 on an Orin NX: VDD_IN moved into 'tot' (jtop/core/power.py total_power).
POWER_ORIN_NX = {
    "rail": {
        "VDD_CPU_GPU_CV": {
            "online": True,
            "type": "INA3221",
            "volt": 5072,
            "curr": 314,
            "power": 1594,
            "avg": 1590,
        },
        "VDD_SOC": {"online": True, "type": "INA3221", "volt": 5072, "curr": 243, "power": 1234, "avg": 1230},
    },
    "tot": {"online": True, "volt": 5080, "curr": 1091, "power": 5542, "avg": 5500, "name": "VDD_IN"},
}


class FakeJetson(object):
    """Stands in for jtop.jtop: start/ok/power/close."""

    def __init__(self, power, start_error=None):
        self.power = power
        self.start_error = start_error
        self.running = True
        self.interval = None
        self.closed = False

    def __call__(self, interval):  # the factory call jtop(interval=...)
        self.interval = interval
        return self

    def start(self):
        if self.start_error:
            raise RuntimeError(self.start_error)

    def ok(self, spin=False):
        assert spin, "the sampler must never block in ok()"
        return self.running

    def close(self):
        self.closed = True


class JtopTest(unittest.TestCase):
    def test_rails_and_input_rail_total_in_watts(self):
        fake = FakeJetson(POWER_ORIN_NX)
        with JtopSampler("jetson", FakeClock(), interval_ms=100, jtop=fake) as s:
            r = s.read()
            d = s.describe()
        self.assertEqual(r.rails, {"VDD_CPU_GPU_CV": 1.594, "VDD_SOC": 1.234})
        self.assertEqual(r.total_w, 5.542)
        self.assertEqual(d["total_rail"], "VDD_IN")
        self.assertEqual(fake.interval, 0.5)  # never below jtop's advised 500 ms
        self.assertTrue(fake.closed)

    def test_a_board_without_input_rail_uses_jtops_sum_and_labels_it(self):
        power = {"rail": {"GPU": {"power": 100, "online": True}, "CPU": {"power": 216, "online": True}}}
        power["tot"] = {"power": 316, "avg": 316}
        with JtopSampler("jetson", FakeClock(), jtop=FakeJetson(power)) as s:
            self.assertEqual(s.read().total_w, 0.316)
            self.assertIn("sum of rails GPU+CPU", s.describe()["total_rule"])

    def test_nc_and_offline_rails_are_skipped(self):
        power = {"rail": {"NC": {"power": 0}, "VDD_SOC": {"power": 5, "online": False}, "CV": {"power": 7}}}
        self.assertEqual(parse_power(power)[0], {"CV": 0.007})

    def test_old_tuple_api_is_read_too(self):
        rails, total, name = parse_power(
            ({"cur": 2559, "avg": 2500, "name": "POM_5V_IN"}, {"POM_5V_GPU": {"cur": 40}})
        )
        self.assertEqual((rails, total, name), ({"POM_5V_GPU": 0.04}, 2.559, "POM_5V_IN"))

    def test_a_service_that_will_not_start_is_unavailable_with_the_fix(self):
        fake = FakeJetson(POWER_ORIN_NX, start_error="The jtop.service is not active. Please run:\nsudo jtop")
        with self.assertRaises(SamplerUnavailable) as cm:
            JtopSampler("jetson", FakeClock(), jtop=fake).open()
        self.assertIn("jtop.service is not active", str(cm.exception))

    def test_a_stopped_client_is_a_read_error(self):
        fake = FakeJetson(POWER_ORIN_NX)
        with JtopSampler("jetson", FakeClock(), jtop=fake) as s:
            fake.running = False
            with self.assertRaises(SamplerError):
                s.read()


if __name__ == "__main__":
    unittest.main()
