"""How nodes reach models and services: the ModelClient interface, and a direct HTTP implementation.

Inside the gateway, `ModelClient.open` goes through the gateway's own dispatcher (gateway/pipelines.py):
the call waits in the model's queue with the caller's priority and threshold, like a direct request.
`HttpModelClient` calls fixed URLs instead, for running a pipeline outside a gateway (and its tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import aiohttp
import orjson

from flotilla.pipeline.errors import CallFailed, failure_for_status


class ModelResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes: ...

    def iter_chunks(self) -> AsyncIterator[bytes]: ...


class ModelClient(Protocol):
    def open(
        self, model: str, path: str, payload: dict[str, Any]
    ) -> contextlib.AbstractAsyncContextManager[ModelResponse]:
        """POST `payload` to `path` of a replica of `model`. Raises CallFailed (retryable when nothing
        reached a replica) or CallRejected (the gateway's admission said no)."""
        ...


async def post_json(client: ModelClient, model: str, path: str, payload: dict[str, Any], what: str) -> Any:
    """A buffered call: the JSON body of a 2xx answer; CallFailed otherwise."""
    async with client.open(model, path, payload) as response:
        try:
            body = await response.read()
        except Exception as exc:  # the answer broke off: as good as a 5xx
            raise CallFailed(f"{what} broke off its answer: {exc}", retryable=True) from None
        if response.status >= 300:
            raise failure_for_status(response.status, body, what)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise CallFailed(f"{what} answered with invalid JSON", retryable=False) from None


class _AiohttpResponse:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = response.headers

    async def read(self) -> bytes:
        return await self._response.read()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        async for data in self._response.content.iter_any():
            yield data


@contextlib.asynccontextmanager
async def aiohttp_post(
    session: aiohttp.ClientSession, url: str, payload: dict[str, Any], what: str, headers: Mapping[str, str] | None = None
) -> AsyncIterator[ModelResponse]:
    """POST JSON with aiohttp; connection failures become retryable CallFailed."""
    try:
        response = await session.post(
            url, data=orjson.dumps(payload), headers={"Content-Type": "application/json", **(headers or {})}
        )
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
        raise CallFailed(f"cannot reach {what}: {exc or type(exc).__name__}", retryable=True) from None
    try:
        yield _AiohttpResponse(response)
    finally:
        response.release() if response.content.at_eof() else response.close()


class HttpModelClient:
    """Models at fixed base URLs (one per model), without the gateway's queue."""

    def __init__(self, session: aiohttp.ClientSession, urls: Mapping[str, str]) -> None:
        self.session = session
        self.urls = dict(urls)

    def open(self, model: str, path: str, payload: dict[str, Any]):
        if model not in self.urls:
            raise CallFailed(f"no URL for model {model!r}", retryable=False)
        return aiohttp_post(self.session, self.urls[model].rstrip("/") + path, {**payload, "model": model}, f"model {model!r}")
