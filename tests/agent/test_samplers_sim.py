"""sim: deterministic synthetic power whose integral matches the analytic energy."""

import math
import unittest

from agents.energy import trapezoid
from agents.samplers.sim import IDLE_FRACTION, LOAD_FRACTION, SIM_HARDWARE, SimSampler
from tests.agent.fake_sysfs import FakeClock


def sample_at(sampler, clock, hz, seconds, on_tick=None):
    """Read `sampler` at `hz` for `seconds` on a fake clock; returns (times from 0, watts, readings)."""
    t0 = clock.t
    readings = []
    for i in range(round(hz * seconds) + 1):
        clock.t = t0 + i / float(hz)
        if on_tick is not None:
            on_tick(clock.t - t0)
        readings.append(sampler.read())
    return [r.t - t0 for r in readings], [r.total_w for r in readings], readings


class SimEnergyTest(unittest.TestCase):
    def test_10hz_for_2s_of_a_known_shape_integrates_within_half_a_percent(self):
        clock = FakeClock()
        # P(t) = 20 + 15 t^2 W on [0, 2] s: analytic energy 20*2 + 15*8/3 = 80 J.
        s = SimSampler("sim:jetson-agx-orin-64gb", clock, noise=0, shape=lambda t: 20.0 + 15.0 * t * t)
        s.open()
        ts, ws, readings = sample_at(s, clock, 10, 2.0)
        self.assertEqual(len(ts), 21)
        energy = trapezoid(ts, ws)
        self.assertLess(abs(energy - 80.0) / 80.0, 0.005)
        self.assertNotEqual(energy, 80.0)  # the trapezoid rule over-estimates a convex curve a little
        self.assertAlmostEqual(readings[-1].energy_j - readings[0].energy_j, 80.0, places=6)

    def test_a_load_step_follows_a_first_order_response_and_integrates_within_half_a_percent(self):
        clock = FakeClock()
        tau = 0.25
        s = SimSampler("sim:jetson-agx-orin-64gb", clock, noise=0, tau_s=tau)
        s.open()
        ts, ws, readings = sample_at(
            s, clock, 10, 2.0, on_tick=lambda t: s.set_load(1.0) if abs(t - 0.5) < 1e-9 else None
        )
        idle, load = s.idle_w, s.load_w
        # Idle for 0.5 s, then idle + (load - idle)(1 - exp(-(t - 0.5)/tau)) for 1.5 s.
        analytic = idle * 2.0 + (load - idle) * (1.5 - tau * (1 - math.exp(-1.5 / tau)))
        self.assertLess(abs(trapezoid(ts, ws) - analytic) / analytic, 0.005)
        self.assertAlmostEqual(readings[-1].energy_j - readings[0].energy_j, analytic, places=9)
        self.assertAlmostEqual(ws[5], idle)
        self.assertAlmostEqual(ws[5 + 2], idle + (load - idle) * (1 - math.exp(-0.2 / tau)))


class SimModelTest(unittest.TestCase):
    def test_idle_and_load_power_come_from_the_tdp_table(self):
        clock = FakeClock()
        s = SimSampler("sim:h100-sxm5-80gb", clock, noise=0, tau_s=0)
        s.open()
        self.assertEqual(SIM_HARDWARE["h100-sxm5-80gb"][0], 700.0)
        self.assertAlmostEqual(s.read().total_w, IDLE_FRACTION * 700.0)
        s.set_load(1.0)
        self.assertAlmostEqual(s.read().total_w, LOAD_FRACTION * 700.0)
        s.set_load(7.0)  # clamped to full load
        self.assertAlmostEqual(s.read().total_w, LOAD_FRACTION * 700.0)

    def test_given_tdp_and_idle_override_the_table(self):
        s = SimSampler("sim:jetson-agx-orin-64gb", FakeClock(), noise=0, tdp_w=30.0, idle_w=4.0)
        s.open()
        self.assertEqual(s.read().total_w, 4.0)
        self.assertEqual(s.load_w, 27.0)

    def test_same_seed_same_readings_other_seed_other_noise(self):
        def run(seed):
            clock = FakeClock()
            s = SimSampler("sim:a100-sxm4-40gb", clock, seed=seed)
            s.open()
            return sample_at(
                s, clock, 10, 1.0, on_tick=lambda t: s.set_load(0.7) if abs(t - 0.3) < 1e-9 else None
            )[1]

        self.assertEqual(run(1), run(1))
        self.assertNotEqual(run(1), run(2))

    def test_noise_zero_is_flat_at_idle(self):
        clock = FakeClock()
        s = SimSampler("sim:a100-sxm4-40gb", clock, noise=0)
        s.open()
        self.assertEqual(set(sample_at(s, clock, 10, 1.0)[1]), {IDLE_FRACTION * 400.0})

    def test_rails_of_a_board_without_input_rail_sum_to_the_total(self):
        clock = FakeClock()
        s = SimSampler("sim:jetson-agx-orin-64gb", clock)
        s.open()
        r = s.read()
        self.assertEqual(list(r.rails), ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"])
        self.assertAlmostEqual(sum(r.rails.values()), r.total_w)
        self.assertIn("sum of rails", s.describe()["total_rule"])

    def test_an_unknown_hardware_id_still_works_and_says_it_is_generic(self):
        clock = FakeClock()
        s = SimSampler("sim:quantum-toaster", clock, noise=0)
        s.open()
        self.assertEqual(s.read().rails, {"board": 15.0})
        notes = " ".join(s.describe()["notes"])
        self.assertIn("unknown hardware id 'quantum-toaster'", notes)

    def test_a_load_set_before_open_is_where_the_device_starts(self):
        clock = FakeClock()
        s = SimSampler("sim:h100-pcie-80gb", clock, noise=0)
        s.set_load(1.0)
        s.open()
        clock.tick(1.0)
        r = s.read()
        self.assertAlmostEqual(r.total_w, s.load_w)
        self.assertAlmostEqual(r.energy_j, s.load_w * 1.0)

    def test_describe_says_idle_power_is_a_simulation_assumption(self):
        notes = " ".join(SimSampler("sim:jetson-agx-orin-64gb", FakeClock()).describe()["notes"])
        self.assertIn("idle 9.0 W (simulation assumption: 15 % of TDP)", notes)


if __name__ == "__main__":
    unittest.main()
