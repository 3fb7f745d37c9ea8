"""`http`: any JSON service. It receives its inputs as one JSON object and answers its outputs as one.

Documents travel as lists of {id, document, chunk, text, score, metadata} objects (strings are
accepted back as documents too); vectors as lists of numbers; messages as OpenAI chat messages.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from flotilla.pipeline.calls import aiohttp_post
from flotilla.pipeline.context import RequestContext
from flotilla.pipeline.documents import Chunk
from flotilla.pipeline.errors import CallFailed, failure_for_status
from flotilla.pipeline.nodes.base import Node


def to_json(value: Any) -> Any:
    if isinstance(value, list) and value and isinstance(value[0], Chunk):
        return [c.as_json() for c in value]
    return value


def from_json(name: str, kind: str, value: Any, what: str) -> Any:
    def wrong(expected: str) -> CallFailed:
        return CallFailed(f"{what} answered `{name}` that is not {expected}", retryable=False)

    if kind == "text":
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if kind == "vector":
        if not isinstance(value, list) or not value or not all(isinstance(x, (int, float)) for x in value):
            raise wrong("a list of numbers")
        return value
    if kind == "documents":
        if not isinstance(value, list):
            raise wrong("a list of documents")
        try:
            return [Chunk.from_json(item, i) for i, item in enumerate(value)]
        except (ValueError, TypeError) as exc:
            raise CallFailed(f"{what} answered `{name}` with a bad document: {exc}", retryable=False) from None
    if kind == "messages":
        if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
            raise wrong("a list of messages")
        return value
    return value  # json: anything


class HttpNode(Node):
    kind = "http"

    def __init__(self, pipeline: str, name: str, spec: Any, session: aiohttp.ClientSession) -> None:
        super().__init__(pipeline, name, spec)
        self.session = session

    async def run(self, inputs: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        what = f"service {self.spec.url}"
        payload = {name: to_json(value) for name, value in inputs.items()}
        headers = {"X-Request-Id": ctx.request_id, **self.spec.headers} if ctx.request_id else dict(self.spec.headers)
        async with aiohttp_post(self.session, self.spec.url, payload, what, headers) as response:
            try:
                body = await response.read()
            except (aiohttp.ClientError, OSError) as exc:
                raise CallFailed(f"{what} broke off its answer: {exc}", retryable=True) from None
            if response.status >= 300:
                raise failure_for_status(response.status, body, what)
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise CallFailed(f"{what} answered with invalid JSON", retryable=False) from None
        if not isinstance(answer, dict):
            raise CallFailed(f"{what} answered JSON that is not an object", retryable=False)
        outputs = {}
        for name, kind in self.spec.outputs.items():
            if name not in answer:
                raise CallFailed(f"{what} answered without `{name}`", retryable=False)
            outputs[name] = from_json(name, kind, answer[name], what)
        return outputs
