"""Agent sampling overhead: CPU time per second of sampling, as % of one core.

Paths: `sim` (SimSampler.read), `ina3221` (Ina3221Sampler.read on a fake JP5 sysfs tree: 4 rails,
8 value files, as on an AGX Orin), `tegrastats-parse` (parse_line + board_total of a real AGX Orin
line: what the tegrastats reader thread does per line). Each runs at 10 Hz and 100 Hz on an
absolute-deadline schedule (like the job loop) for --seconds; CPU = time.process_time() delta over
wall time. Targets (DESIGN.md): < 1 % of one core at 10 Hz, < 5 % at 100 Hz. Also reports the
ina3221 read rate flat out (DESIGN.md: readable at 1 kHz).

Usage: python bench/bench_sampling_overhead.py [--seconds 2] [--json]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agents.samplers.ina3221 import Ina3221Sampler  # noqa: E402
from agents.samplers.sim import SimSampler  # noqa: E402
from agents.samplers.tegrastats import board_total, parse_line  # noqa: E402
from tests.agent.fake_sysfs import make_jp5_tree  # noqa: E402

TARGET_PCT = {10: 1.0, 100: 5.0}
ORIN_LINE = os.path.join(ROOT, "tests", "fixtures", "tegrastats", "agx-orin-64gb_mW_date.txt")
ORIN_RAILS = [
    ("VDD_GPU_SOC", 843, 6170),
    ("VDD_CPU_CV", 780, 3437),
    ("VIN_SYS_5V0", 4968, 953),
    ("VDDQ_VDD2_1V8AO", 1800, 341),
]


def paced_cpu_pct(tick, hz, seconds):
    """Call tick() at hz for seconds on absolute deadlines; CPU time as % of the wall time."""
    period = 1.0 / hz
    n = round(hz * seconds)
    wall0, cpu0 = time.monotonic(), time.process_time()
    for i in range(n):
        tick()
        delay = wall0 + (i + 1) * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    return 100.0 * cpu / wall


def flat_out_rate(tick, seconds=0.5):
    """Calls per second of tick() in a tight loop."""
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        tick()
        n += 1
    return n / (time.monotonic() - t0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="sampling time per path and rate")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="wl-bench-")
    try:
        make_jp5_tree(tmp, ORIN_RAILS)
        with open(ORIN_LINE) as f:
            line = f.readline()
        sim = SimSampler("sim:jetson-agx-orin-64gb")
        ina = Ina3221Sampler("jetson", root=tmp)
        sim.open()
        ina.open()
        paths = [
            ("sim", sim.read),
            ("ina3221", ina.read),
            ("tegrastats-parse", lambda: board_total(parse_line(line))),
        ]
        results = []
        for name, tick in paths:
            for hz in (10, 100):
                pct = paced_cpu_pct(tick, hz, args.seconds)
                results.append(
                    {"path": name, "hz": hz, "cpu_pct": round(pct, 3), "target_pct": TARGET_PCT[hz]}
                )
        ina_rate = flat_out_rate(ina.read)
        sim.close()
        ina.close()
    finally:
        shutil.rmtree(tmp)

    ok = all(r["cpu_pct"] < r["target_pct"] for r in results) and ina_rate >= 1000
    if args.json:
        print(json.dumps({"results": results, "ina3221_reads_per_s": round(ina_rate), "ok": ok}, indent=2))
    else:
        print("{:<18} {:>4}  {:>10}  {:>8}".format("path", "Hz", "CPU % core", "target"))
        for r in results:
            flag = "ok" if r["cpu_pct"] < r["target_pct"] else "OVER"
            print("{path:<18} {hz:>4}  {cpu_pct:>10.3f}  < {target_pct:<5} {0}".format(flag, **r))
        print(f"ina3221 flat out: {ina_rate:.0f} reads/s (target >= 1000)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
