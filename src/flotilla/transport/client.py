"""Awaitable requests over the connection pools: `post()` returns once the head is in, the body
is then read whole or piece by piece. The gateway's way of talking to engines."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

from flotilla.transport.connection import Connection
from flotilla.transport.errors import ConnectError, TransportError
from flotilla.transport.pool import ConnectionPool

#: A consumer further behind than this stops the connection's reading until it catches up, so a
#: slow client of a fast stream holds at most this much here (the server's own buffers hold the rest).
_HIGH_WATER = 256 * 1024


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 3.0
    first_byte: float | None = 600.0  # from the write to the first body byte
    idle: float | None = 120.0  # the longest silence between two pieces of a body


class Response:
    """One response as it arrives (a ResponseSink). Read the body with `read()` or `iter_chunks()`;
    `release()` (or `async with`) ends the exchange, closing the connection if the body was not read
    whole; a complete keep-alive response returns its connection to the pool by itself."""

    __slots__ = ("status", "headers", "_conn", "_pieces", "_buffered", "_done", "_error", "_waiter")

    def __init__(self, conn: Connection) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._conn: Connection | None = conn
        self._pieces: list[bytes] = []
        self._buffered = 0
        self._done = False
        self._error: TransportError | None = None
        self._waiter: asyncio.Future[None] | None = None

    # --- ResponseSink ------------------------------------------------------------------------

    def on_head(self, status: int, headers: dict[str, str], t: float) -> None:
        self.status = status
        self.headers = headers
        self._wake()

    def on_body(self, data: bytes, t: float) -> None:
        self._pieces.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and self._conn is not None:
            self._conn.pause_reading()
        self._wake()

    def on_complete(self, t: float) -> None:
        self._done = True
        self._conn = None  # back in the pool already, or closed
        self._wake()

    def on_failure(self, error: TransportError, t: float) -> None:
        self._error = error
        self._conn = None  # closed by the connection itself
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        # The connection's loop, not get_running_loop(): on Python 3.11 that costs a getpid() syscall.
        conn = self._conn
        self._waiter = (conn._loop if conn is not None else asyncio.get_running_loop()).create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    # --- the caller's side -------------------------------------------------------------------

    async def _head(self) -> None:
        while not self.status:
            if self._error is not None:
                raise self._error
            await self._wait()

    @property
    def complete(self) -> bool:
        """The whole body has arrived (some of it may still wait to be read)."""
        return self._done

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives: everything received by the time of each step, in one piece."""
        while True:
            pieces = self._pieces
            if pieces:
                data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                pieces.clear()
                self._buffered = 0
                if self._conn is not None:
                    self._conn.resume_reading()
                yield data
                continue
            if self._error is not None:
                raise self._error
            if self._done:
                return
            await self._wait()

    def read_now(self) -> bytes:
        """The rest of a complete body (see `complete`), without suspending."""
        assert self._done, "read_now() needs a complete response"
        pieces, self._pieces = self._pieces, []
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def read(self) -> bytes:
        if self._done:  # the usual non-streamed answer: it arrived with its head
            return self.read_now()
        parts = [chunk async for chunk in self.iter_chunks()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def set_idle_timeout(self, seconds: float | None) -> None:
        if self._conn is not None:
            self._conn.set_idle_timeout(seconds)

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:  # still under way: nobody will read the rest, so the connection goes
            conn.discard()

    async def __aenter__(self) -> "Response":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class HttpClient:
    """POSTs over keep-alive pools, one per base URL (http or https)."""

    def __init__(self, timeouts: Timeouts = Timeouts(), ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeouts = timeouts
        self._ssl_context = ssl_context  # https servers; default: the system's trusted CAs
        self._pools: dict[str, ConnectionPool] = {}

    def pool(self, base_url: str) -> ConnectionPool:
        pool = self._pools.get(base_url)
        if pool is None:
            try:
                pool = ConnectionPool(base_url, self.timeouts.connect, self._ssl_context)
            except ValueError as exc:
                raise ConnectError(str(exc)) from None
            self._ssl_context = self._ssl_context or pool.ssl_context
            self._pools[base_url] = pool
        return pool

    async def post(self, base_url: str, path: str, body: bytes, headers: dict[str, str]) -> Response:
        """Send once; return when the response's head is in. Raises TransportError: only a
        ConnectError (`retry_safe`) means the server never saw the request."""
        pool = self.pool(base_url)
        request = pool.build_request("POST", path, headers, body)
        conn = await pool.acquire()
        response = Response(conn)
        conn.send(request, response, self.timeouts.first_byte, self.timeouts.idle)
        try:
            await response._head()
        except BaseException:  # a transport error, or the caller was cancelled (the client left)
            response.release()
            raise
        return response

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
