"""A lean HTTP/1.1 client for talking to engines (http or https): keep-alive pools per replica, streaming bodies.

Why not aiohttp's client: at the gateway's request rates it was the largest single cost on the
hot path (profiled with py-spy; see benchmarks/gateway_overhead.py). Engines speak plain
HTTP/1.1 with Content-Length or chunked bodies, which is all this client needs to understand.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit


class UpstreamError(Exception):
    """The exchange with the engine failed."""


class UpstreamUnreachable(UpstreamError):
    """Failed before the engine sent any byte of a response: safe to try another replica."""


class UpstreamBroken(UpstreamError):
    """The engine's response broke off after it had started."""


class _Protocol(asyncio.Protocol):
    """One connection; bytes arrive into a buffer that the response reader consumes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def more(self) -> None:
        """Wait until more bytes arrived or the connection ended."""
        if self.eof:
            raise ConnectionResetError("connection closed by the engine")
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    @property
    def usable(self) -> bool:
        return not self.eof and self.transport is not None and not self.transport.is_closing()


class UpstreamResponse:
    """Status and headers are read; the body is read with `read()` or `iter_chunks()`, then `release()`."""

    __slots__ = ("status", "headers", "_conn", "_pool", "_length", "_chunked", "_done", "_keep_alive", "_timer")

    def __init__(
        self, status: int, headers: dict[str, str], conn: _Protocol, pool: "_HostPool", timer: asyncio.TimerHandle
    ) -> None:
        self._timer = timer
        self.status = status
        self.headers = headers
        self._conn = conn
        self._pool = pool
        length = headers.get("content-length")
        self._length = int(length) if length is not None else None
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self._keep_alive = headers.get("connection", "").lower() != "close" and (self._length is not None or self._chunked)
        self._done = False

    async def read(self) -> bytes:
        parts = []
        async for chunk in self.iter_chunks():
            parts.append(chunk)
        return b"".join(parts)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (de-chunked), each piece as soon as it is complete."""
        conn = self._conn
        buf = conn.buffer
        try:
            if self._chunked:
                # Every chunk already here goes out together: one write downstream per read upstream,
                # not one per SSE event, when an engine sends several events at once.
                while True:
                    parts, pos, last = [], 0, False
                    while True:
                        end = buf.find(b"\r\n", pos)
                        if end < 0:
                            break
                        size = int(bytes(buf[pos:end]).split(b";", 1)[0], 16)
                        if len(buf) < end + 2 + size + 2:
                            break
                        if size == 0:  # trailers are not used by engines; expect the bare terminator
                            pos, last = end + 4, True
                            break
                        parts.append(bytes(buf[end + 2 : end + 2 + size]))
                        pos = end + 2 + size + 2
                    del buf[:pos]
                    if parts:
                        yield b"".join(parts)
                    if last:
                        break
                    if not parts:
                        await conn.more()
            elif self._length is not None:
                left = self._length
                while left:
                    if not buf:
                        await conn.more()
                    piece = bytes(buf[:left])
                    del buf[: len(piece)]
                    left -= len(piece)
                    yield piece
            else:  # body ends when the connection does
                while True:
                    if buf:
                        piece = bytes(buf)
                        buf.clear()
                        yield piece
                    if conn.eof:
                        break
                    try:
                        await conn.more()
                    except ConnectionResetError:
                        break
            self._done = True
        except ConnectionResetError as exc:
            raise UpstreamBroken(str(exc)) from None
        finally:
            self.release()

    def release(self) -> None:
        """Return the connection to the pool if the body was read whole, else close it."""
        conn, self._conn = self._conn, None  # type: ignore[assignment]
        if conn is None:
            return
        self._timer.cancel()
        if self._done and self._keep_alive and not conn.buffer and conn.usable:
            self._pool.put(conn)
        elif conn.transport is not None:
            conn.transport.close()

    async def __aenter__(self) -> "UpstreamResponse":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class _HostPool:
    def __init__(
        self, host: str, port: int, connect_timeout: float, ssl_context: ssl.SSLContext | None = None,
        max_idle: int = 256,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self.idle: deque[_Protocol] = deque()
        self.host_header = f"{host}:{port}".encode()

    def put(self, conn: _Protocol) -> None:
        if len(self.idle) < self.max_idle:
            self.idle.append(conn)
        elif conn.transport is not None:
            conn.transport.close()

    async def connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Protocol, self.host, self.port, ssl=self.ssl_context), self.connect_timeout
            )
        except (OSError, asyncio.TimeoutError) as exc:  # ssl.SSLError is an OSError
            raise UpstreamUnreachable(f"cannot connect to {self.host}:{self.port}: {exc or type(exc).__name__}") from None
        sock = conn.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def close(self) -> None:
        while self.idle:
            conn = self.idle.pop()
            if conn.transport is not None:
                conn.transport.close()


