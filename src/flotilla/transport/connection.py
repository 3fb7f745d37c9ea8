"""One HTTP/1.1 client connection on llhttp (httptools): one exchange at a time, keep-alive.

The response is pushed to a sink as it is parsed: `on_head`, then `on_body` once per network read
(every body byte of that read, de-chunked, in one call, stamped with one `time.perf_counter()`),
then `on_complete`, or `on_failure` with a `TransportError` at any point. Sink methods are called
after the parser returns, never from inside it.

Timeouts are per stage. The first-byte timer runs from the write to the first byte of the body (or
the end of a bodiless answer): a server that flushes its head early (vLLM's streams do) and then
queues the request is still waiting for its first byte. The idle timer then bounds each silence
between two reads; it is re-armed lazily (one timer per silence, not one per read).
"""

from __future__ import annotations

import asyncio
import select
import time
from typing import TYPE_CHECKING, Protocol

import httptools

from flotilla.transport.errors import (
    BodyBroken,
    FirstByteTimeout,
    IdleTimeout,
    NoResponseError,
    ProtocolError,
    TransportError,
    WriteError,
)

if TYPE_CHECKING:
    from flotilla.transport.pool import ConnectionPool

#: A response head (status line and headers) larger than this is refused: it cannot be a real answer.
MAX_HEAD_BYTES = 64 * 1024

_perf = time.perf_counter


class ResponseSink(Protocol):
    """Receives one response as it arrives; `t` is the `time.perf_counter()` of the read."""

    def on_head(self, status: int, headers: dict[str, str], t: float) -> None: ...

    def on_body(self, data: bytes, t: float) -> None: ...

    def on_complete(self, t: float) -> None: ...

    def on_failure(self, error: TransportError, t: float) -> None: ...


class _HeadTooLarge(Exception):
    pass


