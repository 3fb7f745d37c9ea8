"""A lean HTTP/1.1 server on llhttp (httptools) for the gateway: one asyncio Protocol per connection.

It does what the gateway needs and no more, at a fraction of aiohttp's cost per request: keep-alive
and pipelined requests answered in order, Content-Length and chunked bodies both ways, a body size
limit, gzip/deflate request bodies, 100-continue, flow control, a handler cancelled when its client
hangs up, idle keep-alive connections closed, and a drain that lets running requests finish.

    request.py     a parsed request and its body
    response.py    whole and streamed responses
    router.py      path and method to handler; 404 and 405
    connection.py  the per-connection protocol: parsing, sequencing, writing
    server.py      listening, connection bookkeeping, keep-alive sweep, shutdown
"""

from flotilla.httpserver.request import BodyError, BodyTooLarge, Headers, Request
from flotilla.httpserver.response import Response, StreamResponse, json_response
from flotilla.httpserver.router import MethodNotAllowed, NotFound, Router
from flotilla.httpserver.server import HttpServer, ProtocolErrorHook

__all__ = [
    "BodyError",
    "BodyTooLarge",
    "Headers",
    "HttpServer",
    "MethodNotAllowed",
    "NotFound",
    "ProtocolErrorHook",
    "Request",
    "Response",
    "Router",
    "StreamResponse",
    "json_response",
]