class UpstreamClient:
    """POSTs to engines over pooled keep-alive connections."""

    def __init__(
        self, connect_timeout: float = 3.0, read_timeout: float = 600.0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._ssl_context = ssl_context  # https engines; default: the system's trusted CAs
        self._pools: dict[str, tuple[_HostPool, str]] = {}

    def _pool(self, base_url: str) -> _HostPool:
        entry = self._pools.get(base_url)
        if entry is None:
            parts = urlsplit(base_url)
            if parts.scheme not in ("http", "https"):
                raise UpstreamUnreachable(f"{base_url}: engines are reached over http:// or https://")
            tls = parts.scheme == "https"
            if tls and self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            pool = _HostPool(
                parts.hostname or "127.0.0.1", parts.port or (443 if tls else 80), self.connect_timeout,
                self._ssl_context if tls else None,
            )
            entry = self._pools[base_url] = (pool, parts.path.rstrip("/"))
        return entry[0]

    async def post(self, base_url: str, path: str, body: bytes, headers: dict[str, str]) -> UpstreamResponse:
        pool = self._pool(base_url)
        prefix = self._pools[base_url][1]
        head = bytearray(b"POST " + (prefix + path).encode() + b" HTTP/1.1\r\nHost: " + pool.host_header)
        head += b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
        for name, value in headers.items():
            head += f"{name}: {value}\r\n".encode()
        head += b"\r\n"
        payload = bytes(head) + body

        # A pooled connection the engine closed meanwhile fails before any response byte: use a fresh one.
        while pool.idle:
            conn = pool.idle.pop()
            if not conn.usable:
                continue
            try:
                return await self._exchange(conn, pool, payload)
            except UpstreamUnreachable:
                continue
        return await self._exchange(await pool.connect(), pool, payload)

    async def _exchange(self, conn: _Protocol, pool: _HostPool, payload: bytes) -> UpstreamResponse:
        transport = conn.transport
        assert transport is not None
        # One timer bounds the whole exchange: aborting the transport ends any wait with an error.
        timer = asyncio.get_running_loop().call_later(self.read_timeout, transport.abort)
        transport.write(payload)
        buf = conn.buffer
        try:
            end = buf.find(b"\r\n\r\n")
            while end < 0:
                await conn.more()
                end = buf.find(b"\r\n\r\n")
        except ConnectionResetError:
            timer.cancel()
            transport.close()
            if buf:
                raise UpstreamBroken("the engine closed the connection inside the response headers") from None
            raise UpstreamUnreachable("the engine closed the connection before answering") from None
        except BaseException:  # cancelled: the client left
            timer.cancel()
            transport.close()
            raise
        head = bytes(buf[:end]).decode("latin-1")
        del buf[: end + 4]
        status_line, *lines = head.split("\r\n")
        try:
            status = int(status_line.split(" ", 2)[1])
        except (IndexError, ValueError):
            timer.cancel()
            transport.close()
            raise UpstreamBroken(f"not an HTTP response: {status_line[:80]!r}") from None
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return UpstreamResponse(status, headers, conn, pool, timer)

    async def close(self) -> None:
        for pool, _ in self._pools.values():
            pool.close()
        self._pools.clear()
