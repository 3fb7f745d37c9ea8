"""How a streamed response becomes a record: token events, usage, empty chunks, failures."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from flotilla.bench.datasets import PromptSample
from flotilla.bench.metrics import RequestRecord
from flotilla.bench.request import StreamingExchange, request_body
from flotilla.transport import BodyBroken


def chat_chunk(content: str | None = None, role: str | None = None, finish: str | None = None) -> bytes:
    delta = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    payload = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def usage_chunk(prompt: int, completion: int) -> bytes:
    payload = {"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}
    return b"data: " + orjson.dumps(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"
USAGE_SEEN: dict[int, bool] = {}


def feed(reads: list[tuple[float, bytes]], status: int = 200, start: float = 10.0) -> RequestRecord:
    """Deliver `reads` (time, bytes) to an exchange started at `start`; complete at the last read."""
    loop = asyncio.new_event_loop()
    try:
        record = RequestRecord("c", scheduled=0.0, prompt_tokens=7)
        exchange = StreamingExchange(record, start, loop.create_future())
        exchange.on_head(status, {}, start + 0.001)
        for t, data in reads:
            exchange.on_body(data, t)
        exchange.on_complete(reads[-1][0] if reads else start)
        assert exchange.future.done()
        USAGE_SEEN[id(record)] = exchange.usage_reported
        return record
    finally:
        loop.close()


def test_timings_as_vllm_defines_them():
    """Issue 9 item 13: any chunk with `choices` is a token event; E2EL ends at the last one."""
    r = feed(
        [
            (10.050, chat_chunk(role="assistant", content="") + chat_chunk("Hello")),
            (10.060, chat_chunk(" there")),
            (10.075, chat_chunk("!", finish="stop")),
            (10.076, usage_chunk(12, 3) + DONE),
        ]
    )
    assert r.success and r.status == "200"
    assert r.ttft == pytest.approx(0.050)
    assert r.itl == pytest.approx([0.0, 0.010, 0.015])  # the role chunk and "Hello" arrived in one read
    assert r.latency == pytest.approx(0.075)  # the last token chunk; the usage-only chunk does not count
    assert (r.prompt_tokens, r.output_tokens) == (12, 3)


def test_role_only_and_empty_chunks_are_token_events_comments_are_not():
    r = feed(
        [
            (10.020, chat_chunk(role="assistant", content="")),  # vLLM's opening chunk counts in vLLM's benchmark
            (10.040, chat_chunk("")),  # so does an empty content
            (10.050, b": keep-alive\n\n"),  # an SSE comment does not
            (10.100, chat_chunk("first")),
            (10.111, usage_chunk(5, 2) + DONE),
        ]
    )
    assert r.ttft == pytest.approx(0.020)
    assert r.itl == pytest.approx([0.020, 0.060])
    assert r.latency == pytest.approx(0.100)


def test_sse_variants_done_without_space_unterminated_last_event_bare_cr():
    """Issue 9 item 7, in the benchmark's reader."""
    r = feed([(10.01, chat_chunk("a").replace(b"\n", b"\r")), (10.02, b"data:" + chat_chunk("b")[6:].rstrip())])
    assert r.success and r.ttft == pytest.approx(0.01) and r.itl == pytest.approx([0.01])
    assert r.output_tokens == 2  # no usage event: the two token events


def test_events_split_across_reads_and_crlf_line_ends():
    whole = (chat_chunk("a") + chat_chunk("b") + usage_chunk(3, 2) + DONE).replace(b"\n", b"\r\n")
    first = len(chat_chunk("a").replace(b"\n", b"\r\n"))
    cut1, cut2 = 17, first + 20  # inside the first event, and inside the second
    r = feed([(10.1, whole[:cut1]), (10.2, whole[cut1:cut2]), (10.3, whole[cut2:])])
    assert r.success
    assert r.ttft == pytest.approx(0.2)  # the first event completes with the second read
    assert r.output_tokens == 2


def test_completions_text_chunks():
    text = lambda s: b"data: " + orjson.dumps({"choices": [{"index": 0, "text": s}]}) + b"\n\n"  # noqa: E731
    r = feed([(10.01, text("")), (10.02, text("x")), (10.03, text("y")), (10.04, usage_chunk(4, 2) + DONE)])
    assert r.ttft == pytest.approx(0.01)  # an empty text is a token event, as in vLLM
    assert r.itl == pytest.approx([0.01, 0.01])


def test_without_usage_tokens_fall_back_to_content_chunks_and_prompt_estimate():
    r = feed([(10.01, chat_chunk("a")), (10.02, chat_chunk("b")), (10.03, chat_chunk("c") + DONE)])
    assert r.success
    assert r.output_tokens == 3
    assert r.prompt_tokens == 7  # the estimate set before sending
    assert USAGE_SEEN[id(r)] is False


def test_http_error_keeps_status_and_message():
    body = orjson.dumps({"error": {"message": "Too many queued requests for token students", "type": "rate_limit"}})
    r = feed([(10.01, body)], status=429)
    assert not r.success
    assert r.status == "429"
    assert "Too many queued" in r.error


def test_error_event_in_stream_fails_the_request():
    err = b'data: {"error": {"message": "engine died", "code": 502}}\n\n'
    r = feed([(10.01, chat_chunk("a")), (10.02, err + DONE)])
    assert not r.success and r.status == "stream"
    assert "engine died" in r.error


def test_stream_without_tokens_is_a_failure():
    r = feed([(10.01, usage_chunk(3, 0) + DONE)])
    assert not r.success and r.status == "empty"


def test_cut_stream_is_a_stream_failure():
    loop = asyncio.new_event_loop()
    try:
        record = RequestRecord("c", scheduled=0.0)
        exchange = StreamingExchange(record, 1.0, loop.create_future())
        exchange.on_head(200, {}, 1.01)
        exchange.on_body(chat_chunk("a"), 1.02)
        exchange.on_failure(BodyBroken("the connection was closed before the response ended"), 1.03)
        assert record.status == "stream" and not record.success
    finally:
        loop.close()


def test_request_body_asks_for_usage_and_lengths():
    sample = PromptSample("hi there", 2, 33)
    chat = orjson.loads(request_body("chat", "m", sample, ignore_eos=True))
    assert chat["messages"] == [{"role": "user", "content": "hi there"}]
    assert chat["max_tokens"] == 33 and chat["stream"] is True
    assert chat["stream_options"] == {"include_usage": True}
    assert chat["ignore_eos"] is True
    plain = orjson.loads(request_body("completions", "m", sample, ignore_eos=False))
    assert plain["prompt"] == "hi there" and "ignore_eos" not in plain
