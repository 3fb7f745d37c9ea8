"""The official openai client against the gateway in front of a real sim engine."""

import json
import time
import urllib.request

import openai
from gwstack import STAFF, STUDENTS
from procs import usage_rows


def client(gw: str, key: str = STAFF) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw + "/v1", api_key=key, max_retries=0)


def test_models_list_in_openai_format(fast_stack):
    models = client(fast_stack["gateway"]).models.list()
    assert [m.id for m in models.data] == ["chat"]
    assert models.data[0].object == "model"


def test_chat_completion_with_usage(fast_stack):
    out = client(fast_stack["gateway"]).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Hello there"}], max_tokens=5
    )
    assert out.choices[0].message.content
    assert out.usage.completion_tokens == 5
    assert out.usage.prompt_tokens > 0


def test_completion_with_usage(fast_stack):
    out = client(fast_stack["gateway"]).completions.create(model="chat", prompt="Once upon a time", max_tokens=7)
    assert out.choices[0].text
    assert out.usage.completion_tokens == 7


def test_chat_stream_relays_chunks_and_hides_usage_not_asked_for(fast_stack):
    chunks = list(
        client(fast_stack["gateway"]).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=6, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert all(c.usage is None for c in chunks)  # the gateway asked for usage, the client did not
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stream_with_include_usage_gets_the_usage_chunk(fast_stack):
    chunks = list(
        client(fast_stack["gateway"]).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=6, stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert chunks[-1].choices == []


def test_completion_stream(fast_stack):
    chunks = list(
        client(fast_stack["gateway"]).completions.create(
            model="chat", prompt="abc", max_tokens=4, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices)
    assert chunks[-1].usage.completion_tokens == 4


def test_embeddings(fast_stack):
    out = client(fast_stack["gateway"]).embeddings.create(model="chat", input=["a", "b"])
    assert len(out.data) == 2 and len(out.data[0].embedding) > 0


def test_usage_is_recorded_per_token_and_model(fast_stack):
    c = client(fast_stack["gateway"], STUDENTS)
    c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "count me"}], max_tokens=3)
    list(c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "me too"}], max_tokens=2, stream=True))
    db = next(fast_stack["tmp"].glob("flotilla-*.db"))
    rows = usage_rows(db, ("token_name", "model"))
    deadline = time.monotonic() + 10
    while not any(r["token_name"] == "students" and r["requests"] >= 2 for r in rows) and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = usage_rows(db, ("token_name", "model"))
    students = next(r for r in rows if r["token_name"] == "students")
    assert students["requests"] == 2
    assert students["completion_tokens"] == 5  # 3 + 2, the stream's usage included
    assert students["prompt_tokens"] > 0


def test_gateway_metrics_exposed(fast_stack):
    client(fast_stack["gateway"]).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "x"}], max_tokens=1
    )
    text = urllib.request.urlopen(fast_stack["gateway"] + "/metrics").read().decode()
    for name in (
        'flotilla_requests_total{model="chat",priority="10",status="200"}',
        "flotilla_queue_wait_seconds_bucket",
        'flotilla_queue_depth{model="chat",priority="all"} 0.0',
        "flotilla_replica_in_flight",
        'flotilla_tokens_total{direction="completion",model="chat"}',
        "flotilla_usage_records_written_total",
    ):
        assert name in text, name


def test_health_endpoints(fast_stack):
    live = urllib.request.urlopen(fast_stack["gateway"] + "/health/live")
    ready = json.loads(urllib.request.urlopen(fast_stack["gateway"] + "/health/ready").read())
    assert live.status == 200
    assert ready["status"] == "ready" and ready["healthy_replicas"] == {"chat": 1}


def test_client_may_lower_but_not_raise_priority(fast_stack):
    c = client(fast_stack["gateway"], STUDENTS)
    c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}], max_tokens=1,
                              extra_body={"priority": 100})
    c2 = client(fast_stack["gateway"], STAFF)
    c2.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}], max_tokens=1,
                               extra_body={"priority": 3})
    text = urllib.request.urlopen(fast_stack["gateway"] + "/metrics").read().decode()
    assert 'flotilla_requests_total{model="chat",priority="100"' not in text
    # 3 is no token's priority: it is counted under "other" (labels never come from a client).
    assert 'flotilla_requests_total{model="chat",priority="other",status="200"} 1.0' in text
