"""nvml: instant power via the field API, 1 s-average fallback, energy counter, MIG, hardware ids.
A fake pynvml module object is injected; no GPU is needed."""

import os
import tempfile
import unittest

from agents.samplers.base import SamplerUnavailable
from agents.samplers.nvml import FI_POWER_INSTANT, NvmlSampler, hardware_id_for
from tests.agent.fake_sysfs import FakeClock

GIB = 1 << 30


class _Obj(object):
    def __init__(self, **kw):
        self.__dict__.update(kw)


class FakeGpu(object):
    def __init__(
        self,
        name,
        memory_gib=80,
        power_mw=71000,
        energy_mj=5000000,
        instant=True,
        energy=True,
        mig=None,
        scopes=(0,),
    ):
        self.name, self.memory = name, memory_gib * GIB
        self.power_mw, self.energy_mj = power_mw, energy_mj
        self.instant, self.energy = instant, energy
        self.scopes = scopes  # power scopes the instant field answers for (0 GPU, 1 module)
        self.mig = mig  # None: MIG off; else the populated instance indices


class FakeNvml(object):
    """The slice of the pynvml API the sampler uses, backed by FakeGpu objects."""

    class NVMLError(Exception):
        pass

    def __init__(self, gpus, init_error=None):
        self.gpus = gpus
        self.init_error = init_error
        self.inits = 0
        self.field_calls = 0
        self.usage_calls = 0

    def nvmlInit(self):
        if self.init_error:
            raise self.NVMLError(self.init_error)
        self.inits += 1

    def nvmlShutdown(self):
        self.inits -= 1

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self.gpus[i]

    def nvmlDeviceGetName(self, h):
        return h.name.encode()  # old bindings return bytes

    def nvmlDeviceGetMemoryInfo(self, h):
        return _Obj(total=h.memory)

    def nvmlDeviceGetFieldValues(self, h, ids):
        self.field_calls += 1
        (field,) = ids
        field_id, scope = field if isinstance(field, tuple) else (field, 0)
        assert field_id == FI_POWER_INSTANT
        ok = h.instant and scope in h.scopes
        return [_Obj(nvmlReturn=0 if ok else 3, value=_Obj(uiVal=h.power_mw))]

    def nvmlDeviceGetPowerUsage(self, h):
        self.usage_calls += 1
        return h.power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not h.energy:
            raise self.NVMLError("Not Supported")
        return h.energy_mj

    def nvmlDeviceGetMigMode(self, h):
        return [0 if h.mig is None else 1, 0]

    def nvmlDeviceGetMaxMigDeviceCount(self, h):
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h, k):
        if h.mig is None or k not in h.mig:
            raise self.NVMLError("Not Found")
        return (h, k)


def h100_node():
    return FakeNvml(
        [FakeGpu("NVIDIA H100 80GB HBM3"), FakeGpu("NVIDIA H100 PCIe", power_mw=52000, instant=False)]
    )


