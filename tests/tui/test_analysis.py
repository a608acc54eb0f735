"""console.analysis: the Pareto front and the 100-point normalized power profile."""

from __future__ import annotations

import math

import numpy as np
import pytest

from console.analysis import normalized_profile, pareto_front, profile_band


def test_pareto_front_keeps_points_no_other_point_beats_on_both_axes() -> None:
    points = [(10.0, 5.0), (20.0, 1.0), (15.0, 6.0), (5.0, 9.0), (20.0, 2.0)]
    assert pareto_front(points) == [3, 0, 1]  # by latency: (5,9), (10,5), (20,1)


def test_pareto_front_ignores_points_with_nan() -> None:
    assert pareto_front([(1.0, math.nan), (2.0, 3.0)]) == [1]


def test_pareto_front_of_nothing_is_empty() -> None:
    assert pareto_front([]) == []


def test_normalized_profile_interpolates_onto_100_points_of_normalized_time() -> None:
    t = np.linspace(10.0, 30.0, 21)  # a ramp 0 -> 100 W over 20 s, starting at t=10
    w = (t - 10.0) * 5.0
    prof = normalized_profile(t, w)
    assert prof.shape == (100,)
    assert prof[0] == pytest.approx(0.0)
    assert prof[-1] == pytest.approx(100.0)
    assert prof[50] == pytest.approx(100.0 * 50 / 99)


def test_normalized_profile_of_unsorted_samples_equals_sorted() -> None:
    t = np.array([0.0, 2.0, 1.0, 3.0])
    w = np.array([1.0, 3.0, 2.0, 4.0])
    np.testing.assert_allclose(normalized_profile(t, w, 4), [1.0, 2.0, 3.0, 4.0])


def test_profile_band_gives_mean_and_std_across_runs_of_different_lengths() -> None:
    run_a = (np.linspace(0, 10, 11), np.full(11, 10.0))
    run_b = (np.linspace(0, 50, 101), np.full(101, 20.0))
    x, mean, std = profile_band([run_a, run_b])
    assert x[0] == 0.0 and x[-1] == 1.0
    np.testing.assert_allclose(mean, 15.0)
    np.testing.assert_allclose(std, 5.0)


def test_profile_band_of_one_run_has_zero_spread() -> None:
    _, mean, std = profile_band([(np.array([0.0, 1.0]), np.array([3.0, 5.0]))])
    assert mean[0] == pytest.approx(3.0) and mean[-1] == pytest.approx(5.0)
    np.testing.assert_allclose(std, 0.0)
