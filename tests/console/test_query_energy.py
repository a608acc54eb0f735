"""Energy per query and per phase: exact on known power shapes, and the parts always sum to the whole."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.energy import trapezoid
from console.query_energy import query_energy

STEADY_T = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
STEADY_W = [10.0] * 6


def test_a_lone_query_gets_the_energy_of_its_window():
    e = query_energy(STEADY_T, STEADY_W, [1.0], [2.5])
    assert e.per_query_j == [pytest.approx(15.0)]


def test_query_bounds_between_samples_follow_the_straight_line_between_them():
    t = [float(i) for i in range(11)]
    w = list(t)  # P(t) = t: energy over [a, b] is (b^2 - a^2) / 2
    e = query_energy(t, w, [0.5, 3.25], [1.5, 7.75])
    assert e.per_query_j == [pytest.approx(1.0), pytest.approx((7.75**2 - 3.25**2) / 2)]


def test_overlapping_queries_share_the_power_equally_while_both_run():
    e = query_energy(STEADY_T, STEADY_W, [1.0, 2.0], [3.0, 3.0])
    assert e.per_query_j == [pytest.approx(15.0), pytest.approx(5.0)]


def test_time_without_queries_goes_to_before_gaps_and_after():
    e = query_energy(STEADY_T, STEADY_W, [1.0, 3.0], [2.0, 4.0])
    assert (e.before_j, e.gaps_j, e.after_j) == pytest.approx((10.0, 10.0, 10.0))
    assert e.queries_j == pytest.approx(20.0)
    assert e.total_j == pytest.approx(50.0)


def test_unfinished_query_gets_none_and_its_time_is_not_lost():
    e = query_energy(STEADY_T, STEADY_W, [1.0, 2.0], [1.5, None])
    assert e.per_query_j[1] is None
    assert e.queries_j + e.before_j + e.gaps_j + e.after_j == pytest.approx(50.0)


def test_idle_power_is_subtracted_from_each_share_for_net_energy():
    e = query_energy(STEADY_T, STEADY_W, [1.0, 1.0], [2.0, 2.0], idle_w=4.0)
    assert e.per_query_net_j == [pytest.approx(3.0), pytest.approx(3.0)]


def test_missing_watts_are_bridged_like_the_job_energy():
    w = [10.0, None, 10.0, 30.0, None, 10.0]
    e = query_energy(STEADY_T, w, [0.0], [5.0])
    assert e.per_query_j[0] == pytest.approx(trapezoid(STEADY_T, w))


def test_queries_outside_the_sampled_span_carry_no_energy():
    e = query_energy(STEADY_T, STEADY_W, [7.0, 4.5], [8.0, 9.0])
    assert e.per_query_j == [0.0, pytest.approx(5.0)]


def test_without_two_power_readings_no_query_energy_is_known():
    e = query_energy([0.0, 1.0], [None, 5.0], [0.0], [1.0])
    assert e.per_query_j == [None]
    assert e.total_j == 0.0


def test_mismatched_query_columns_are_refused():
    with pytest.raises(ValueError, match="issue_t has 2 values but done_t has 1"):
        query_energy(STEADY_T, STEADY_W, [1.0, 2.0], [3.0])


@st.composite
def runs(draw):
    n = draw(st.integers(2, 60))
    steps = draw(st.lists(st.floats(0.001, 2.0), min_size=n - 1, max_size=n - 1))
    t = [0.0]
    for s in steps:
        t.append(t[-1] + s)
    w = draw(st.lists(st.one_of(st.none(), st.floats(0.0, 700.0)), min_size=n, max_size=n))
    nq = draw(st.integers(0, 40))
    span = t[-1]
    issues, dones = [], []
    for _ in range(nq):
        a = draw(st.floats(-1.0, span + 1.0))
        length = draw(st.floats(0.0, span))
        issues.append(a)
        dones.append(draw(st.one_of(st.just(a + length), st.none())) if nq > 3 else a + length)
    return t, w, issues, dones


@settings(max_examples=200, deadline=None)
@given(runs())
def test_per_query_energies_and_phases_sum_to_the_job_energy(run):
    t, w, issues, dones = run
    e = query_energy(t, w, issues, dones)
    job_j = trapezoid(t, w)
    parts = sum(x for x in e.per_query_j if x is not None) + e.before_j + e.gaps_j + e.after_j
    assert math.isclose(parts, job_j, rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(e.total_j, job_j, rel_tol=1e-9, abs_tol=1e-9)
    assert all(x is None or x >= -1e-9 for x in e.per_query_j)
