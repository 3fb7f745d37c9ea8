"""One client connection: llhttp parses, requests are answered one at a time in arrival order.

- A request's handler starts as soon as its head is parsed (a task per request); its body keeps
  arriving into the Request. Pipelined requests wait in `waiting`, and reading pauses meanwhile, so a
  client cannot queue without bound.
- The client hanging up cancels the running handler (a queued request leaves its queue, a stream
  releases its slot) and drops the waiting ones.
- A request the parser refuses gets one 400 (the server's hook words it, never quoting the bytes) and
  the connection closes. A body that breaks off surfaces as BodyError from `Request.read()`.
- An answer sent before its request's body was read whole: with `Connection: close` from the handler
  the connection closes at once; otherwise the rest of the body is read and dropped (for at most
  LINGER_S) so the client, still sending, gets to read the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from httptools import HttpParserError, HttpParserInvalidMethodError, HttpParserInvalidURLError, HttpParserUpgrade
from httptools import HttpRequestParser

from flotilla.httpserver.request import Headers, Request, split_target
from flotilla.httpserver.response import Response, StreamResponse, head_bytes, wants_close

if TYPE_CHECKING:
    from flotilla.httpserver.server import HttpServer

log = logging.getLogger("flotilla.httpserver")

MAX_LINE = 8190  # request target, and one header line (name + value): aiohttp's limits
MAX_HEAD = 65536  # a head still incomplete after this many bytes is refused
MAX_HEADERS = 128
LINGER_S = 10.0
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LAST_CHUNK = b"0\r\n\r\n"


class HeadTooLarge(Exception):
    pass


def describe_parser_error(exc: BaseException, in_body: bool) -> str:
    """Why the parser refused a request, in words that cannot carry the client's bytes."""
    if isinstance(exc, HeadTooLarge) or isinstance(exc.__context__, HeadTooLarge):
        return "request line or header line too long, or too many header lines"
    if isinstance(exc, HttpParserInvalidMethodError):
        return "malformed request line (unknown method, or TLS sent to a plain HTTP port)"
    if isinstance(exc, HttpParserInvalidURLError):
        return "malformed request target"
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    plain = reason.replace(" ", "").isalpha() and 3 <= len(reason) <= 80  # llhttp's own words, e.g. "Invalid header value char"
    if in_body:
        return f"malformed body ({reason})" if plain else "malformed body"
    return f"malformed request ({reason})" if plain else "malformed request"


class _ReadFlow:
    """What aiohttp's StreamReader (multipart bodies) expects of a protocol: pause and resume reading."""

    __slots__ = ("_conn", "_reading_paused")

    def __init__(self, conn: HttpConnection) -> None:
        self._conn = conn
        self._reading_paused = False

    @property
    def connected(self) -> bool:
        return not self._conn.lost

    def pause_reading(self) -> None:
        if not self._reading_paused and not self._conn.lost:
            self._reading_paused = True
            self._conn.transport.pause_reading()

    def resume_reading(self, resume_parser: bool = True) -> None:
        if self._reading_paused and not self._conn.lost:
            self._reading_paused = False
            self._conn.transport.resume_reading()


