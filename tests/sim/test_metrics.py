from prometheus_client.parser import text_string_to_metric_families

from flotilla.sim.metrics import Histogram, SimMetrics


def families(text: str) -> dict:
    # The parser names counter families without their `_total` suffix.
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_histogram_buckets_are_cumulative_with_le_semantics():
    h = Histogram((0.1, 1.0))
    h.observe(0.1)  # on the bound: counted in le="0.1"
    h.observe(0.5)
    h.observe(5.0, times=2)
    out: list[str] = []
    h.render("x", 'a="b"', out)
    assert out[:3] == ['x_bucket{a="b",le="0.1"} 1', 'x_bucket{a="b",le="1.0"} 2', 'x_bucket{a="b",le="+Inf"} 4']
    assert h.count == 4 and abs(h.sum - 10.6) < 1e-9


def test_exposition_parses_with_vllms_names_and_labels():
    metrics = SimMetrics('m"x')
    metrics.prompt_tokens = 12
    metrics.generation_tokens = 30
    metrics.ttft.observe(0.05)
    metrics.inter_token.observe(0.01, times=29)
    metrics.finished("length", e2e=0.4, queued=0.0)
    parsed = families(metrics.render(running=3, waiting=2, kv_cache_usage=0.25))

    def value(family: str, sample: str, **labels: str) -> float:
        for s in parsed[family].samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                assert s.labels["model_name"] == 'm"x' and s.labels["engine"] == "0"
                return s.value
        raise AssertionError(f"{sample} {labels} missing")

    assert value("vllm:num_requests_running", "vllm:num_requests_running") == 3
    assert value("vllm:num_requests_waiting", "vllm:num_requests_waiting") == 2
    assert value("vllm:kv_cache_usage_perc", "vllm:kv_cache_usage_perc") == 0.25
    assert value("vllm:prompt_tokens", "vllm:prompt_tokens_total") == 12
    assert value("vllm:generation_tokens", "vllm:generation_tokens_total") == 30
    assert value("vllm:request_success", "vllm:request_success_total", finished_reason="length") == 1
    assert value("vllm:request_success", "vllm:request_success_total", finished_reason="stop") == 0
    assert value("vllm:time_to_first_token_seconds", "vllm:time_to_first_token_seconds_count") == 1
    assert value("vllm:inter_token_latency_seconds", "vllm:inter_token_latency_seconds_bucket", le="0.01") == 29
    assert value("vllm:e2e_request_latency_seconds", "vllm:e2e_request_latency_seconds_sum") == 0.4
    assert parsed["vllm:request_queue_time_seconds"].type == "histogram"
    assert parsed["vllm:prompt_tokens"].type == "counter"
