"""Relaying a replica's answer to the client: whole, or streamed event by event as it arrives."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import orjson

from flotilla.gateway.errors import sse_error_event
from flotilla.gateway.upstream import MID_STREAM, replica_at_fault, stream_failure_text
from flotilla.httpserver import Response as WholeResponse
from flotilla.httpserver import StreamResponse
from flotilla.transport import Response, TransportError
from flotilla.transport.sse import SSEReader, event_data, split_events

_DONE_DATA = b"[DONE]"
_DONE_EVENT = b"data: [DONE]"
_USAGE = b'"usage"'
_NULL_USAGE = (b'"usage":null', b'"usage": null')
# Non-empty token-bearing fields of chat and completion chunks, for engines that report no usage on
# streams; compact (orjson, vLLM) and spaced (json.dumps, llama-cpp-python) separators. One scan.
_CONTENT = re.compile(rb'"(?:content|text)": ?"[^"]')
# After [DONE] only the end of the body is awaited: an engine that then hangs is not waited for long.
AFTER_DONE_IDLE_S = 2.0


@dataclass(slots=True)
class RelayResult:
    """Filled in as the answer passes, so a client hanging up at any point leaves a true record."""

    status: int = 0
    outcome: str = "pending"  # ok | upstream_error | upstream_died_mid_stream | client_disconnected
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    first_byte_at: float | None = None  # monotonic time the first streamed chunk went out
    complete: bool = False  # the engine's whole answer was received
    replica_failed: bool = False  # the engine's connection broke (not a timeout): route around it


def _usage_of(payload: dict) -> tuple[int | None, int | None]:
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None, None
    return usage.get("prompt_tokens"), usage.get("completion_tokens")


async def relay_whole(upstream: Response, request_id: str, result: RelayResult) -> WholeResponse:
    """A non-streamed answer: the engine's status and body, unchanged. Raises TransportError if the
    body breaks off (nothing has been sent to the client yet, so the caller can still answer)."""
    return whole_response(upstream, await upstream.read(), request_id, result)


def whole_response(upstream: Response, body: bytes, request_id: str, result: RelayResult) -> WholeResponse:
    """The client's answer from the engine's whole body (`upstream` has been read to its end)."""
    result.status, result.outcome, result.complete = upstream.status, "ok" if upstream.status < 400 else "upstream_error", True
    if upstream.status == 200:
        try:
            result.prompt_tokens, result.completion_tokens = _usage_of(orjson.loads(body))
        except (orjson.JSONDecodeError, AttributeError):
            pass
    return WholeResponse(
        status=upstream.status,
        body=body,
        headers={"Content-Type": upstream.headers.get("content-type", "application/json"), "x-request-id": request_id},
    )


def _first_marked_event(block: bytes) -> int:
    """Where the first event carrying `[DONE]` or a usage that is not null starts in a block of
    whole events; -1 when there is none (the block passes as it is)."""
    end = block.find(_DONE_DATA)
    at = block.find(_USAGE)
    while at >= 0 and (end < 0 or at < end):
        after = at + len(_USAGE)
        if not (block.startswith(b":null", after) or block.startswith(b": null", after)):
            end = at
            break
        at = block.find(_USAGE, after)
    if end < 0:
        return -1
    cut = block.rfind(b"\n\n", 0, end)
    return cut + 2 if cut >= 0 else 0


class StreamRelay:
    """Relays an engine's server-sent events to the client.

    Usage is read from the engine's usage chunk (the gateway always asks for one); that chunk is
    passed on only if the client asked for it. The stream ends at the engine's `[DONE]`: whatever
    follows it (bytes, a reset) is not the client's concern. If the engine's stream breaks before
    `[DONE]`, the client's stream ends with an error event and `[DONE]` instead of just stopping.
    """

    def __init__(self, client_wants_usage: bool, result: RelayResult) -> None:
        self.client_wants_usage = client_wants_usage
        self.result = result
        self.content_chunks = 0
        result.status, result.outcome = 200, "ok"

    def _filter(self, block: bytes) -> bytes:
        """Whole events in, events for the client out: usage read (and dropped unless asked for),
        `[DONE]` noted; anything after `[DONE]` dropped. Blocks without either pass unchanged."""
        start = _first_marked_event(block)
        if start < 0:
            out = block
        elif start:  # the events before it pass unchanged: only the end of a stream needs reading
            rest = self._filter_events(block[start:])
            out = block[:start] + rest if rest else block[:start]
        else:
            out = self._filter_events(block)
        if self.result.completion_tokens is None:
            # Content chunks are counted only while no usage has come: they stand in for an engine
            # that reports none. The usual stream ends with its usage in the same block as the
            # tokens, whose scan is then skipped.
            self.content_chunks += len(_CONTENT.findall(block))
        return out

    def _filter_events(self, block: bytes) -> bytes:
        kept = []
        for event in split_events(block):
            data = event_data(event)
            if data is None:
                kept.append(event)
            elif data == _DONE_DATA:
                self.result.complete = True
                kept.append(_DONE_EVENT)  # `data:[DONE]` reaches the client in the usual spelling
                break
            elif data.find(_USAGE) >= 0 and data.find(_NULL_USAGE[0]) < 0 and data.find(_NULL_USAGE[1]) < 0:
                # (find, not `in`: bytes.__contains__ tries its operand as an int first and raises inside)
                try:
                    payload = orjson.loads(data)
                except orjson.JSONDecodeError:
                    payload = None
                if isinstance(payload, dict):
                    prompt, completion = _usage_of(payload)
                    if prompt is not None or completion is not None:
                        self.result.prompt_tokens, self.result.completion_tokens = prompt, completion
                    if not self.client_wants_usage and payload.get("choices") == []:
                        continue  # the usage-only chunk the client did not ask for
                kept.append(event)
            else:
                kept.append(event)
        return b"\n\n".join(kept) + b"\n\n" if kept else b""

    async def run(self, upstream: Response, response: StreamResponse) -> RelayResult:
        try:
            return await self._relay(upstream, response)
        finally:  # also when the client hangs up (cancellation) right after the last chunk
            if self.result.completion_tokens is None and self.content_chunks:
                # The engine sent no usage (an older server, one token per chunk): count them.
                self.result.completion_tokens = self.content_chunks

    async def _relay(self, upstream: Response, response: StreamResponse) -> RelayResult:
        reader = SSEReader()
        result = self.result
        try:
            try:
                async for data in upstream.iter_chunks():
                    if result.complete:
                        continue  # past [DONE]: read to the end so the connection can be reused
                    block = reader.feed(data)
                    if block and await self._send(response, self._filter(block)):
                        upstream.set_idle_timeout(AFTER_DONE_IDLE_S)
            except TransportError as exc:
                if result.complete:
                    return result  # the answer was whole; how the engine's connection ended does not matter
                result.replica_failed = replica_at_fault(exc)
                return await self._broken(response, stream_failure_text(exc))
            if not result.complete:
                await self._send(response, self._filter(reader.finish()))
        except ConnectionResetError:
            result.outcome = "client_disconnected"
            return result
        if not result.complete:
            return await self._broken(response, "the engine closed the stream before it finished")
        return result

    async def _send(self, response: StreamResponse, out: bytes) -> bool:
        """Write `out` to the client; True when it carried the end of the answer (which then ends the
        client's stream in the same write: the engine's own ending is not waited for)."""
        if out:
            if self.result.first_byte_at is None:
                self.result.first_byte_at = time.monotonic()
            if self.result.complete:
                await response.write_eof(out)
            else:
                await response.write(out)
        return self.result.complete

    async def _broken(self, response: StreamResponse, why: str) -> RelayResult:
        self.result.outcome = MID_STREAM
        self.result.status = 502
        try:
            await response.write(
                sse_error_event(f"The model's engine failed in the middle of the stream ({why}).") + _DONE_EVENT + b"\n\n"
            )
        except ConnectionResetError:
            self.result.outcome = "client_disconnected"
        return self.result
