"""Sending a request to a replica and relaying its answer, streamed chunk by chunk as it arrives."""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp
import orjson
from aiohttp import web

from flotilla.gateway.errors import sse_error_event
from flotilla.gateway.upstream import UpstreamBroken, UpstreamResponse

_DONE = b"data: [DONE]"
_USAGE = b'"usage"'
_NULL_USAGE = (b'"usage":null', b'"usage": null')
# Token-bearing fields of chat and completion chunks, for engines that report no usage on streams.
# Compact (orjson, vLLM) and spaced (Python's json.dumps, llama-cpp-python) separators.
_CONTENT = (b'"content":"', b'"text":"', b'"content": "', b'"text": "')
_EMPTY_CONTENT = (b'"content":""', b'"text":""', b'"content": ""', b'"text": ""')


@dataclass(slots=True)
class RelayResult:
    """Filled in as the answer passes, so a client hanging up at any point leaves a true record."""

    status: int = 0
    outcome: str = "pending"  # ok | upstream_error | upstream_died_mid_stream | client_disconnected
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    first_byte_at: float | None = None  # monotonic time the first streamed chunk went out
    complete: bool = False  # the engine's whole answer was received


def _usage_of(payload: dict) -> tuple[int | None, int | None]:
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None, None
    return usage.get("prompt_tokens"), usage.get("completion_tokens")


async def relay_whole(upstream: UpstreamResponse, request_id: str, result: RelayResult) -> web.Response:
    """A non-streamed answer: the engine's status and body, unchanged."""
    body = await upstream.read()
    result.status, result.outcome, result.complete = upstream.status, "ok" if upstream.status < 400 else "upstream_error", True
    if upstream.status == 200:
        try:
            result.prompt_tokens, result.completion_tokens = _usage_of(orjson.loads(body))
        except (orjson.JSONDecodeError, AttributeError):
            pass
    response = web.Response(
        status=upstream.status,
        body=body,
        headers={"Content-Type": upstream.headers.get("content-type", "application/json"), "x-request-id": request_id},
    )
    return response


class StreamRelay:
    """Relays an engine's server-sent events to the client.

    Usage is read from the engine's usage chunk (the gateway always asks for one); that chunk is
    passed on only if the client asked for it. If the engine's stream breaks before `[DONE]`, the
    client's stream ends with an error event instead of just stopping.
    """

    def __init__(self, client_wants_usage: bool, result: RelayResult) -> None:
        self.client_wants_usage = client_wants_usage
        self.result = result
        self.content_chunks = 0
        result.status, result.outcome = 200, "ok"

    def _filter(self, block: bytes) -> bytes:
        """Look at complete events that mention usage or [DONE]; pass everything else as it is."""
        self.content_chunks += sum(block.count(c) for c in _CONTENT) - sum(block.count(e) for e in _EMPTY_CONTENT)
        if _USAGE not in block and _DONE not in block:
            return block
        kept = []
        for event in block.split(b"\n\n"):
            if not event:
                continue
            if event.startswith(_DONE):
                self.result.complete = True
            elif _USAGE in event and not any(n in event for n in _NULL_USAGE):
                payload = _event_json(event)
                if payload is not None:
                    prompt, completion = _usage_of(payload)
                    if prompt is not None or completion is not None:
                        self.result.prompt_tokens, self.result.completion_tokens = prompt, completion
                    if not self.client_wants_usage and payload.get("choices") == []:
                        continue  # the usage-only chunk the client did not ask for
            kept.append(event)
        return b"\n\n".join(kept) + b"\n\n" if kept else b""

    async def run(self, upstream: UpstreamResponse, response: web.StreamResponse) -> RelayResult:
        try:
            return await self._relay(upstream, response)
        finally:  # also when the client hangs up (cancellation) right after the last chunk
            if self.result.completion_tokens is None and self.content_chunks:
                # The engine sent no usage (llama-cpp-python streams one token per chunk): count them.
                self.result.completion_tokens = self.content_chunks

    async def _relay(self, upstream: UpstreamResponse, response: web.StreamResponse) -> RelayResult:
        pending = b""
        try:
            async for data in upstream.iter_chunks():
                pending += data
                if b"\r" in pending:  # CRLF events (sse-starlette); normalised after joining, so a split CR/LF is caught
                    pending = pending.replace(b"\r\n", b"\n")
                cut = pending.rfind(b"\n\n")
                if cut < 0:
                    continue
                block, pending = pending[: cut + 2], pending[cut + 2 :]
                out = self._filter(block)
                if out:
                    if self.result.first_byte_at is None:
                        self.result.first_byte_at = time.monotonic()
                    await response.write(out)
        except UpstreamBroken as exc:
            return await self._broken(response, str(exc))
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            self.result.outcome = "client_disconnected"
            return self.result
        if not self.result.complete:
            return await self._broken(response, "the engine closed the stream before it finished")
        return self.result

    async def _broken(self, response: web.StreamResponse, why: str) -> RelayResult:
        self.result.outcome = "upstream_died_mid_stream"
        self.result.status = 502
        try:
            await response.write(
                sse_error_event(f"The model's engine failed in the middle of the stream ({why}).") + _DONE + b"\n\n"
            )
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            self.result.outcome = "client_disconnected"
        return self.result


def _event_json(event: bytes) -> dict | None:
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            try:
                payload = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                return None
            return payload if isinstance(payload, dict) else None
    return None
