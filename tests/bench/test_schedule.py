"""Arrival schedules: rates, spacing and burstiness hold statistically."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from flotilla.bench.schedule import Arrivals


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


def test_poisson_window_has_the_mean_rate_and_exponential_gaps():
    rate, seconds = 50.0, 400.0
    times = Arrivals(rate, 1.0).for_window(0.0, seconds, random.Random(1))
    expected = rate * seconds
    # A Poisson count has sd sqrt(n): 5 sd is a bound a correct generator never crosses in practice.
    assert abs(len(times) - expected) < 5 * math.sqrt(expected)
    g = gaps(times)
    assert statistics.fmean(g) == pytest.approx(1 / rate, rel=0.03)
    cv = statistics.pstdev(g) / statistics.fmean(g)
    assert cv == pytest.approx(1.0, abs=0.05)  # exponential: coefficient of variation 1
    assert all(0.0 <= t < seconds for t in times)


def test_gamma_burstiness_sets_the_spread_of_gaps():
    g_bursty = gaps(Arrivals(100.0, 0.25).for_window(0.0, 200.0, random.Random(2)))
    g_even = gaps(Arrivals(100.0, 4.0).for_window(0.0, 200.0, random.Random(3)))
    # Gamma with shape k has CV 1/sqrt(k): 2.0 for k = 0.25, 0.5 for k = 4; the mean stays 1/rate.
    assert statistics.pstdev(g_bursty) / statistics.fmean(g_bursty) == pytest.approx(2.0, rel=0.1)
    assert statistics.pstdev(g_even) / statistics.fmean(g_even) == pytest.approx(0.5, rel=0.1)
    assert statistics.fmean(g_bursty) == pytest.approx(0.01, rel=0.1)
    assert statistics.fmean(g_even) == pytest.approx(0.01, rel=0.05)


def test_constant_spacing_is_exact():
    times = Arrivals(4.0, None).for_window(1.0, 3.0, random.Random(0))
    assert times == pytest.approx([1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75])


def test_count_schedule_is_rescaled_to_the_exact_rate():
    times = Arrivals(20.0, 1.0).for_count(101, random.Random(5), start=2.0)
    assert len(times) == 101
    assert times[0] == 2.0
    assert times[-1] == pytest.approx(2.0 + 100 / 20.0)  # offered rate exactly 20/s whatever the seed
    assert times == sorted(times)


def test_same_seed_same_schedule():
    a = Arrivals(10.0, 1.0).for_count(50, random.Random("s"))
    b = Arrivals(10.0, 1.0).for_count(50, random.Random("s"))
    assert a == b


@pytest.mark.parametrize(("rate", "burstiness"), [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.0)])
def test_bad_parameters_are_refused(rate, burstiness):
    with pytest.raises(ValueError, match="must be > 0"):
        Arrivals(rate, burstiness)


def test_count_must_be_positive():
    with pytest.raises(ValueError, match="number of requests"):
        Arrivals(1.0).for_count(0, random.Random(0))
