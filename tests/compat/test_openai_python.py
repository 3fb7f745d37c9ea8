"""The official `openai` Python SDK against the gateway: sync and async, streamed and not, raw
responses, and the SDK's own exceptions and retry behaviour for the gateway's errors."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import openai
import pytest
from compatkit import TIGHT, TOKEN, WRONG, hold_slot, requests_with_status, wait_for
from openai import AsyncOpenAI, OpenAI

MESSAGES = [{"role": "user", "content": "Name three colours."}]


def client_for(backend, token: str = TOKEN, **options) -> OpenAI:
    options.setdefault("max_retries", 0)
    return OpenAI(base_url=backend.base_url, api_key=token, timeout=300, **options)


def check_usage(usage, max_tokens: int | None = None) -> None:
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    if max_tokens is not None:
        assert usage.completion_tokens <= max_tokens


def test_models_list_and_retrieve(backend):
    client = client_for(backend)
    assert backend.model in [m.id for m in client.models.list().data]
    assert client.models.retrieve(backend.model).id == backend.model


def test_chat_completion(backend):
    reply = client_for(backend).chat.completions.create(model=backend.model, messages=MESSAGES, max_tokens=8)
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    check_usage(reply.usage, 8)
    if choice.finish_reason == "length":
        assert reply.usage.completion_tokens == 8


def test_max_completion_tokens_is_honoured(backend):
    """Current clients send `max_completion_tokens` (older engines knew only `max_tokens` and wrote
    until their context was full)."""
    reply = client_for(backend).chat.completions.create(
        model=backend.model, messages=MESSAGES, max_completion_tokens=5
    )
    assert 0 < reply.usage.completion_tokens <= 5


def test_chat_completion_stops_by_itself_on_the_sim(sim_backend):
    reply = client_for(sim_backend).chat.completions.create(model="chat", messages=MESSAGES)
    assert reply.choices[0].finish_reason == "stop"
    check_usage(reply.usage)


def test_chat_stream(backend):
    stream = client_for(backend).chat.completions.create(
        model=backend.model, messages=MESSAGES, max_tokens=8, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    with_choices = [c for c in chunks if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in with_choices)
    assert text.strip()
    assert with_choices[-1].choices[0].finish_reason in ("stop", "length")
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
    usage_chunks = [c for c in chunks if c.usage is not None]
    if backend.stream_usage:
        assert len(usage_chunks) == 1 and chunks[-1] is usage_chunks[0] and not usage_chunks[0].choices
        check_usage(usage_chunks[0].usage, 8)
    else:  # an engine that reports no usage on streams: the gateway invents none
        assert usage_chunks == []


def test_long_streams_end_with_a_finish_reason(backend):
    """Health checks run every 0.25 s on the llama.cpp backend: none may cut a stream short."""
    client = client_for(backend)
    for _ in range(3):
        chunks = [c for c in client.chat.completions.create(
            model=backend.model, messages=[{"role": "user", "content": "Tell a long story about a ship."}],
            max_tokens=48, stream=True,
        ) if c.choices]
        assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_replica_stays_healthy_while_it_generates(llamacpp_backend):
    """An engine busy generating must still pass its health checks; the gateway (probing every
    0.25 s, each probe given 1 s) must not take that for a dead replica, or requests queued behind a
    long generation would fail with 503 once `unavailableWaitS` passed."""
    client = client_for(llamacpp_backend)
    readings: list[str] = []
    done = threading.Event()

    def generate():
        try:
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "Write a long essay about ships."}],
                max_tokens=300,
            )
        finally:
            done.set()

    worker = threading.Thread(target=generate)
    worker.start()
    while not done.wait(0.1):
        metrics = httpx.get(llamacpp_backend.url + "/metrics", timeout=5).text
        readings += [line.rsplit(" ", 1)[1] for line in metrics.splitlines() if line.startswith("flotilla_replica_healthy{")]
    worker.join()
    assert readings and set(readings) == {"1.0"}


def test_stream_without_include_usage_gets_no_usage_chunk(backend):
    stream = client_for(backend).chat.completions.create(
        model=backend.model, messages=MESSAGES, max_tokens=4, stream=True
    )
    chunks = list(stream)
    assert chunks and all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_legacy_completion(backend):
    reply = client_for(backend).completions.create(model=backend.model, prompt="Once upon a time", max_tokens=6)
    assert reply.choices[0].text
    assert reply.choices[0].finish_reason in ("stop", "length")
    check_usage(reply.usage, 6)


def test_embeddings_on_the_sim(sim_backend):
    reply = client_for(sim_backend).embeddings.create(model="chat", input=["one", "two"])
    assert [d.index for d in reply.data] == [0, 1]
    assert len(reply.data[0].embedding) > 0
    assert reply.usage.prompt_tokens > 0


def test_raw_response_headers(backend):
    raw = client_for(backend).chat.completions.with_raw_response.create(
        model=backend.model, messages=MESSAGES, max_tokens=4
    )
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("application/json")
    assert raw.headers["x-request-id"]
    assert raw.parse().choices[0].message.content


def test_raw_response_of_a_stream_carries_the_gateways_own_request_id(backend):
    given = "0f8fad5b-d9cb-466f-a165-70867728950e"
    raw = client_for(backend).chat.completions.with_raw_response.create(
        model=backend.model, messages=MESSAGES, max_tokens=4, stream=True, extra_headers={"X-Request-Id": given}
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    # The id of the usage record and the engine's logs; a client's own id is never taken over
    # (ids from different tenants could collide).
    assert raw.headers["x-request-id"] and raw.headers["x-request-id"] != given
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)


async def test_async_client_streams_and_not_concurrently(backend):
    client = AsyncOpenAI(base_url=backend.base_url, api_key=TOKEN, max_retries=0, timeout=300)

    async def whole():
        reply = await client.chat.completions.create(model=backend.model, messages=MESSAGES, max_tokens=6)
        check_usage(reply.usage, 6)
        return reply.choices[0].message.content

    async def streamed():
        stream = await client.chat.completions.create(
            model=backend.model, messages=MESSAGES, max_tokens=6, stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    try:
        texts = await asyncio.gather(whole(), streamed(), whole())
    finally:
        await client.close()
    assert all(t.strip() for t in texts)


# --- errors: the SDK's own exception types ------------------------------------------------------


def test_wrong_token_raises_authentication_error(sim_backend):
    with pytest.raises(openai.AuthenticationError) as caught:
        client_for(sim_backend, WRONG).chat.completions.create(model="chat", messages=MESSAGES)
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert caught.value.request_id


async def test_wrong_token_raises_authentication_error_async(sim_backend):
    client = AsyncOpenAI(base_url=sim_backend.base_url, api_key=WRONG, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()
    await client.close()


def test_unknown_model_raises_not_found(sim_backend):
    with pytest.raises(openai.NotFoundError) as caught:
        client_for(sim_backend).chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
    assert "chat" in caught.value.message  # names the known models
    with pytest.raises(openai.NotFoundError):
        client_for(sim_backend).models.retrieve("no-such-model")


def test_bad_request_raises_bad_request_error(sim_backend):
    with pytest.raises(openai.BadRequestError) as caught:
        client_for(sim_backend).chat.completions.create(model="chat", messages=[])
    assert caught.value.param == "messages"


def test_over_threshold_raises_rate_limit_error_with_retry_after(sim_backend):
    with hold_slot(sim_backend):
        with pytest.raises(openai.RateLimitError) as caught:
            client_for(sim_backend, TIGHT).chat.completions.create(model="narrow", messages=MESSAGES)
    assert caught.value.status_code == 429
    assert caught.value.code == "queue_threshold_exceeded"
    assert caught.value.response.headers["retry-after"] == "1"


def test_sdk_retries_429_after_retry_after_seconds(sim_backend):
    """max_retries=2 while the slot stays taken: three attempts, each at least Retry-After (1 s)
    after the last; the SDK's own backoff without the header would be under 1 s."""
    sent: list[float] = []
    http = openai.DefaultHttpxClient(event_hooks={"request": [lambda request: sent.append(time.monotonic())]})
    client = client_for(sim_backend, TIGHT, max_retries=2, http_client=http)
    before = requests_with_status(sim_backend, 429)
    with hold_slot(sim_backend):
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="narrow", messages=MESSAGES)
    assert len(sent) == 3
    assert requests_with_status(sim_backend, 429) - before == 3
    assert all(later - earlier >= 1.0 for earlier, later in zip(sent, sent[1:]))


def test_sdk_retry_succeeds_once_the_slot_frees(sim_backend):
    client = client_for(sim_backend, TIGHT, max_retries=30)
    before = requests_with_status(sim_backend, 429)
    outcome: dict = {}

    def call():
        try:
            outcome["reply"] = client.chat.completions.create(model="narrow", messages=MESSAGES, max_tokens=3)
        except Exception as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    with hold_slot(sim_backend):
        worker = threading.Thread(target=call)
        worker.start()
        wait_for(lambda: requests_with_status(sim_backend, 429) > before, 30, "a first 429")
    worker.join(120)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["reply"].usage.completion_tokens == 3
