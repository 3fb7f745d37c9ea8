"""How the gateway answers what its HTTP server refuses: secret-free, one line, OpenAI's format.

A request the parser refuses (a bad header line, a bare LF, a folded header, a line too long) is
answered by the server before any handler runs. The server words the reason itself, never quoting
the client's bytes (an `Authorization` header with its secret would be among them); here it is
logged as one warning line and answered with an OpenAI-format 400 (the connection then closes).
"""

from __future__ import annotations

import logging

from flotilla.gateway.errors import error_body
from flotilla.httpserver import Request, Response

log = logging.getLogger("flotilla.gateway.protocol")


def protocol_error(remote: str | None, reason: str) -> Response:
    log.warning(
        "rejected a request the HTTP parser refused",
        extra={"fields": {"remote": remote, "status": 400, "reason": reason}},
    )
    body = error_body(f"Bad request: {reason}.", "invalid_request_error", "bad_http_request")
    return Response(status=400, body=body, content_type="application/json")


def internal_error(request: Request, exc: BaseException) -> Response:
    """A failure outside the app's own error mapping (a bug of ours): logged with its traceback."""
    log.error("internal error while answering %s %s", request.method, request.path, exc_info=exc)
    body = error_body("Internal gateway error.", "server_error", "internal_error")
    return Response(status=500, body=body, content_type="application/json")
