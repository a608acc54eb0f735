"""Pure metrics: energy, percentiles and the summary.json dict."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.metrics import ImpactContext, RunFacts, integrate_trapezoid, latency_percentiles, summarize_run


def _fake_gwp(energy_j, duration_s, hw, grid, pue=None, lifetime_years=7.0, embodied=None):
    op = energy_j / 3.6e6 * grid * (pue or 1.0)
    emb = 0.0 if hw is None else duration_s / (lifetime_years * 365 * 86400) * hw.embodied_g
    total = op + emb
    return SimpleNamespace(operational=op, embodied=emb, total=total, low=0.5 * total, high=2 * total)


def test_trapezoid_energy_of_a_sine_is_within_half_a_percent_of_analytic():
    # 10 Hz for 2 s of w = 20 + 10 sin(pi t): integral = 40 + 10 * (1 - cos(2 pi)) / pi = 40
    t = [i / 10 for i in range(21)]
    w = [20 + 10 * math.sin(math.pi * x) for x in t]
    assert integrate_trapezoid(t, w) == pytest.approx(40.0, rel=0.005)


def test_latency_percentiles_match_numpy_linear_interpolation():
    import numpy as np

    ms = [float(x) for x in range(1, 101)]
    got = latency_percentiles(ms)
    assert got["p50"] == pytest.approx(np.percentile(ms, 50))
    assert got["p90"] == pytest.approx(np.percentile(ms, 90))
    assert got["p99"] == pytest.approx(np.percentile(ms, 99))
    assert got["max"] == 100.0 and got["mean"] == pytest.approx(50.5)
    assert latency_percentiles([]) is None


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=200))
def test_percentiles_are_ordered_and_bounded(ms):
    p = latency_percentiles(ms)
    assert min(ms) <= p["p50"] <= p["p90"] <= p["p99"] <= p["max"] == max(ms)


def _constant_rows(n, watts, dt=0.1, start=0.0, counter=False):
    return [[i, start + i * dt, watts, {}, (i * dt * watts if counter else None)] for i in range(n)]


def test_summary_integrates_power_and_reports_mean_max_and_counter():
    rows = _constant_rows(31, 50.0, counter=True)
    s = summarize_run(rows, [], RunFacts(sampler="nvml", interval_ms=100))
    assert s["duration_s"] == pytest.approx(3.0)
    assert s["energy_j"] == pytest.approx(150.0)
    assert s["energy_counter_j"] == pytest.approx(150.0)
    assert s["mean_w"] == 50.0 and s["max_w"] == 50.0
    assert s["gwp_g"] is None and "no grid factor" in " ".join(s["method"]["notes"])


def test_idle_window_is_subtracted_and_gwp_uses_net_energy():
    idle = _constant_rows(10, 10.0)  # t 0.0 .. 0.9
    work = [[10 + i, 1.0 + i * 0.1, 30.0, {}, None] for i in range(21)]  # t 1.0 .. 3.0
    impact = ImpactContext(grid_g_per_kwh=360.0, pue=1.0)
    s = summarize_run(idle + work, [], RunFacts(sampler="ina3221", interval_ms=100, idle_s=1.0), impact,
                      gwp_fn=_fake_gwp)
    # load phase from the last idle sample (t 0.9, 10 W) to t 3.0: 0.1 s ramp (2 J) + 2 s at 30 W
    assert s["idle_w"] == 10.0
    assert s["duration_s"] == pytest.approx(2.1)
    assert s["energy_j"] == pytest.approx(62.0)
    assert s["energy_net_j"] == pytest.approx(62.0 - 10.0 * 2.1)
    assert s["gwp_g"]["operational"] == pytest.approx(s["energy_net_j"] / 3.6e6 * 360.0)
    assert s["method"]["idle_subtraction"] is True


def test_per_query_figures_count_only_successful_queries():
    rows = _constant_rows(11, 20.0)  # 20 J over 1 s
    queries = [[0, 0, 0.0, 0.010, True, {}], [1, 1, 0.1, 0.130, True, {}], [2, 2, 0.2, None, False, {}]]
    hw = SimpleNamespace(embodied_g=1000.0)
    s = summarize_run(rows, queries, RunFacts(sampler="sim", interval_ms=100),
                      ImpactContext(hardware=hw, hardware_id="x", grid_g_per_kwh=100.0), gwp_fn=_fake_gwp)
    assert s["queries"] == 2 and s["queries_failed"] == 1
    assert s["latency_ms"]["max"] == pytest.approx(30.0)
    assert s["energy_per_query_j"] == pytest.approx(10.0)
    assert s["gwp_per_query_mg"] == pytest.approx(s["gwp_g"]["total"] * 1000 / 2)
    assert s["estimated"]["energy"] is True  # sim watts are a model


def test_time_only_run_has_duration_and_no_energy():
    rows = [[i, i * 0.1, None, {}, None] for i in range(11)]
    s = summarize_run(rows, [], RunFacts(sampler="none", interval_ms=100, error=None), duration_s=1.02)
    assert s["duration_s"] == 1.02 and s["energy_j"] is None and s["gwp_g"] is None
    assert "no power measured" in " ".join(s["method"]["notes"])