class Connection(asyncio.Protocol):
    """Owned by a ConnectionPool: taken with `pool.acquire()`, given back by itself when a
    keep-alive response ends whole, closed otherwise."""

    def __init__(self, pool: "ConnectionPool") -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.closed = False
        self.reused = False  # it carried an exchange before the current one
        self.idle_since = 0.0  # perf_counter time it went back to the pool
        self._poll: select.poll | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._idle_timeout: float | None = None
        self._last_read = 0.0
        self._paused = False
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._headers: dict[str, str] = {}
        self._head_bytes = 0
        self._head_ready = False  # a final head was parsed and not yet handed to the sink
        self._head_seen = False  # a final head was handed over
        self._interim = False  # parsing a 1xx answer, which precedes the real one
        self._pieces: list[bytes] = []
        self._body_seen = False
        self._complete = False
        self._keep_alive = False
        self._close_delimited = False
        self._got_bytes = False

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._poll = select.poll()
            self._poll.register(sock.fileno(), select.POLLIN)

    def data_received(self, data: bytes) -> None:
        t = _perf()
        sink = self.sink
        if sink is None:  # bytes while no request is outstanding: not a well-behaved HTTP/1.1 server
            self.close()
            return
        self._got_bytes = True
        self._last_read = t
        failure: TransportError | None = None
        try:
            self._parser.feed_data(data)
        except _HeadTooLarge:
            failure = ProtocolError(f"the response head is larger than {MAX_HEAD_BYTES} bytes")
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                failure = ProtocolError(f"the response head is larger than {MAX_HEAD_BYTES} bytes")
            else:
                raise
        except httptools.HttpParserUpgrade:
            failure = ProtocolError("the server switched protocols (101), which was not asked for")
        except httptools.HttpParserError as exc:
            if self._complete:  # the answer was whole; what followed it was junk: do not reuse the connection
                self._keep_alive = False
            else:
                failure = ProtocolError(f"invalid HTTP response: {exc}")
        if self._head_ready:
            self._head_ready = False
            self._head_seen = True
            sink.on_head(self._status, self._headers, t)
        pieces = self._pieces
        if pieces:
            sink.on_body(pieces[0] if len(pieces) == 1 else b"".join(pieces), t)
            pieces.clear()
        if failure is not None:
            failure.response_started = self._head_seen
            self._fail(failure, t)
        elif self._complete:
            self._finish(t)
        elif self._timer is None and self._idle_timeout is not None and (self._body_seen or not self._head_seen):
            self._arm_idle(self._idle_timeout)

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost decides what the end means

    def connection_lost(self, exc: Exception | None) -> None:
        t = _perf()
        self.closed = True
        self._cancel_timer()
        self.pool.forget(self)
        if self.sink is None:
            return
        if exc is None and self._close_delimited and self._head_seen:
            self._finish(t)  # a body without length ends when the server closes cleanly
            return
        reason = f"{type(exc).__name__}: {exc}" if exc else "closed by the server"
        if not self._got_bytes:
            if isinstance(exc, BrokenPipeError):
                error: TransportError = WriteError(f"the connection broke while sending the request ({reason})")
            else:
                error = NoResponseError(f"the connection ended before any answer ({reason})")
        elif not self._head_seen:
            error = NoResponseError(f"the connection ended inside the response head ({reason})")
        else:
            what = "reset" if exc is not None else "closed"
            error = BodyBroken(f"the connection was {what} before the response ended ({reason})", response_started=True)
        self._fail(error, t)

    def pause_writing(self) -> None:  # large request bodies: the transport buffers them, nothing to do
        pass

    def resume_writing(self) -> None:
        pass

    # --- llhttp callbacks (inside feed_data: record only, never call the sink) ----------------

    def on_status(self, status: bytes) -> None:
        self._head_bytes += len(status)
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLarge
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self._headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue, 103 Early Hints: the final answer follows
            self._interim = True
            self._headers = {}
            self._head_bytes = 0
            return
        headers = self._headers
        self._status = status
        self._keep_alive = self._parser.should_keep_alive()
        self._close_delimited = (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
            and status not in (204, 304)
        )
        self._head_ready = True

    def on_body(self, body: bytes) -> None:
        if not self._body_seen:
            self._body_seen = True
            self._cancel_timer()  # the first-byte timer; the idle timer takes over
        self._pieces.append(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._complete = True

    # --- the caller's side -----------------------------------------------------------------

    def send(
        self, request: bytes, sink: ResponseSink, first_byte_timeout: float | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        """Write `request`; the answer goes to `sink`. The caller took this connection from the pool."""
        assert self.sink is None, "one exchange at a time"
        self._reset()
        self.sink = sink
        self._idle_timeout = idle_timeout
        transport = self.transport
        if transport is None or transport.is_closing() or self.closed:
            self._fail(WriteError("the connection closed before the request could be sent"), _perf())
            return
        if first_byte_timeout is not None:
            self._timer = self._loop.call_later(first_byte_timeout, self._first_byte_expired, first_byte_timeout)
        transport.write(request)

    def set_idle_timeout(self, seconds: float | None) -> None:
        """Change the idle limit of the exchange under way (e.g. a short grace after an end marker)."""
        self._idle_timeout = seconds
        if self._body_seen and self.sink is not None:
            self._cancel_timer()
            if seconds is not None:
                self._arm_idle(seconds)

    def pause_reading(self) -> None:
        """The consumer is behind: stop reading (the server's writes then wait); silence is not idleness."""
        if not self._paused and self.transport is not None and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            self._last_read = _perf()
            if self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def alive(self) -> bool:
        """An idle connection still usable: open, and nothing to read. A readable idle socket holds
        an EOF, a reset or bytes nobody asked for; any of them makes it unusable. This check runs
        before the request is written, so a stale connection is never an ambiguous failure."""
        if self.closed or self.transport is None or self.transport.is_closing():
            return False
        return not (self._poll is not None and self._poll.poll(0))

    def discard(self) -> None:
        """The caller gave up on the exchange under way (or never started one): close without a report."""
        self.sink = None
        self.close()

    def abort(self, error: TransportError, sink: ResponseSink | None = None) -> None:
        """End the exchange under way with `error` (e.g. the caller's own deadline). With `sink`,
        only if that exchange is still the one under way (a late timer must not end the next one)."""
        if sink is not None and self.sink is not sink:
            return
        error.response_started = self._head_seen
        self._fail(error, _perf())

    def close(self) -> None:
        self._cancel_timer()
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            self.pool.forget(self)

    # --- internals -------------------------------------------------------------------------

    def _finish(self, t: float) -> None:
        sink = self.sink
        self.sink = None
        self._cancel_timer()
        if self._paused:  # the consumer paused in the read that completed the answer
            self._paused = False
            if self.transport is not None and not self.closed:
                self.transport.resume_reading()
        if self._keep_alive and not self.closed:
            self.reused = True
            self.idle_since = t
            self.pool.release(self)
        else:
            self.close()
        if sink is not None:
            sink.on_complete(t)

    def _fail(self, error: TransportError, t: float) -> None:
        sink = self.sink
        self.sink = None
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()  # no lingering: the server must see that the exchange ended
            self.pool.forget(self)
        self._cancel_timer()
        if sink is not None:
            sink.on_failure(error, t)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm_idle(self, seconds: float) -> None:
        self._timer = self._loop.call_later(seconds, self._idle_check)

    def _first_byte_expired(self, seconds: float) -> None:
        self._timer = None
        if self.sink is not None:
            self.abort(FirstByteTimeout(f"no answer within the first-byte timeout of {seconds:g} s"))

    def _idle_check(self) -> None:
        self._timer = None
        limit = self._idle_timeout
        if self.sink is None or limit is None:
            return
        silent = 0.0 if self._paused else _perf() - self._last_read
        if silent < limit:
            self._arm_idle(limit - silent)
            return
        self.abort(IdleTimeout(f"the response stalled: nothing arrived for {limit:g} s"))
