"""A stand-in OpenAI-compatible engine for what the sim will not do on purpose: report absurd
usage counts, and show the headers the gateway sent it. Used as an `external` engine; everything
else in these tests runs the real sim.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class StandIn:
    url: str = ""
    usage: dict[str, Any] = field(default_factory=lambda: {"prompt_tokens": 3, "completion_tokens": 2})
    received_headers: list[dict[str, str]] = field(default_factory=list)  # names in lower case


def _app(state: StandIn) -> web.Application:
    async def health(request: web.Request) -> web.Response:
        return web.json_response({})

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        state.received_headers.append({k.lower(): v for k, v in request.headers.items()})
        return web.json_response(
            {
                "id": "chatcmpl-standin",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": state.usage,
            }
        )

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", health)  # what the gateway probes on external engines
    app.router.add_post("/v1/chat/completions", chat)
    return app


@contextmanager
def standin_engine() -> Iterator[StandIn]:
    state = StandIn()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> web.AppRunner:
        runner = web.AppRunner(_app(state), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return runner

    runner = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield state
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def external_spec(url: str, **gateway_opts) -> dict:
    """spec_for() with the model served by the stand-in as an external engine."""
    from gwstack import spec_for

    return spec_for({"engine": "external", "urls": [url]}, **gateway_opts)
