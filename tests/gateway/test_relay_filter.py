from flotilla.gateway.health import engine_load_from_metrics
from flotilla.gateway.relay import RelayResult, StreamRelay
from flotilla.gateway.requests import ParsedBody, effective_priority, upstream_body, vllm_priority_of

CONTENT = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}\n\n'
DONE = b"data: [DONE]\n\n"


def test_usage_chunk_read_and_dropped_when_not_asked():
    relay = StreamRelay(False, RelayResult())
    assert relay._filter(CONTENT) == CONTENT
    assert relay._filter(USAGE + DONE) == DONE
    assert (relay.result.prompt_tokens, relay.result.completion_tokens) == (3, 5)
    assert relay.result.complete


def test_usage_chunk_kept_when_asked():
    relay = StreamRelay(True, RelayResult())
    assert relay._filter(CONTENT + USAGE + DONE) == CONTENT + USAGE + DONE
    assert relay.result.completion_tokens == 5


def test_null_usage_and_usage_inside_content_chunks():
    relay = StreamRelay(False, RelayResult())
    null_usage = b'data: {"choices":[{"delta":{"content":"x"}}],"usage":null}\n\n'
    assert relay._filter(null_usage) == null_usage
    inline = b'data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}\n\n'
    assert relay._filter(inline) == inline  # a chunk with choices is never dropped
    assert relay.result.completion_tokens == 2


def test_body_rewrite_keeps_everything_but_model_priority_and_stream_usage():
    parsed = ParsedBody({"model": "chat", "messages": [], "temperature": 0.3, "stream": True}, "chat", True, False, 4)
    import orjson

    out = orjson.loads(upstream_body(parsed, "served-name", vllm_priority_of(effective_priority(10, 4))))
    assert out == {"model": "served-name", "messages": [], "temperature": 0.3, "stream": True,
                   "stream_options": {"include_usage": True}, "priority": -4}


def test_priority_only_lowered():
    assert effective_priority(5, None) == 5
    assert effective_priority(5, 9) == 5
    assert effective_priority(5, 2) == 2


def test_engine_load_from_vllm_metrics():
    text = (b"# HELP vllm:num_requests_running x\n"
            b'vllm:num_requests_running{model_name="m"} 3.0\n'
            b'vllm:num_requests_waiting{model_name="m"} 2.0\n'
            b'vllm:kv_cache_usage_perc{model_name="m"} 0.5\n')
    gauges = ("vllm:num_requests_running", "vllm:num_requests_waiting")
    assert engine_load_from_metrics(text, gauges) == 5
    assert engine_load_from_metrics(b"other 1\n", gauges) is None
    # A longer name that starts like a gauge is another metric.
    assert engine_load_from_metrics(b"vllm:num_requests_running_total 7\n", gauges) is None


def test_completion_tokens_counted_when_the_engine_sends_no_usage():
    relay = StreamRelay(False, RelayResult())
    role = b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
    tok = b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
    relay._filter(role + tok)
    spaced = b'data: {"choices": [{"delta": {"content": "b"}}]}\n\n'
    relay._filter(tok + spaced + DONE)
    assert relay.content_chunks == 3


def test_request_ids_are_uuid_shaped_and_unique():
    import uuid

    from flotilla.gateway.app import new_request_id

    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    for rid in list(ids)[:10]:
        assert uuid.UUID(rid).version == 4
