"""A parsed HTTP request and its body, as the connection fills it in.

The body is buffered up to the server's limit (beyond it the bytes are dropped and `read()` raises
BodyTooLarge), or, for multipart forms, streamed through aiohttp's StreamReader and MultipartReader
(their caps are the reader's: see pipeline/ingest/form.py). A request whose body has fully arrived
is read without suspending, which is the common case: head and body in one segment.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

if TYPE_CHECKING:
    from flotilla.httpserver.connection import HttpConnection


class BodyError(Exception):
    """The body could not be read: malformed chunked framing, a Content-Encoding that does not decode,
    or the connection closed first. The message names the problem, never the client's bytes."""


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the body exceeds {limit} bytes")
        self.limit = limit


class Headers(dict):
    """Request headers, names lower-cased; lookups take any case. The first of repeated names wins."""

    __slots__ = ()

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name.lower() if isinstance(name, str) else name)


class Request:
    """One request on a connection. `match_info` holds the router's path parameters."""

    __slots__ = (
        "method", "path", "query_string", "headers", "version", "keep_alive", "match_info",
        "_conn", "_chunks", "_size", "_max_body", "_complete", "_waiter", "_error", "_too_large",
        "_body", "_stream", "_expect_continue", "_query",
    )

    def __init__(
        self, conn: HttpConnection, method: str, path: str, query_string: str, headers: Headers,
        version: str, keep_alive: bool, max_body: int,
    ) -> None:
        self._conn = conn
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.version = version
        self.keep_alive = keep_alive
        self.match_info: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._size = 0
        self._max_body = max_body
        self._complete = False
        self._waiter: asyncio.Future[None] | None = None
        self._error: str | None = None
        self._too_large = False
        self._body: bytes | None = None
        self._stream = None  # aiohttp StreamReader, once multipart() was called
        self._expect_continue = dict.get(headers, "expect", "").lower() == "100-continue"
        self._query: dict[str, str] | None = None

    # --- what handlers read -------------------------------------------------------------------

    @property
    def remote(self) -> str | None:
        return self._conn.remote

    @property
    def content_length(self) -> int | None:
        value = dict.get(self.headers, "content-length")
        return int(value) if value is not None else None  # llhttp accepted only digits

    @property
    def content_type(self) -> str:
        value = dict.get(self.headers, "content-type")
        if not value:
            return "application/octet-stream"
        return value.partition(";")[0].strip().lower()

    @property
    def can_read_body(self) -> bool:
        return self._size > 0 or not self._complete

    @property
    def body_complete(self) -> bool:
        """The whole body has arrived: `read()` will not wait."""
        return self._complete

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            query: dict[str, str] = {}
            for key, value in parse_qsl(self.query_string, keep_blank_values=True):
                query.setdefault(key, value)
            self._query = query
        return self._query

    @property
    def readable_now(self) -> bool:
        """`read_now()` may be called: the body is whole, within the limit, and not encoded."""
        return (
            self._complete and self._error is None and not self._too_large and self._stream is None
            and (self._body is not None or dict.get(self.headers, "content-encoding") is None)
        )

    def read_now(self) -> bytes:
        """The body, without suspending, when `readable_now`."""
        if self._body is None:
            assert self.readable_now, "read_now() needs a whole, unencoded body"
            chunks = self._chunks
            self._body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self._chunks = []
        return self._body

    async def read(self) -> bytes:
        """The whole body, decoded from gzip or deflate when so sent."""
        if self._body is None:
            if not self._complete:
                await self._wait()
            if self._error is not None:
                raise BodyError(self._error)
            if self._too_large:
                raise BodyTooLarge(self._max_body)
            chunks = self._chunks
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            encoding = dict.get(self.headers, "content-encoding")
            if encoding is not None:
                body = decode_body(body, encoding, self._max_body)
            self._body = body
            self._chunks = []
        return self._body

    async def multipart(self):
        """An aiohttp MultipartReader over the body as it arrives (not buffered whole)."""
        from aiohttp import MultipartReader, StreamReader
        from multidict import CIMultiDict

        if self._too_large:
            raise BodyTooLarge(self._max_body)
        if self._expect_continue:
            self._conn.send_continue(self)
        stream = StreamReader(self._conn.read_flow, 2**16, loop=self._conn.loop)
        for chunk in self._chunks:
            stream.feed_data(chunk)
        self._chunks = []
        if self._error is not None:
            stream.set_exception(BodyError(self._error))
        elif self._complete:
            stream.feed_eof()
        else:
            self._stream = stream
        return MultipartReader(CIMultiDict(self.headers), stream)

    async def _wait(self) -> None:
        if self._expect_continue:
            self._conn.send_continue(self)
        self._waiter = self._conn.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    # --- what the connection calls ------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._stream is not None:
            self._stream.feed_data(data)
            return
        size = self._size + len(data)
        self._size = size
        if size > self._max_body:
            self._too_large = True
            self._chunks = []
        else:
            self._chunks.append(data)

    def discard(self) -> None:
        """The answer is out: whatever more of the body arrives is dropped."""
        self._stream = None
        self._chunks = []
        self._max_body = -1

    def finish(self, error: str | None = None) -> None:
        """The body ended (or broke off with `error`)."""
        if self._complete:
            return
        self._complete = True
        self._error = error
        stream = self._stream
        if stream is not None:
            if error is None:
                stream.feed_eof()
            else:
                stream.set_exception(BodyError(error))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def decode_body(body: bytes, encoding: str, limit: int) -> bytes:
    """A gzip or deflate body decoded, never to more than `limit` bytes (a small body may inflate hugely)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        # Some clients send raw deflate under this name; a zlib stream starts with method 8 in its low bits.
        wbits = zlib.MAX_WBITS if body[:1] and body[0] & 0x0F == 8 else -zlib.MAX_WBITS
    else:
        raise BodyError("unsupported Content-Encoding (gzip and deflate are accepted)")
    decoder = zlib.decompressobj(wbits)
    try:
        out = decoder.decompress(body, limit + 1)
    except zlib.error:
        raise BodyError("the body does not decode with its Content-Encoding") from None
    if len(out) > limit:
        raise BodyTooLarge(limit)
    if not decoder.eof:
        raise BodyError("the body does not decode with its Content-Encoding (it is cut short)")
    return out


def split_target(target: bytes) -> tuple[str, str]:
    """(path, query) of a request target; the path percent-decoded as routes expect it."""
    if target[:1] != b"/":
        if target == b"*":
            return "*", ""
        from httptools import parse_url  # absolute form: http://host/path?query

        url = parse_url(target)
        path_bytes, query_bytes = url.path or b"/", url.query or b""
        path, query = path_bytes.decode("utf-8", "surrogateescape"), query_bytes.decode("utf-8", "surrogateescape")
    else:
        text = target.decode("utf-8", "surrogateescape")
        path, _, query = text.partition("?")
        path = path.partition("#")[0]
    if "%" in path:
        path = unquote(path, errors="surrogateescape")
    return path, query
