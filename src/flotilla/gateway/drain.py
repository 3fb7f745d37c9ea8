"""Draining: at stop, finish what is running, answer what waits, take nothing new.

`DrainGate` counts the requests being handled (`enter`/`leave`, around every request). After
`begin()`, readiness answers 503 (load balancers stop sending), and a request that still arrives
(on a kept-alive connection) gets 503 with Retry-After and `Connection: close` (`refusal`).
`wait_idle` returns once every running request (streams included) has finished, or when its bound
is reached.
"""

from __future__ import annotations

import asyncio

from flotilla.gateway.errors import GatewayError
from flotilla.httpserver import Response, json_response

READY_PATH = "/health/ready"
RETRY_AFTER_S = 1  # another gateway replica can take it at once


def shutting_down() -> GatewayError:
    return GatewayError(
        503,
        "The gateway is shutting down; retry the request (another replica will take it).",
        type="server_error",
        code="gateway_shutting_down",
        headers={"Retry-After": str(RETRY_AFTER_S), "Connection": "close"},
    )


class DrainGate:
    def __init__(self) -> None:
        self.draining = False
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def running(self) -> int:
        """Requests being handled now."""
        return self._running

    def begin(self) -> None:
        self.draining = True

    def refusal(self, path: str) -> Response | None:
        """While draining: the answer for a request on `path` that is not served any more, else None."""
        if path == READY_PATH:
            return json_response({"status": "draining"}, status=503)
        if path.startswith("/v1/"):
            return shutting_down().response()
        return None

    def enter(self) -> None:
        self._running += 1
        if self._running == 1:
            self._idle.clear()

    def leave(self) -> None:
        self._running -= 1
        if not self._running:
            self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no request is being handled; False when `timeout_s` passed first."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True
