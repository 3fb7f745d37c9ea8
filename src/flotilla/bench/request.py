"""One streaming OpenAI request, timed exactly the way vLLM's serving benchmark times it
(vllm/benchmarks/lib/endpoint_request_func.py).

The clock starts before a connection is taken (a new connection's set-up counts, as it does for a
real client). A `data:` event whose JSON has a non-empty `choices` is a token event, whatever the
choice holds (the role-only opening chunk of a chat stream and an empty text count, as in vLLM):
the first one gives TTFT, the gaps between successive ones ITL, and the last one ends E2E latency
(the usage-only chunk and `[DONE]` do not). Token counts come from the `usage` event
(`stream_options.include_usage`).

Named deviations from vLLM: events are stamped when the network read that completed them arrived
(vLLM stamps each as it parses it, a few microseconds later); without a usage event, output tokens
fall back to the number of token events (vLLM re-tokenizes the text) and input tokens to the
prompt's estimate, and the record says so; a stream carrying an error event, or cut off before
its end, is a failure (vLLM counts any stream with one token event a success).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from flotilla.bench.datasets import PromptSample
from flotilla.bench.metrics import RequestRecord
from flotilla.transport import ConnectError, ConnectionPool, TotalTimeout, TransportError
from flotilla.transport.sse import SSEReader, event_data, split_events

_ERROR_BODY_LIMIT = 2048

# Failure labels next to HTTP status codes in errors_by_status.
CONNECTION = "connection"  # no response: refused, reset, or closed before the head
STREAM = "stream"  # a 200 stream cut off or ending with an error event
TIMEOUT = "timeout"
EMPTY = "empty"  # a 200 stream without a single token event


def request_body(endpoint: Literal["chat", "completions"], model: str, sample: PromptSample, ignore_eos: bool) -> bytes:
    body: dict[str, Any] = {"model": model}
    if endpoint == "chat":
        body["messages"] = [{"role": "user", "content": sample.prompt}]
    else:
        body["prompt"] = sample.prompt
    body.update(
        max_tokens=sample.output_len,
        temperature=0.0,
        stream=True,
        stream_options={"include_usage": True},
    )
    if ignore_eos:
        body["ignore_eos"] = True
    return orjson.dumps(body)


def chat_body(model: str, messages: list[dict[str, str]], output_len: int, ignore_eos: bool) -> bytes:
    """A chat request carrying a whole conversation (multi-turn replay)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": output_len,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if ignore_eos:
        body["ignore_eos"] = True
    return orjson.dumps(body)


