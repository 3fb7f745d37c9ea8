import statistics

import pytest

from flotilla.sim.latency import LatencyModel, OutputLength
from flotilla.spec.engines import SimOptions


def test_lone_request_sees_the_configured_latencies():
    model = LatencyModel.from_options(SimOptions(ttft_ms=50, itl_ms=10, batch_slowdown=0.5))
    assert model.time_to_first_token(1) == pytest.approx(0.050)
    assert model.inter_token(1) == pytest.approx(0.010)


def test_latency_grows_linearly_with_the_running_batch():
    model = LatencyModel.from_options(SimOptions(ttft_ms=100, itl_ms=20, batch_slowdown=0.25))
    assert model.time_to_first_token(5) == pytest.approx(0.100 * (1 + 0.25 * 4))
    assert model.inter_token(3) == pytest.approx(0.020 * (1 + 0.25 * 2))
    ttfts = [model.time_to_first_token(n) for n in range(1, 9)]
    assert ttfts == sorted(ttfts) and ttfts[0] < ttfts[-1]


def test_an_empty_batch_counts_as_one_sequence():
    model = LatencyModel.from_options(SimOptions(ttft_ms=10, itl_ms=1, batch_slowdown=1.0))
    assert model.time_to_first_token(0) == model.time_to_first_token(1)


def test_instant_only_when_both_latencies_are_zero():
    assert LatencyModel.from_options(SimOptions(ttft_ms=0, itl_ms=0)).instant
    assert not LatencyModel.from_options(SimOptions(ttft_ms=0, itl_ms=1)).instant
    assert not LatencyModel.from_options(SimOptions(ttft_ms=1, itl_ms=0)).instant


def test_max_tokens_fixes_the_output_length_even_with_jitter():
    lengths = OutputLength(mean=64, deterministic=False, seed=1)
    assert [lengths.draw(16, room=1000) for _ in range(20)] == [16] * 20


def test_output_length_never_exceeds_the_room_left_in_the_context():
    assert OutputLength(64, True, 0).draw(None, room=10) == 10
    assert OutputLength(64, False, 0).draw(500, room=30) == 30


def test_deterministic_mode_returns_the_mean_exactly():
    lengths = OutputLength(mean=37, deterministic=True, seed=3)
    assert {lengths.draw(None, room=4096) for _ in range(50)} == {37}


def test_drawn_lengths_are_seeded_and_centred_on_the_mean():
    a = [OutputLength(64, False, seed=7).draw(None, 4096) for _ in range(1)]
    first = OutputLength(64, False, seed=7)
    second = OutputLength(64, False, seed=7)
    draws_a = [first.draw(None, 4096) for _ in range(2000)]
    draws_b = [second.draw(None, 4096) for _ in range(2000)]
    assert draws_a == draws_b and draws_a[0] == a[0]
    assert len(set(draws_a)) > 10  # jitter, not a constant
    assert min(draws_a) >= 1
    assert statistics.mean(draws_a) == pytest.approx(64, rel=0.05)
    assert draws_a != [OutputLength(64, False, seed=8).draw(None, 4096) for _ in range(2000)]
