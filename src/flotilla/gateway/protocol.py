"""The gateway's HTTP/1.1 connection handler: aiohttp's, but safe to face hostile clients.

aiohttp answers a request its parser rejects (a bad header line, a bare LF, a folded header, a body
that fails to decompress) itself, before any handler runs: it logs the exception at ERROR with a
traceback whose message quotes the offending raw line (an `Authorization` header with its secret
included) and answers text/plain with the same quote. Here such a request gets one log line at
warning level that names the problem but never quotes the client's bytes, and an OpenAI-format
error body.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    ContentEncodingError,
    ContentLengthError,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)
from aiohttp.web_protocol import RequestPayloadError

from flotilla.gateway.errors import error_body

log = logging.getLogger("flotilla.gateway.protocol")

# What each parser error means, in words that cannot carry a client's bytes. Most specific first.
_DESCRIPTIONS: tuple[tuple[type[BaseException], str], ...] = (
    (BadHttpMethod, "malformed request line (unknown method, or TLS sent to a plain HTTP port)"),
    (BadStatusLine, "malformed request line (HTTP/1.1 needs CRLF line endings)"),
    (LineTooLong, "request line or header line too long"),
    (InvalidHeader, "malformed header line"),
    (InvalidURLError, "malformed request target"),
    (ContentEncodingError, "the body does not decode with its Content-Encoding"),
    (TransferEncodingError, "malformed chunked body"),
    (ContentLengthError, "the body is shorter than its Content-Length"),
)
# llhttp's own reasons ("Invalid header value char", "Unexpected whitespace after header value")
# are kept when they are plain words: the quoted line follows them on later lines, never kept.
_PLAIN_REASON = re.compile(r"[A-Za-z][A-Za-z ]{2,79}")


def describe_protocol_error(exc: BaseException | None) -> str:
    """A description of why a request was refused that never includes what the client sent."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:  # RequestPayloadError wraps the parser's error
        seen.add(id(exc))
        for kind, text in _DESCRIPTIONS:
            if isinstance(exc, kind):
                return text
        if isinstance(exc, HttpProcessingError):
            first = (exc.message or "").strip().splitlines()
            reason = first[0].strip().rstrip(":") if first else ""
            return f"malformed request ({reason})" if _PLAIN_REASON.fullmatch(reason) else "malformed request"
        exc = exc.__cause__ or exc.__context__
    return "malformed request"


def _is_client_fault(exc: BaseException | None) -> bool:
    return isinstance(exc, (HttpProcessingError, RequestPayloadError))


class GatewayRequestHandler(web.RequestHandler):
    """aiohttp's connection handler with secret-free logging and OpenAI-format protocol errors."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # `message` is aiohttp's text for the client, and quotes the raw line: never used.
        remote = request.remote
        if status >= 500 and not _is_client_fault(exc):
            # A bug of ours, not a client's bad bytes; the middleware normally answers these first.
            log.error("internal error while answering %s", remote, exc_info=exc)
            body = error_body("Internal gateway error.", "server_error", "internal_error")
        else:
            reason = describe_protocol_error(exc)
            log.warning(
                "rejected a request the HTTP parser refused",
                extra={"fields": {"remote": remote, "status": status, "reason": reason}},
            )
            body = error_body(f"Bad request: {reason}.", "invalid_request_error", "bad_http_request")
        if request.writer.output_size > 0:
            raise ConnectionError("the response has started; the connection is closed instead")
        response = web.Response(status=status, body=body, content_type="application/json")
        response.force_close()
        return response

    def log_exception(self, *args, **kwargs) -> None:
        """aiohttp's other error logs: one line, no traceback, no exception text from a client's bytes."""
        exc = kwargs.get("exc_info")
        exc = exc if isinstance(exc, BaseException) else None
        if _is_client_fault(exc):
            log.warning(
                "connection closed after a malformed request body",
                extra={"fields": {"reason": describe_protocol_error(exc)}},
            )
        else:
            log.error("connection handler failed: %s", args[0] if args else "unhandled exception", exc_info=exc)


class GatewayServer(web.Server):
    """Makes GatewayRequestHandler connections; otherwise aiohttp's low-level server unchanged."""

    def __call__(self) -> web.RequestHandler:
        return GatewayRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayAppRunner(web.AppRunner):
    """An AppRunner whose server makes GatewayRequestHandler connections."""

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return GatewayServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            **plain._kwargs,
        )
