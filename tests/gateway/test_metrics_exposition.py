"""The gateway's counters and histograms are kept in plain dicts and exported at scrape time: the
exposition must be what Prometheus (and prometheus_client's own Counter and Histogram) give."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flotilla.gateway.metrics import QUEUE_WAIT_BUCKETS, GatewayMetrics
from flotilla.gateway.replicas import ReplicaPool


def samples(metrics: GatewayMetrics) -> dict[tuple[str, tuple], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def label(priority: int) -> str:
    return str(priority) if priority in (1, 10) else "other"


def test_histogram_buckets_are_cumulative_and_inclusive_of_their_bound():
    metrics = GatewayMetrics(label)
    for seconds in (0.0001, 0.001, 0.001, 0.3, 500.0):  # 0.001 is a bound: counted in le="0.001"
        metrics.observe_queue_wait("chat", 10, seconds)
    got = samples(metrics)

    def bucket(le: str) -> float:
        return got[("flotilla_queue_wait_seconds_bucket", (("le", le), ("model", "chat"), ("priority", "10")))]

    assert bucket("0.0005") == 1
    assert bucket("0.001") == 3
    assert bucket("0.25") == 3
    assert bucket("0.5") == 4
    assert bucket("300.0") == 4
    assert bucket("+Inf") == 5
    assert len([k for k in got if k[0] == "flotilla_queue_wait_seconds_bucket"]) == len(QUEUE_WAIT_BUCKETS) + 1
    assert got[("flotilla_queue_wait_seconds_count", (("model", "chat"), ("priority", "10")))] == 5
    assert abs(got[("flotilla_queue_wait_seconds_sum", (("model", "chat"), ("priority", "10")))] - 500.3021) < 1e-9


def test_a_finished_request_counts_its_status_ttft_and_tokens():
    metrics = GatewayMetrics(label)
    metrics.watch({"chat": ReplicaPool("chat", 4)}, lambda: {})
    metrics.observe_finished("chat", 200, 1, 0.02, 12, 30)
    metrics.observe_finished("chat", 200, -7, None, 2**70, -1)  # a lowered priority; absurd counts
    metrics.observe_finished("chat", 502, 1, None, None, None)
    metrics.observe_retry("chat")
    got = samples(metrics)
    assert got[("flotilla_requests_total", (("model", "chat"), ("priority", "1"), ("status", "200")))] == 1
    assert got[("flotilla_requests_total", (("model", "chat"), ("priority", "other"), ("status", "200")))] == 1
    assert got[("flotilla_requests_total", (("model", "chat"), ("priority", "1"), ("status", "502")))] == 1
    assert got[("flotilla_time_to_first_token_seconds_count", (("model", "chat"), ("priority", "1")))] == 1
    assert ("flotilla_time_to_first_token_seconds_count", (("model", "chat"), ("priority", "other"))) not in got
    assert got[("flotilla_tokens_total", (("direction", "prompt"), ("model", "chat")))] == 12 + 2**31 - 1
    assert got[("flotilla_tokens_total", (("direction", "completion"), ("model", "chat")))] == 30
    assert got[("flotilla_upstream_retries_total", (("model", "chat"),))] == 1
    recent = {k[1]: v for k, v in got.items() if k[0] == "flotilla_recent_requests"}
    assert recent[(("model", "chat"), ("outcome", "ok"))] == 2
    assert recent[(("model", "chat"), ("outcome", "server_error"))] == 1
