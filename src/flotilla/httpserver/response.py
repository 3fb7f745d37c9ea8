"""Responses: a whole one (head and body in one write) and a streamed one (chunked, head with the first chunk)."""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from flotilla.httpserver.connection import HttpConnection
    from flotilla.httpserver.request import Request

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n" for s in HTTPStatus}
_date = [0, ""]


def _status_line(status: int) -> str:
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"invalid HTTP status {status}")
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} Status {status}\r\n"
    return line


def _date_line() -> str:
    """RFC 9110 asks origin servers for a Date header; formatted once a second."""
    now = int(time.time())
    if _date[0] != now:
        _date[0], _date[1] = now, f"Date: {formatdate(now, usegmt=True)}\r\n"
    return _date[1]


def head_bytes(
    status: int, content_type: str | None, headers: dict[str, str] | None, length: int | None, keep_alive: bool,
    chunked: bool = False,
) -> bytes:
    """A response head: Content-Length when `length` is given, else chunked framing when `chunked`."""
    parts = [_status_line(status), _date_line()]
    if content_type is not None:
        parts.append(f"Content-Type: {content_type}\r\n")
    if headers:
        for name, value in headers.items():
            if name != "Connection" and name != "connection":  # the connection decides it
                parts.append(f"{name}: {value}\r\n")
    if length is not None:
        parts.append(f"Content-Length: {length}\r\n")
    elif chunked:
        parts.append("Transfer-Encoding: chunked\r\n")
    parts.append("\r\n" if keep_alive else "Connection: close\r\n\r\n")
    return "".join(parts).encode("latin-1", "replace")


def wants_close(headers: dict[str, str] | None) -> bool:
    """A handler closes the connection after its answer with a `Connection: close` header."""
    if not headers:
        return False
    value = headers.get("Connection") or headers.get("connection")
    return value is not None and value.lower() == "close"


class Response:
    """A whole response. `content_type` may also come as a Content-Type header."""

    __slots__ = ("status", "body", "headers", "content_type")

    def __init__(
        self,
        *,
        status: int = 200,
        body: bytes | str = b"",
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
        text: str | None = None,
    ) -> None:
        if text is not None:
            body = text
            content_type = content_type or "text/plain; charset=utf-8"
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = headers
        self.content_type = content_type


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status=status, body=orjson.dumps(data), headers=headers, content_type="application/json")


class StreamResponse:
    """A response written piece by piece (server-sent events). Its head leaves with the first piece,
    in one write; `write` raises ConnectionResetError once the client has gone."""

    __slots__ = ("status", "headers", "content_type", "_conn", "_request", "started", "finished", "chunked", "keep")

    def __init__(
        self, *, status: int = 200, headers: dict[str, str] | None = None, content_type: str | None = None
    ) -> None:
        self.status = status
        self.headers = headers
        self.content_type = content_type
        self._conn: HttpConnection | None = None
        self._request: Request | None = None
        self.started = False  # the head has been written
        self.finished = False
        self.chunked = True
        self.keep = False

    @property
    def prepared(self) -> bool:
        return self._conn is not None

    async def prepare(self, request: Request) -> None:
        self._conn = request._conn
        self._request = request
        request._conn.stream = self

    async def write(self, data: bytes) -> None:
        if data:
            conn = self._conn
            conn.write_stream(self, data, False)
            if conn.write_paused:
                await conn.drain()

    async def write_eof(self, data: bytes = b"") -> None:
        if not self.finished:
            self._conn.write_stream(self, data, True)
