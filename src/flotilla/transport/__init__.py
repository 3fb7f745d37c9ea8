"""HTTP/1.1 client transport shared by the gateway and the benchmark (llhttp via httptools).

Layers: `origin` (URL → host, port, Host header), `connection` (one keep-alive connection and its
parser, pushing a response into a sink), `pool` (idle connections per origin, checked before
reuse), `client` (awaitable requests for the gateway), `sse` (server-sent events), `errors` (what
failed, and whether a retry is safe). Imports nothing from the rest of Flotilla.
"""

from flotilla.transport.client import HttpClient, Response, Timeouts
from flotilla.transport.connection import Connection, ResponseSink
from flotilla.transport.errors import (
    BodyBroken,
    ConnectError,
    FirstByteTimeout,
    IdleTimeout,
    NoResponseError,
    ProtocolError,
    TotalTimeout,
    TransportError,
    WriteError,
)
from flotilla.transport.origin import Origin
from flotilla.transport.pool import ConnectionPool

__all__ = [
    "BodyBroken", "ConnectError", "Connection", "ConnectionPool", "FirstByteTimeout", "HttpClient", "IdleTimeout",
    "NoResponseError", "Origin", "ProtocolError", "Response", "ResponseSink", "Timeouts", "TotalTimeout",
    "TransportError", "WriteError",
]
