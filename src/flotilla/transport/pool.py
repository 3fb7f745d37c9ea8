"""Keep-alive connections to one origin: idle ones are reused only when provably still open."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque

from flotilla.transport.connection import Connection
from flotilla.transport.errors import ConnectError
from flotilla.transport.origin import Origin

#: Idle connections older than this are closed instead of reused. uvicorn (vLLM, SGLang,
#: llama-cpp-python) and cpp-httplib (llama.cpp's server) close idle keep-alive connections after
#: 5 s; a close racing our write would leave the request's fate unknown, so we let go first.
IDLE_EXPIRY_S = 4.0


class ConnectionPool:
    """Idle keep-alive connections to one origin; a new one is opened when none is usable."""

    def __init__(
        self,
        origin: Origin | str,
        connect_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        max_idle: int = 256,
        idle_expiry_s: float = IDLE_EXPIRY_S,
    ) -> None:
        self.origin = origin if isinstance(origin, Origin) else Origin.parse(origin)
        self.connect_timeout = connect_timeout
        self.ssl_context = (ssl_context or ssl.create_default_context()) if self.origin.tls else None
        self.max_idle = max_idle
        self.idle_expiry_s = idle_expiry_s
        self._idle: deque[Connection] = deque()
        self._all: set[Connection] = set()
        self.opened = 0  # connections opened so far
        self.stale = 0  # idle connections found closed (or expired) and dropped before use
        self._host_line = f"Host: {self.origin.host_header}\r\n"

    @property
    def host(self) -> str:
        return self.origin.host

    @property
    def port(self) -> int:
        return self.origin.port

    async def acquire(self) -> Connection:
        """An idle connection that is still open, else a new one (ConnectError when that fails).

        Nothing has been written when a stale connection is dropped here, so skipping it is safe;
        the request is written only once, on the connection returned."""
        idle = self._idle
        if idle:
            oldest_allowed = time.perf_counter() - self.idle_expiry_s
            while idle:
                conn = idle.pop()  # most recently used first: likeliest still open
                if conn.idle_since >= oldest_allowed and conn.alive():
                    return conn
                self.stale += 1
                conn.close()
        return await self._connect()

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        origin = self.origin
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: Connection(self), origin.host, origin.port, ssl=self.ssl_context,
                    server_hostname=origin.host if self.ssl_context else None,
                ),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise ConnectError(
                f"cannot connect to {origin.host_header}: no connection within {self.connect_timeout:g} s"
            ) from None
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            raise ConnectError(f"cannot connect to {origin.host_header}: {exc or type(exc).__name__}") from None
        sock = conn.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.opened += 1
        self._all.add(conn)
        return conn

    def release(self, conn: Connection) -> None:
        if len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    def forget(self, conn: Connection) -> None:
        self._all.discard(conn)  # a closed connection left in _idle is dropped by acquire()

    def build_request(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
        """The request's bytes: `path` goes under the origin's base path."""
        lines = [f"{method} {self.origin.base_path}{path} HTTP/1.1\r\n{self._host_line}"]
        for name, value in headers.items():
            if "\n" in value or "\r" in value:
                raise ValueError(f"header {name} contains a line break")
            lines.append(f"{name}: {value}\r\n")
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        return "".join(lines).encode("latin-1") + body  # one encode for the whole head

    def close(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._idle.clear()

    @property
    def open_connections(self) -> int:
        return len(self._all)

    @property
    def idle_connections(self) -> int:
        return len(self._idle)
