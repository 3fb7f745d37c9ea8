"""The pipeline's answer in OpenAI's chat format, whole or streamed, with its citations.

Citations (the chunks that reached the LLM: id, document, chunk index, score, a snippet, metadata)
travel in a top-level `citations` field: on the chat.completion, and on the first chunk of a
stream. The official openai client keeps unknown fields (`completion.citations`, or
`model_extra["citations"]`). Nodes skipped as optional are listed in `skipped_nodes`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from flotilla.httpserver import Request, Response, StreamResponse
from flotilla.pipeline.context import NodeRun
from flotilla.pipeline.executor import Result
from flotilla.pipeline.nodes.llm import LlmAnswer, LlmStream, event_json, payload_usage

_DONE = b"data: [DONE]\n\n"


@dataclass(slots=True)
class AnswerStats:
    """Filled in while the answer is written, so a client hanging up at any point leaves a true record."""

    status: int = 0
    outcome: str = "pending"  # ok | upstream_died_mid_stream | client_disconnected
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    first_byte_at: float | None = None
    complete: bool = False


def extras(result: Result) -> dict[str, Any]:
    fields: dict[str, Any] = {"citations": [c.citation() for c in result.citations]}
    if result.skipped:
        fields["skipped_nodes"] = [skipped_entry(r) for r in result.skipped]
    return fields


def skipped_entry(run: NodeRun) -> dict[str, Any]:
    return {"node": run.node, "kind": run.kind, "error": run.error}


def _completion_id(request_id: str) -> str:
    return "chatcmpl-" + request_id.replace("-", "")


def whole_answer(pipeline: str, result: Result, request_id: str, stats: AnswerStats) -> Response:
    answer = result.answer
    if isinstance(answer, LlmAnswer):
        payload = dict(answer.payload)
        stats.prompt_tokens, stats.completion_tokens = payload_usage(payload)
    else:
        payload = {
            "id": _completion_id(request_id), "object": "chat.completion", "created": int(time.time()),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": str(answer)}, "finish_reason": "stop"}],
        }
    payload["model"] = pipeline
    payload.update(extras(result))
    stats.status, stats.outcome, stats.complete = 200, "ok", True
    return Response(body=orjson.dumps(payload), content_type="application/json", headers={"x-request-id": request_id})


class StreamWriter:
    """Writes the LLM's stream to the client event by event: the model renamed, citations on the first chunk."""

    def __init__(self, pipeline: str, result: Result, request_id: str, wants_usage: bool, stats: AnswerStats) -> None:
        self.pipeline = pipeline
        self.result = result
        self.request_id = request_id
        self.wants_usage = wants_usage
        self.stats = stats
        self.first = True
        self.content_chunks = 0

    async def write(self, request: Request) -> StreamResponse:
        response = StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "x-request-id": self.request_id},
        )
        await response.prepare(request)
        self.stats.status, self.stats.outcome = 200, "ok"
        try:
            if isinstance(self.result.answer, LlmStream):
                await self._relay(self.result.answer, response)
            else:
                await self._text(str(self.result.answer), response)
            await response.write_eof()
        except ConnectionResetError:
            if not self.stats.complete:
                self.stats.outcome = "client_disconnected"
        finally:
            if self.stats.completion_tokens is None and self.content_chunks:
                self.stats.completion_tokens = self.content_chunks  # engines without stream usage: one token per chunk
        return response

    async def _send(self, response: StreamResponse, data: bytes) -> None:
        if self.stats.first_byte_at is None:
            self.stats.first_byte_at = time.monotonic()
        await response.write(data)

    def _event(self, payload: dict[str, Any]) -> bytes:
        payload["model"] = self.pipeline
        if self.first:
            payload.update(extras(self.result))
            self.first = False
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    async def _text(self, text: str, response: StreamResponse) -> None:
        base = {"id": _completion_id(self.request_id), "object": "chat.completion.chunk", "created": int(time.time())}
        opening = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]}
        closing = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self.content_chunks = 1 if text else 0
        self.stats.complete = True
        await self._send(response, self._event(opening) + self._event(closing) + _DONE)

    async def _relay(self, stream: LlmStream, response: StreamResponse) -> None:
        pending = stream.pending
        try:
            while True:
                pending = pending.replace(b"\r\n", b"\n")
                cut = pending.rfind(b"\n\n")
                if cut >= 0:
                    block, pending = pending[: cut + 2], pending[cut + 2 :]
                    out = self._filter(block)
                    if out:
                        await self._send(response, out)
                    if self.stats.complete:
                        return
                try:
                    pending += await anext(stream.rest)
                except StopAsyncIteration:
                    break
        except ConnectionResetError:
            raise
        except Exception as exc:  # the model's stream broke off
            await self._broken(response, str(exc) or type(exc).__name__)
            return
        if not self.stats.complete:
            await self._broken(response, "the model closed the stream before it finished")

    def _filter(self, block: bytes) -> bytes:
        out = []
        for event in block.split(b"\n\n"):
            if not event.strip():
                continue
            if event.startswith(b"data: [DONE]") or event.startswith(b"data:[DONE]"):
                self.stats.complete = True
                out.append(_DONE)
                continue
            payload = event_json(event)
            if payload is None:
                continue  # comments and keep-alives
            prompt, completion = payload_usage(payload)
            if prompt is not None or completion is not None:
                self.stats.prompt_tokens, self.stats.completion_tokens = prompt, completion
                if payload.get("choices") == [] and not self.wants_usage:
                    continue
            for choice in payload.get("choices") or []:
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if isinstance(delta, dict) and delta.get("content"):
                    self.content_chunks += 1
            out.append(self._event(payload))
        return b"".join(out)

    async def _broken(self, response: StreamResponse, why: str) -> None:
        self.stats.outcome, self.stats.status = "upstream_died_mid_stream", 502
        error = {"error": {"message": f"Pipeline '{self.pipeline}': the model's stream broke off ({why}).",
                           "type": "upstream_error", "param": None, "code": 502}}
        await response.write(b"data: " + orjson.dumps(error) + b"\n\n" + _DONE)
