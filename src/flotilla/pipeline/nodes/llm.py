"""`llm`: a chat model answers the question with the retrieved chunks in its system prompt.

Streamed requests stream from the model: the node returns once the model's first event has arrived
(its timeout covers that wait, queueing included) and leaves the open stream for the answer writer.
Nothing has reached the client before then, so a failed attempt may still be retried.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from flotilla.pipeline.calls import ModelResponse, post_json
from flotilla.pipeline.context import RequestContext
from flotilla.pipeline.documents import Chunk
from flotilla.pipeline.errors import CallFailed, failure_for_status
from flotilla.pipeline.nodes.base import Node

# Body fields that are the pipeline's, not the model's.
_NOT_FOR_THE_MODEL = ("model", "messages", "stream", "stream_options")


@dataclass
class LlmAnswer:
    """A whole chat.completion from the model."""

    payload: dict[str, Any]


@dataclass
class LlmStream:
    """The model's open event stream; `pending` holds what was read to see its first event, `rest` the remainder."""

    response: ModelResponse
    pending: bytes
    rest: AsyncIterator[bytes]


def context_text(chunks: list[Chunk], max_chars: int) -> str:
    parts, used = [], 0
    for number, chunk in enumerate(chunks, 1):
        part = f"[{number}] ({chunk.id})\n{chunk.text.strip()}"
        if used + len(part) > max_chars:
            part = part[: max(0, max_chars - used)]
        if not part:
            break
        parts.append(part)
        used += len(part) + 2
    return "\n\n".join(parts) if parts else "(no passages were found)"


def with_system_prompt(messages: list[dict[str, Any]], system: str) -> list[dict[str, Any]]:
    """One system message first (many chat templates take no second one): ours, then the client's."""
    if messages and isinstance(messages[0], dict) and messages[0].get("role") == "system":
        theirs = messages[0].get("content")
        if isinstance(theirs, str) and theirs.strip():
            system = f"{system}\n\n{theirs}"
        messages = messages[1:]
    return [{"role": "system", "content": system}, *messages]


class LlmNode(Node):
    kind = "llm"

    def request_body(self, inputs: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        documents = inputs.get("documents")
        messages = inputs["messages"]
        if documents is not None:
            system = self.spec.system_prompt.format(context=context_text(documents, self.spec.max_context_chars))
            messages = with_system_prompt(messages, system)
        body = {**self.spec.params}
        body.update({k: v for k, v in ctx.body.items() if k not in _NOT_FOR_THE_MODEL})
        body["messages"] = messages
        body["stream"] = ctx.stream
        return body

    async def run(self, inputs: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        what = f"chat model {self.spec.model!r}"
        body = self.request_body(inputs, ctx)
        if not ctx.stream:
            payload = await post_json(ctx.client, self.spec.model, "/v1/chat/completions", body, what)
            if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
                raise CallFailed(f"{what} answered no chat completion", retryable=False)
            return {"text": LlmAnswer(payload)}
        stack = contextlib.AsyncExitStack()
        try:
            response = await stack.enter_async_context(ctx.client.open(self.spec.model, "/v1/chat/completions", body))
            if response.status != 200:
                raise failure_for_status(response.status, await _read_quietly(response), what)
            chunks = response.iter_chunks()  # one iterator for the whole stream: it owns the connection
            stack.push_async_callback(chunks.aclose)
            pending = await _first_event(chunks, what)
        except BaseException:
            await stack.aclose()
            raise
        ctx.resources.push_async_callback(stack.aclose)  # released once the answer is written
        return {"text": LlmStream(response, pending, chunks)}


async def _read_quietly(response: ModelResponse) -> bytes:
    try:
        return await response.read()
    except Exception:
        return b""


async def _first_event(chunks: AsyncIterator[bytes], what: str) -> bytes:
    pending = b""
    try:
        async for data in chunks:
            pending += data
            if b"\n\n" in pending.replace(b"\r\n", b"\n"):
                return pending
    except Exception as exc:
        raise CallFailed(f"{what} broke off before its first token: {exc}", retryable=True) from None
    raise CallFailed(f"{what} ended its stream before its first token", retryable=True)


def payload_usage(payload: dict[str, Any]) -> tuple[int | None, int | None]:
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None, None
    return usage.get("prompt_tokens"), usage.get("completion_tokens")


def event_json(event: bytes) -> dict[str, Any] | None:
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            data = line[5:].strip()
            if data == b"[DONE]":
                return None
            try:
                payload = orjson.loads(data)
            except orjson.JSONDecodeError:
                return None
            return payload if isinstance(payload, dict) else None
    return None