class HttpConnection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.remote: str | None = None
        self.parser = HttpRequestParser(self)
        self.parsing: Request | None = None  # the request whose body is arriving
        self.current: Request | None = None  # the request being answered
        self.task: asyncio.Task | None = None
        self.stream: StreamResponse | None = None  # the current request's streamed answer, once prepared
        self.waiting: deque[Request] = deque()  # pipelined requests, parsed, waiting their turn
        self.in_head = False
        self.head_bytes = 0
        self.header_count = 0
        self.url = b""
        self.headers: Headers | None = None
        self.broken = False  # the parser refused the stream: no further request is read
        self.owed_error: str | None = None  # a protocol error to answer once the running request is done
        self.closing = False  # close after the answer being written (drain)
        self.lost = False
        self.idle_since: float | None = None  # for the keep-alive sweep; None while a request is handled
        self.reading_paused = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.read_flow = _ReadFlow(self)
        self.lingering: Request | None = None
        self.linger_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.remote = peer[0] if isinstance(peer, tuple) else (str(peer) if peer else None)
        self.idle_since = self.loop.time()
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.server.connections.discard(self)
        if self.parsing is not None:
            self.parsing.finish("the connection closed before the body was complete")
            self.parsing = None
        self.waiting.clear()
        if self.task is not None:
            self.task.cancel()  # the client hung up: its handler stops (queue left, slot released)
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("the client closed the connection"))
        if self.linger_timer is not None:
            self.linger_timer.cancel()

    def data_received(self, data: bytes) -> None:
        if self.broken:
            return
        was_in_head = self.in_head
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade:
            # Upgrades (WebSocket, CONNECT) are not served: answer the request as a plain one, then close.
            self.broken = True
            self.closing = True
        except HttpParserError as exc:
            self._protocol_error(exc)
            return
        if self.in_head and was_in_head:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD:
                self._protocol_error(HeadTooLarge())

    def eof_received(self) -> bool | None:
        return None  # close the transport: a half-closed client gets no further answers

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- llhttp callbacks -----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_head = True
        self.head_bytes = 0
        self.header_count = 0
        self.url = b""
        self.headers = Headers()

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_LINE:
            raise HeadTooLarge()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        if len(name) + len(value) > MAX_LINE or self.header_count > MAX_HEADERS:
            raise HeadTooLarge()
        dict.setdefault(self.headers, name.decode("latin-1").lower(), value.decode("utf-8", "surrogateescape"))

    def on_headers_complete(self) -> None:
        self.in_head = False
        parser = self.parser
        path, query = split_target(self.url)
        request = Request(
            self, parser.get_method().decode("ascii"), path, query, self.headers, parser.get_http_version(),
            parser.should_keep_alive(), self.server.max_body_bytes,
        )
        self.parsing = request
        if self.lingering is not None:  # the client goes on after an answer that closes: not read
            self.broken = True
            return
        if self.current is None:
            self._start(request)
        else:
            self.waiting.append(request)
            if not self.reading_paused:
                self.reading_paused = True
                self.transport.pause_reading()

    def on_body(self, body: bytes) -> None:
        self.parsing.feed(body)

    def on_message_complete(self) -> None:
        request = self.parsing
        self.parsing = None
        request.finish()
        if request is self.lingering:
            self.transport.close()

    # --- answering ------------------------------------------------------------------------------

    def _start(self, request: Request) -> None:
        self.current = request
        self.idle_since = None
        # As loop.create_task does (no task factory is set), but named at creation: unnamed, each
        # Task formats a fresh "Task-N", and uvloop's create_task(name=...) renames it afterwards.
        self.task = asyncio.Task(self._run(request), loop=self.loop, name="flotilla-http-request")

    async def _run(self, request: Request) -> None:
        try:
            response = await self.server.handler(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            response = exc
        if self.lost:
            return
        if isinstance(response, Response):
            self._write_whole(request, response)
            return
        if isinstance(response, StreamResponse) and response._conn is self:
            if not response.finished:
                self.write_stream(response, b"", True)
            return
        stream = self.stream
        exc = response if isinstance(response, Exception) else TypeError(f"the handler returned {response!r}")
        answer = self.server.internal_error(request, exc)  # logs it
        if stream is not None and stream.started:
            # The answer has begun: it cannot turn into an error answer (no second head); it is cut.
            self.stream = None
            self.current = self.task = None
            self.transport.close()
            return
        self._write_whole(request, answer)

    def _keep_alive(self, request: Request, headers: dict[str, str] | None) -> bool:
        return (
            request.keep_alive and not self.closing and request._complete and request._error is None
            and not wants_close(headers) and (not self.broken or bool(self.waiting))
        )

    def _write_whole(self, request: Request, response: Response) -> None:
        headers = response.headers
        keep = self._keep_alive(request, headers)
        body = response.body
        head = head_bytes(response.status, response.content_type, headers, len(body), keep)
        if request.method == "HEAD" or not body:
            self.transport.write(head)
        elif len(body) < 65536:
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))
        self._done(request, keep, wants_close(headers))

    def write_stream(self, response: StreamResponse, data: bytes, last: bool) -> None:
        """A piece of a streamed answer (`last`: and its end). The head goes out with the first piece."""
        if self.lost or self.transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        request = response._request
        head_only = request.method == "HEAD"
        out = b""
        if not response.started:
            response.started = True
            # An HTTP/1.0 client gets the stream unframed and reads it to the end of the connection.
            response.chunked = chunked = request.version != "1.0" and not head_only
            response.keep = self._keep_alive(request, response.headers) and (chunked or head_only)
            out = head_bytes(response.status, response.content_type, response.headers, None, response.keep, chunked)
        if data and not head_only:
            out += (b"%x\r\n%b\r\n" % (len(data), data)) if response.chunked else data
        if last:
            response.finished = True
            if response.chunked:
                out += _LAST_CHUNK
        if out:
            self.transport.write(out)
        if last:
            self._done(request, response.keep, wants_close(response.headers))

    def send_continue(self, request: Request) -> None:
        if request._expect_continue and request is self.current and not self.lost:
            request._expect_continue = False
            self.transport.write(_CONTINUE)

    async def drain(self) -> None:
        if self.lost:
            raise ConnectionResetError("the client closed the connection")
        if self.write_paused:
            self.drain_waiter = self.loop.create_future()
            try:
                await self.drain_waiter
            finally:
                self.drain_waiter = None

    def _done(self, request: Request, keep: bool, close_now: bool) -> None:
        """The answer to `request` is written: next request, idle, or close."""
        self.current = None
        self.task = None
        self.stream = None
        if keep and self.waiting:
            self._start(self.waiting.popleft())
            if not self.waiting and self.reading_paused:
                self.reading_paused = False
                self.transport.resume_reading()
            return
        if self.owed_error is not None and not self.lost:
            self._write_protocol_error(self.owed_error)
            return
        if not keep:
            if request._complete or close_now or request._expect_continue:
                self.transport.close()
            else:
                self._linger(request)
            return
        self.idle_since = self.loop.time()
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()

    def _linger(self, request: Request) -> None:
        request.discard()
        self.lingering = request
        self.waiting.clear()
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()
        self.linger_timer = self.loop.call_later(LINGER_S, self.transport.close)

    # --- refusals -------------------------------------------------------------------------------

    def _protocol_error(self, exc: BaseException) -> None:
        self.broken = True
        request = self.parsing
        in_body = request is not None
        reason = describe_parser_error(exc, in_body)
        if in_body:
            # Its head was fine: the handler (running or waiting) learns it from read() and answers.
            self.parsing = None
            request.finish(reason)
            if request is self.lingering or (self.current is None and not self.waiting):
                self.transport.close()
            return
        if self.current is None:
            self._write_protocol_error(reason)
        else:
            self.owed_error = reason  # answered once the running request's answer is out

    def _write_protocol_error(self, reason: str) -> None:
        self.owed_error = None
        response = self.server.protocol_error(self.remote, reason)
        self.transport.write(head_bytes(response.status, response.content_type, response.headers, len(response.body), False) + response.body)
        self.transport.close()

    def close_if_idle(self) -> bool:
        """Close now if no request is in progress here (drain); True when closed."""
        if self.current is None and not self.in_head and self.parsing is None:
            self.transport.close()
            return True
        self.closing = True
        return False
