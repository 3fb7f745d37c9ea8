"""Listening, the set of open connections, the keep-alive sweep, and a stop in steps (see gateway/serve.py)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from flotilla.httpserver.connection import HttpConnection
from flotilla.httpserver.request import Request
from flotilla.httpserver.response import Response

log = logging.getLogger("flotilla.httpserver")


class ProtocolErrorHook(Protocol):
    def __call__(self, remote: str | None, reason: str) -> Response:
        """The 400 for a request the parser refused (and its log line); `reason` never quotes the client."""
        ...


def _plain_protocol_error(remote: str | None, reason: str) -> Response:
    return Response(status=400, text=f"Bad request: {reason}.")


def _plain_internal_error(request: Request, exc: BaseException) -> Response:
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return Response(status=500, text="Internal server error.")


class HttpServer:
    """Serves `handler(request) -> Response | StreamResponse` on one listening socket."""

    def __init__(
        self,
        handler: Callable[[Request], Awaitable[Any]],
        *,
        max_body_bytes: int,
        keepalive_timeout_s: float = 75.0,
        protocol_error: ProtocolErrorHook = _plain_protocol_error,
        internal_error: Callable[[Request, BaseException], Response] = _plain_internal_error,
    ) -> None:
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.keepalive_timeout_s = keepalive_timeout_s
        self.protocol_error = protocol_error
        self.internal_error = internal_error
        self.connections: set[HttpConnection] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self, host: str, port: int, *, backlog: int = 128) -> None:
        self.loop = asyncio.get_running_loop()
        self._listener = await self.loop.create_server(
            lambda: HttpConnection(self), host, port, backlog=backlog, reuse_address=True,
        )
        self._schedule_sweep()

    @property
    def port(self) -> int:
        return self._listener.sockets[0].getsockname()[1]

    @property
    def sockets(self) -> list[socket.socket]:
        return list(self._listener.sockets) if self._listener is not None else []

    def _schedule_sweep(self) -> None:
        # One timer for all connections instead of one per request: idle ones close within a few
        # seconds of the keep-alive timeout, and so does a client that never finishes its head.
        self._sweeper = self.loop.call_later(min(5.0, self.keepalive_timeout_s / 4), self._sweep)

    def _sweep(self) -> None:
        deadline = self.loop.time() - self.keepalive_timeout_s
        for conn in list(self.connections):
            if conn.idle_since is not None and conn.idle_since < deadline:
                conn.transport.close()
        self._schedule_sweep()

    @property
    def busy(self) -> int:
        """Connections answering a request now."""
        return sum(1 for c in self.connections if c.current is not None)

    def pre_shutdown(self) -> None:
        """Idle connections close now; busy ones close after their answer (`Connection: close`)."""
        for conn in list(self.connections):
            conn.close_if_idle()

    async def close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()

    async def shutdown(self, grace_s: float) -> None:
        """Close the listener, give running handlers `grace_s` to finish, cancel the rest, close everything."""
        await self.close_listener()
        if self._sweeper is not None:
            self._sweeper.cancel()
        tasks = [c.task for c in self.connections if c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=grace_s)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        await asyncio.sleep(0)  # let connection_lost callbacks run