def request_headers(token: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": "flotilla-bench"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


class StreamingExchange:
    """Receives one response (a `flotilla.transport.ResponseSink`) and fills its RequestRecord."""

    __slots__ = (
        "record", "start", "future", "status", "_sse", "_error_body", "_first", "_last_token", "_token_events",
        "_stream_error", "usage_reported", "answer",
    )

    def __init__(
        self, record: RequestRecord, start: float, future: asyncio.Future[None], answer: list[str] | None = None
    ) -> None:
        self.answer = answer  # receives the generated text's pieces when given (a conversation's next turn needs it)
        self.record = record
        self.start = start
        self.future = future
        self.status = 0
        self._sse = SSEReader()
        self._error_body = bytearray()
        self._first = 0.0
        self._last_token = 0.0
        self._token_events = 0
        self._stream_error = ""
        self.usage_reported = False

    def on_head(self, status: int, headers: dict[str, str], t: float) -> None:
        self.status = status

    def on_body(self, data: bytes, t: float) -> None:
        if self.status != 200:
            if len(self._error_body) < _ERROR_BODY_LIMIT:
                self._error_body += data[: _ERROR_BODY_LIMIT - len(self._error_body)]
            return
        block = self._sse.feed(data)
        if block:
            self._on_block(block, t)

    def _on_block(self, block: bytes, t: float) -> None:
        for event in split_events(block):
            payload = event_data(event)
            if payload is None or payload == b"[DONE]":
                continue  # comments (keep-alive pings), other fields, and the end marker carry no timing
            try:
                message = orjson.loads(payload)
            except orjson.JSONDecodeError:
                self._stream_error = self._stream_error or "stream event is not JSON"
                continue
            if not isinstance(message, dict):
                continue
            choices = message.get("choices")
            if choices:
                if self.answer is not None:
                    self._keep_text(choices[0])
                if self._token_events == 0:
                    self._first = t
                else:
                    self.record.itl.append(t - self._last_token)
                self._last_token = t
                self._token_events += 1
            usage = message.get("usage")
            if isinstance(usage, dict):
                self.usage_reported = True
                self.record.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                self.record.output_tokens = int(usage.get("completion_tokens") or 0)
            error = message.get("error")
            if error:
                text = error.get("message") if isinstance(error, dict) else str(error)
                self._stream_error = f"error event in stream: {str(text)[:200]}"

    def _keep_text(self, choice: Any) -> None:
        if not isinstance(choice, dict) or self.answer is None:
            return
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if isinstance(text, str):
            self.answer.append(text)

    def on_complete(self, t: float) -> None:
        record = self.record
        if self.status == 200:
            tail = self._sse.finish()  # a last event without its blank line
            if tail:
                self._on_block(tail, t)
        if self.status != 200:
            record.status = str(self.status)
            record.error = _error_message(bytes(self._error_body))
        elif self._stream_error:
            record.status = STREAM
            record.error = self._stream_error
        elif self._token_events == 0:
            record.status = EMPTY
            record.error = "the stream ended without a single token event"
        else:
            record.status = "200"
            record.success = True
            record.ttft = self._first - self.start
            record.latency = self._last_token - self.start
            if not self.usage_reported:
                record.output_tokens = self._token_events
        self._resolve()

    def on_failure(self, error: TransportError, t: float) -> None:
        record = self.record
        if isinstance(error, TotalTimeout):
            record.status = TIMEOUT
            record.error = "no complete response within the timeout"
        else:
            record.status = STREAM if self.status == 200 else CONNECTION
            record.error = str(error)
        self._resolve()

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


def _error_message(body: bytes) -> str:
    try:
        parsed = orjson.loads(body)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            return str(parsed["error"].get("message", ""))[:300]
    except orjson.JSONDecodeError:
        pass
    return body[:300].decode("utf-8", "replace")


@dataclass(frozen=True)
class RequestTarget:
    """Where and how to send: the pool of the base URL and the path under it."""

    pool: ConnectionPool
    path: str
    timeout_s: float


async def perform(
    target: RequestTarget, request: bytes, record: RequestRecord, clock_zero: float, answer: list[str] | None = None
) -> bool:
    """Send `request` once, wait for the whole response, fill `record` (and `answer` with the generated
    text, when given). Returns whether usage was reported.

    The pool hands out an idle keep-alive connection only after checking it is still open, so a
    request is never sent twice (an engine may have started on the first copy)."""
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    record.sent = start - clock_zero
    try:
        conn = await target.pool.acquire()
    except ConnectError as exc:
        record.status = CONNECTION
        record.error = str(exc)
        record.finished = time.perf_counter() - clock_zero
        return False
    future: asyncio.Future[None] = loop.create_future()
    exchange = StreamingExchange(record, start, future, answer)
    remaining = target.timeout_s - (time.perf_counter() - start)
    timer = loop.call_later(
        max(0.0, remaining), conn.abort, TotalTimeout("no complete response within the timeout"), exchange
    )
    conn.send(request, exchange)
    try:
        await future
    finally:
        timer.cancel()
        if not future.done():  # cancelled: the connection cannot carry another request
            conn.discard()
    record.finished = time.perf_counter() - clock_zero
    return exchange.usage_reported


class Transport(Protocol):
    """Sends one request and fills its record (the lean client here; others for comparison)."""

    @property
    def connections_opened(self) -> int: ...

    async def send(
        self, headers: dict[str, str], body: bytes, record: RequestRecord, clock_zero: float,
        answer: list[str] | None = None,
    ) -> bool: ...

    async def close(self) -> None: ...


class LeanTransport:
    """The shared transport's connection pool (flotilla.transport), a sink per request."""

    def __init__(self, base_url: str, path: str, timeout_s: float) -> None:
        self.pool = ConnectionPool(base_url, connect_timeout=min(30.0, timeout_s))
        self.target = RequestTarget(self.pool, path, timeout_s)

    @property
    def connections_opened(self) -> int:
        return self.pool.opened

    async def send(
        self, headers: dict[str, str], body: bytes, record: RequestRecord, clock_zero: float,
        answer: list[str] | None = None,
    ) -> bool:
        request = self.pool.build_request("POST", self.target.path, headers, body)
        return await perform(self.target, request, record, clock_zero, answer)

    async def close(self) -> None:
        self.pool.close()
