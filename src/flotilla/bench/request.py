"""One streaming OpenAI request, timed the way vLLM's benchmark times it.

The clock starts before a connection is taken (a new connection's set-up counts, as it does for a
real client). As in vLLM's benchmark, a `data:` event carrying `choices` is a token event (TTFT,
then ITL gaps) and the last `data:` event ends E2E latency; unlike it, a chunk whose choice carries
no output (the role-only opening chunk of a chat stream, an empty text) is not a token event, so
ITL holds the gaps between content chunks only and TTFT is the first content. Token counts come from the `usage` event
(`stream_options.include_usage`); without one, output tokens fall back to the number of token
events and input tokens to the prompt's estimate, and the record says so.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from flotilla.bench.datasets import PromptSample
from flotilla.bench.http import ConnectionPool
from flotilla.bench.metrics import RequestRecord

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


def request_headers(token: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": "flotilla-bench"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


class StreamingExchange:
    """Receives one response (see http.ResponseSink) and fills its RequestRecord."""

    __slots__ = (
        "record",
        "start",
        "future",
        "status",
        "_sse",
        "_error_body",
        "_first",
        "_last_token",
        "_last_event",
        "_token_events",
        "_stream_error",
        "usage_reported",
        "received_anything",
    )

    def __init__(self, record: RequestRecord, start: float, future: asyncio.Future[None]) -> None:
        self.record = record
        self.start = start
        self.future = future
        self.status = 0
        self._sse = b""
        self._error_body = bytearray()
        self._first = 0.0
        self._last_token = 0.0
        self._last_event = 0.0
        self._token_events = 0
        self._stream_error = ""
        self.usage_reported = False
        self.received_anything = False

    def on_head(self, status: int, headers: dict[str, str], t: float) -> None:
        self.status = status
        self.received_anything = True

    def on_body(self, data: bytes, t: float) -> None:
        if self.status != 200:
            if len(self._error_body) < _ERROR_BODY_LIMIT:
                self._error_body += data[: _ERROR_BODY_LIMIT - len(self._error_body)]
            return
        buf = self._sse + data if self._sse else data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        events = buf.split(b"\n\n")
        self._sse = events.pop()
        for event in events:
            self._on_event(event, t)

    def _on_event(self, event: bytes, t: float) -> None:
        if event.startswith(b"data: ") and b"\n" not in event:
            payload = event[6:]  # the usual one-line event
        else:
            payload = b""
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    part = line[5:].strip()
                    payload = payload + b"\n" + part if payload else part
        if not payload or payload == b"[DONE]":
            return  # comments (keep-alive pings), other fields, and the end marker carry no timing
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self._stream_error = self._stream_error or "stream event is not JSON"
            return
        if not isinstance(message, dict):
            return
        self._last_event = t
        choices = message.get("choices")
        if choices and _carries_output(choices[0]):
            if self._token_events == 0:
                self._first = t
            else:
                self.record.itl.append(t - self._last_token)
            self._last_token = t
            self._token_events += 1
        usage = message.get("usage")
        if usage:
            self.usage_reported = True
            self.record.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.record.output_tokens = int(usage.get("completion_tokens") or 0)
        error = message.get("error")
        if error:
            text = error.get("message") if isinstance(error, dict) else str(error)
            self._stream_error = f"error event in stream: {str(text)[:200]}"

    def on_complete(self, t: float) -> None:
        record = self.record
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
            record.latency = self._last_event - self.start
            if not self.usage_reported:
                record.output_tokens = self._token_events
        self._resolve()

    def on_failure(self, error: str, received_anything: bool, t: float) -> None:
        record = self.record
        if error == TIMEOUT:
            record.status = TIMEOUT
            record.error = "no complete response within the timeout"
        else:
            record.status = STREAM if self.status == 200 else CONNECTION
            record.error = error
        self.received_anything = self.received_anything or received_anything
        self._resolve()

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


def _carries_output(choice: object) -> bool:
    """A chunk with generated output; a role-only or empty-text chunk is not a token event."""
    if not isinstance(choice, dict):
        return False
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return bool(
            delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning") or delta.get("tool_calls")
        )
    return bool(choice.get("text"))


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


async def perform(target: RequestTarget, request: bytes, record: RequestRecord, clock_zero: float) -> bool:
    """Send `request`, wait for the whole response, fill `record`. Returns whether usage was reported.

    A reused keep-alive connection that the server closed while idle fails before any byte
    arrives; that attempt is retried once on a new connection (the clock keeps running).
    """
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    record.sent = start - clock_zero
    for attempt in range(2):
        try:
            conn = await target.pool.acquire()
        except (TimeoutError, OSError) as exc:
            record.status = CONNECTION
            record.error = f"cannot connect to {target.pool.host}:{target.pool.port}: {exc or 'timed out'}"
            record.finished = time.perf_counter() - clock_zero
            return False
        reused = conn.reused
        future: asyncio.Future[None] = loop.create_future()
        exchange = StreamingExchange(record, start, future)
        remaining = target.timeout_s - (time.perf_counter() - start)
        timer = loop.call_later(max(0.0, remaining), conn.abort, TIMEOUT)
        conn.send(request, exchange)
        try:
            await future
        finally:
            timer.cancel()
        retry = attempt == 0 and reused and record.status == CONNECTION and not exchange.received_anything
        if not retry:
            record.finished = time.perf_counter() - clock_zero
            return exchange.usage_reported
        record.status, record.error = "", ""
    raise AssertionError("unreachable")


class Transport(Protocol):
    """Sends one request and fills its record (the lean client here; others for comparison)."""

    @property
    def connections_opened(self) -> int: ...

    async def send(self, headers: dict[str, str], body: bytes, record: RequestRecord, clock_zero: float) -> bool: ...

    async def close(self) -> None: ...


class LeanTransport:
    """The asyncio-protocol client of http.py with keep-alive pooling."""

    def __init__(self, base_url: str, path: str, timeout_s: float) -> None:
        self.pool = ConnectionPool(base_url, connect_timeout_s=min(30.0, timeout_s))
        self.target = RequestTarget(self.pool, path, timeout_s)

    @property
    def connections_opened(self) -> int:
        return self.pool.opened

    async def send(self, headers: dict[str, str], body: bytes, record: RequestRecord, clock_zero: float) -> bool:
        request = self.pool.build_request("POST", self.target.path, headers, body)
        return await perform(self.target, request, record, clock_zero)

    async def close(self) -> None:
        self.pool.close()
