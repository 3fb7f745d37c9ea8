"""What can go wrong in one HTTP exchange, by the stage it went wrong at.

The stage decides what a caller may do. Only a `ConnectError` proves the server never saw the
request, so only it may be retried elsewhere; from the first byte written on, the server may have
started on the request (a GPU generating an answer) and sending it again would do the work twice.
"""

from __future__ import annotations


class TransportError(Exception):
    """One exchange failed. `stage`: connect | write | first_byte | idle | body | protocol."""

    stage = "exchange"
    #: True only when the request provably never reached the server.
    retry_safe = False
    #: True once the response's head arrived (the server had answered).
    response_started = False

    def __init__(self, message: str, *, response_started: bool = False) -> None:
        super().__init__(message)
        self.response_started = response_started


class ConnectError(TransportError):
    """No connection: refused, unreachable, DNS, TLS handshake or the connect timeout."""

    stage = "connect"
    retry_safe = True


class WriteError(TransportError):
    """The connection failed while the request was being sent."""

    stage = "write"


class NoResponseError(TransportError):
    """The server closed or reset the connection after the request, before any byte of an answer."""

    stage = "first_byte"


class FirstByteTimeout(TransportError):
    """No answer within the first-byte timeout after the request was sent."""

    stage = "first_byte"


class IdleTimeout(TransportError):
    """The body stalled: nothing arrived for the idle timeout between two pieces."""

    stage = "idle"


class BodyBroken(TransportError):
    """The connection closed or was reset before the body was complete."""

    stage = "body"


class ProtocolError(TransportError):
    """The bytes are not a valid HTTP/1.1 response (or its head exceeds the size limit)."""

    stage = "protocol"


class TotalTimeout(TransportError):
    """The whole exchange did not finish within the caller's deadline (the benchmark's per-request limit)."""

    stage = "timeout"
