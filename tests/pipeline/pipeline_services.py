"""A real HTTP service for pipeline tests, in the test's event loop: it records what it was asked and
when, can hold requests until a sibling arrives (proof that two branches ran at once), fail on
purpose, or hang until the caller goes away (proof of cancellation)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from contextlib import asynccontextmanager

from aiohttp import web

from procs import free_port


class RecordingService:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.bodies: dict[str, list] = {}
        self.cancelled: list[str] = []
        self.arrived: dict[str, float] = {}
        self._barrier_count = 0
        self._barrier = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.calls[name] += 1
        body = await request.json()
        self.bodies.setdefault(name, []).append(body)
        self.arrived[name] = time.monotonic()
        try:
            if name.startswith("barrier"):
                self._barrier_count += 1
                if self._barrier_count >= 2:
                    self._barrier.set()
                await asyncio.wait_for(self._barrier.wait(), 20)  # a sequential run never gets past this
                return web.json_response({"documents": [{"id": name, "text": f"from {name}"}]})
            if name.startswith("flaky"):  # flaky-N: fails with 503 N times, then answers
                if self.calls[name] <= int(name.split("-")[1]):
                    return web.json_response({"error": {"message": "busy"}}, status=503)
                return web.json_response({"documents": [{"text": "after retries"}]})
            if name == "bad":
                return web.json_response({"error": {"message": "bad field"}}, status=400)
            if name == "slow":
                await asyncio.sleep(60)
                return web.json_response({"documents": []})
            if name == "answer":
                docs = body.get("docs") or body.get("documents") or []
                return web.json_response({"text": "answer: " + ", ".join(d["text"] for d in docs)})
            if name == "echo":
                return web.json_response({"documents": body.get("documents", [])})
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        return web.json_response({"error": "unknown"}, status=404)

    def at(self, name: str) -> str:
        return f"{self.url}/{name}"


@asynccontextmanager
async def http_service():
    service = RecordingService()
    app = web.Application()
    app.router.add_post("/{name}", service.handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    service.url = f"http://127.0.0.1:{port}"
    try:
        yield service
    finally:
        await runner.cleanup()


async def wait_for(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
