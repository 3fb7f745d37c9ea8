"""The metric arithmetic on synthetic timings, against vLLM's definitions."""

from __future__ import annotations

import math
import random

import pytest

from flotilla.bench.metrics import (
    RequestRecord,
    compute_metrics,
    describe,
    percentile,
    send_lag_stats,
    tpot_of,
)


def ok(
    ttft: float, itl: list[float], out: int, prompt: int = 10, cls: str = "c", measured: bool = True
) -> RequestRecord:
    return RequestRecord(
        cls,
        scheduled=0.0,
        measured=measured,
        success=True,
        status="200",
        ttft=ttft,
        itl=list(itl),
        latency=ttft + sum(itl),
        prompt_tokens=prompt,
        output_tokens=out,
    )


def failed(status: str, cls: str = "c") -> RequestRecord:
    return RequestRecord(cls, scheduled=0.0, success=False, status=status, prompt_tokens=50)


def test_percentile_interpolates_linearly_like_numpy():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0], 90) == pytest.approx(3.7)
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 99) == 0.0


def test_describe_matches_numpy_on_random_samples():
    np = pytest.importorskip("numpy")
    rng = random.Random(7)
    values = [rng.expovariate(1.0) for _ in range(501)]
    stats = describe(values, [25, 90, 99.9])
    assert stats["mean"] == pytest.approx(np.mean(values))
    assert stats["median"] == pytest.approx(np.median(values))
    assert stats["std"] == pytest.approx(np.std(values))  # population std, numpy's default
    assert stats["p25"] == pytest.approx(np.percentile(values, 25))
    assert stats["p99.9"] == pytest.approx(np.percentile(values, 99.9))


def test_latency_metrics_on_known_timings():
    # Request A: TTFT 100 ms, 4 gaps of 10 ms -> 5 tokens, E2EL 140 ms, TPOT 40/4 = 10 ms.
    # Request B: TTFT 300 ms, 2 gaps of 30 ms -> 3 tokens, E2EL 360 ms, TPOT 60/2 = 30 ms.
    records = [ok(0.100, [0.010] * 4, 5, prompt=20), ok(0.300, [0.030] * 2, 3, prompt=40)]
    m = compute_metrics(records, duration_s=2.0, percentiles=[50, 99])
    assert m["completed"] == 2 and m["failed"] == 0
    assert m["mean_ttft_ms"] == pytest.approx(200.0)
    assert m["median_ttft_ms"] == pytest.approx(200.0)
    assert m["std_ttft_ms"] == pytest.approx(100.0)
    assert m["p99_ttft_ms"] == pytest.approx(100 + 200 * 0.99)
    assert m["mean_tpot_ms"] == pytest.approx(20.0)
    # ITL pools every gap of every request: four of 10 ms and two of 30 ms.
    assert m["mean_itl_ms"] == pytest.approx((4 * 10 + 2 * 30) / 6)
    assert m["median_itl_ms"] == pytest.approx(10.0)
    assert m["mean_e2el_ms"] == pytest.approx(250.0)
    assert m["total_input_tokens"] == 60
    assert m["total_output_tokens"] == 8
    assert m["request_throughput"] == pytest.approx(1.0)
    assert m["output_throughput"] == pytest.approx(4.0)
    assert m["total_token_throughput"] == pytest.approx(34.0)
    assert m["duration"] == 2.0
    assert m["request_goodput"] is None  # no SLOs asked


def test_tpot_is_e2el_minus_ttft_over_tokens_after_the_first():
    # TPOT uses the usage's token count, not the number of chunks: 3 chunks carried 9 tokens.
    record = ok(0.050, [0.040, 0.040], out=9)
    assert tpot_of(record) == pytest.approx(0.080 / 8)


def test_one_output_token_is_left_out_of_tpot_but_not_ttft():
    records = [ok(0.100, [], 1), ok(0.200, [0.010] * 2, 3)]
    m = compute_metrics(records, 1.0, [99])
    assert m["mean_tpot_ms"] == pytest.approx(10.0)  # only the second request has a TPOT
    assert m["mean_ttft_ms"] == pytest.approx(150.0)
    assert m["completed"] == 2


def test_failed_requests_count_by_status_and_stay_out_of_latency_and_tokens():
    records = [ok(0.100, [0.010], 2, prompt=10), failed("429"), failed("429"), failed("500"), failed("stream")]
    m = compute_metrics(records, 1.0, [99])
    assert m["completed"] == 1 and m["failed"] == 4
    assert m["errors_by_status"] == {"429": 2, "500": 1, "stream": 1}
    assert m["mean_ttft_ms"] == pytest.approx(100.0)
    assert m["total_input_tokens"] == 10  # as in vLLM, input tokens of failed requests are not counted
    assert m["request_throughput"] == pytest.approx(1.0)


def test_all_failed_gives_zeros_not_errors():
    m = compute_metrics([failed("503"), failed("connection")], 4.0, [90, 99])
    assert m["completed"] == 0 and m["failed"] == 2
    for key in (
        "mean_ttft_ms",
        "median_tpot_ms",
        "p99_itl_ms",
        "std_e2el_ms",
        "request_throughput",
        "output_throughput",
    ):
        assert m[key] == 0.0, key
    assert m["errors_by_status"] == {"503": 1, "connection": 1}


def test_warmup_requests_are_not_measured():
    records = [ok(5.0, [], 1, measured=False), ok(0.1, [0.01], 2)]
    m = compute_metrics(records, 1.0, [99])
    assert m["completed"] == 1
    assert m["mean_ttft_ms"] == pytest.approx(100.0)


def test_goodput_uses_every_slo_and_counts_single_token_tpot_as_zero():
    records = [
        ok(0.100, [0.010] * 4, 5),  # ttft 100, tpot 10: good
        ok(0.400, [0.010] * 4, 5),  # ttft 400: bad
        ok(0.100, [0.090] * 2, 3),  # tpot 90: bad
        ok(0.200, [], 1),  # one token: tpot 0, ttft 200: good
    ]
    m = compute_metrics(records, 2.0, [99], goodput_ms={"ttft": 300, "tpot": 50})
    assert m["request_goodput"] == pytest.approx(2 / 2.0)
    m = compute_metrics(records, 2.0, [99], goodput_ms={"e2el": 150})
    assert m["request_goodput"] == pytest.approx(1 / 2.0)  # 140 ms passes; 440, 280 and 200 do not


def test_slo_equal_to_the_value_is_good():
    record = ok(0.300, [], 1)
    assert compute_metrics([record], 1.0, [], goodput_ms={"ttft": 300})["request_goodput"] == 1.0


def test_percentile_keys_follow_vllm_spelling():
    m = compute_metrics([ok(0.1, [0.01], 2)], 1.0, [90, 99.9])
    assert {"p90_ttft_ms", "p99.9_ttft_ms", "p90_tpot_ms", "p99.9_itl_ms", "p90_e2el_ms"} <= set(m)


def test_duration_must_be_positive():
    with pytest.raises(ValueError, match="duration"):
        compute_metrics([], 0.0)


def test_send_lag_ignores_early_sends_and_warmup():
    records = [
        RequestRecord("c", scheduled=1.0, sent=1.002),
        RequestRecord("c", scheduled=1.0, sent=0.9995),
        RequestRecord("c", scheduled=0.0, sent=5.0, measured=False),
    ]
    lag = send_lag_stats(records)
    assert lag["max_ms"] == pytest.approx(2.0)
    assert lag["mean_ms"] == pytest.approx(1.0)
    assert not math.isnan(lag["p99_ms"])