class NvmlSamplerTest(unittest.TestCase):
    def setUp(self):
        d = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, d)
        self.no_tegra = os.path.join(d, "nv_tegra_release")

    def test_instant_power_comes_from_the_field_api_and_energy_from_the_counter(self):
        nvml = h100_node()
        with NvmlSampler("nvml:0", FakeClock(), nvml=nvml) as s:
            r = s.read()
            d = s.describe()
        self.assertEqual(r.rails, {"board": 71.0})
        self.assertEqual(r.total_w, 71.0)
        self.assertEqual(r.energy_j, 5000.0)
        self.assertEqual(nvml.usage_calls, 0)
        self.assertIn("NVML_FI_DEV_POWER_INSTANT", " ".join(d["notes"]))
        self.assertEqual(d["hardware_id"], "h100-sxm5-80gb")
        self.assertEqual(nvml.inits, 0)  # every init was shut down

    def test_without_the_instant_field_power_usage_is_used_and_called_a_1s_average(self):
        nvml = h100_node()
        with NvmlSampler("nvml:1", FakeClock(), nvml=nvml) as s:
            self.assertEqual(s.read().total_w, 52.0)
            notes = " ".join(s.describe()["notes"])
        self.assertGreater(nvml.usage_calls, 0)
        self.assertIn("1 s moving average", notes)

    def test_a_superchip_without_gpu_scope_falls_back_to_module_scope_and_says_so(self):
        nvml = FakeNvml([FakeGpu("NVIDIA GH200 480GB", memory_gib=96, power_mw=250000, scopes=(1,))])
        with NvmlSampler("nvml:0", FakeClock(), nvml=nvml) as s:
            self.assertEqual(s.read().total_w, 250.0)
            self.assertIn("MODULE scope", " ".join(s.describe()["notes"]))
        self.assertEqual(nvml.usage_calls, 0)

    def test_a_gpu_without_energy_counter_reports_none_energy(self):
        nvml = FakeNvml([FakeGpu("Tesla P100-PCIE-16GB", memory_gib=16, energy=False)])
        with NvmlSampler("nvml:0", FakeClock(), nvml=nvml) as s:
            self.assertIsNone(s.read().energy_j)
            self.assertIn("pre-Volta", " ".join(s.describe()["notes"]))

    def test_every_gpu_is_a_device_and_mig_instances_are_named_under_it(self):
        nvml = FakeNvml(
            [FakeGpu("NVIDIA A100-SXM4-40GB", memory_gib=40, mig=[0, 2]), FakeGpu("NVIDIA L40S", 48)]
        )
        devices = NvmlSampler.devices(nvml=nvml, tegra_release=self.no_tegra)
        self.assertEqual([d["id"] for d in devices], ["nvml:0", "nvml:0/mig0", "nvml:0/mig2", "nvml:1"])
        self.assertEqual(devices[0]["hardware_id"], "a100-sxm4-40gb")
        self.assertEqual(devices[3]["hardware_id"], "l40s")
        self.assertIn("whole GPU", devices[1]["name"])

    def test_a_mig_instance_reads_its_parent_gpu_and_says_so(self):
        nvml = FakeNvml([FakeGpu("NVIDIA A100-SXM4-40GB", memory_gib=40, mig=[1])])
        with NvmlSampler("nvml:0/mig1", FakeClock(), nvml=nvml) as s:
            self.assertEqual(s.read().total_w, 71.0)
            self.assertIn("cannot measure a MIG slice", " ".join(s.describe()["notes"]))
        with self.assertRaises(SamplerUnavailable):
            NvmlSampler("nvml:0/mig3", FakeClock(), nvml=nvml).open()

    def test_a_missing_gpu_index_names_the_ones_that_exist(self):
        with self.assertRaises(SamplerUnavailable) as cm:
            NvmlSampler("nvml:5", FakeClock(), nvml=h100_node()).open()
        self.assertIn("nvml:0..nvml:1", str(cm.exception))

    def test_available_gives_the_reason_nvml_cannot_start(self):
        self.assertIsNone(NvmlSampler.available(nvml=h100_node(), tegra_release=self.no_tegra))
        reason = NvmlSampler.available(
            nvml=FakeNvml([], init_error="Driver Not Loaded"), tegra_release=self.no_tegra
        )
        self.assertIn("Driver Not Loaded", reason)
        self.assertIn("no NVIDIA GPU", NvmlSampler.available(nvml=FakeNvml([]), tegra_release=self.no_tegra))

    def test_on_a_jetson_nvml_is_not_offered_for_power(self):
        with open(self.no_tegra, "w") as f:
            f.write("# R36 (release), REVISION: 4.0\n")
        self.addCleanup(os.remove, self.no_tegra)
        self.assertIn("Jetson", NvmlSampler.available(nvml=h100_node(), tegra_release=self.no_tegra))

    def test_device_names_map_to_hardware_ids_where_obvious(self):
        self.assertEqual(hardware_id_for("NVIDIA H100 PCIe", 80 * GIB), "h100-pcie-80gb")
        self.assertEqual(hardware_id_for("NVIDIA A100 80GB PCIe", 80 * GIB), "a100-pcie-80gb")
        self.assertEqual(hardware_id_for("NVIDIA A100-PCIE-40GB", 40 * GIB), "a100-pcie-40gb")
        self.assertEqual(hardware_id_for("NVIDIA A100-SXM4-80GB", 80 * GIB), "a100-sxm4-80gb")
        self.assertIsNone(hardware_id_for("NVIDIA H100 NVL", 94 * GIB))
        self.assertIsNone(hardware_id_for("NVIDIA GeForce GTX 1650", 4 * GIB))


if __name__ == "__main__":
    unittest.main()
