"""What can go wrong in a pipeline, and the OpenAI-format error each failure becomes.

A node's call fails in one of three ways: retryable (connect error, 429, 5xx, a body cut short),
final (any other answer, bad output), or rejected by the gateway's own admission (the caller's
queue threshold, a model with no replica): that one keeps its status (429, 503) so the caller sees
the same answer a direct call to the model would get.
"""

from __future__ import annotations

import orjson


class CallFailed(Exception):
    """A call to a model or service failed; `retryable` says whether another attempt may help."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status  # the service's HTTP status, when it answered


class CallRejected(Exception):
    """The gateway refused to queue the call (threshold, unavailable model): answered with its own status."""

    def __init__(self, status: int, message: str, code: str | None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers or {}


def failure_for_status(status: int, body: bytes, what: str) -> CallFailed:
    """A non-2xx answer: 429 and 5xx may pass on retry, anything else will not."""
    detail = _error_message(body)
    return CallFailed(f"{what} answered HTTP {status}{': ' + detail if detail else ''}",
                      retryable=status == 429 or status >= 500, status=status)


def _error_message(body: bytes) -> str:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"][:300]
        if isinstance(error, str):
            return error[:300]
    return ""


class PipelineError(Exception):
    """The error a pipeline request ends with, in OpenAI's format; `param` names the failing node."""

    def __init__(
        self, status: int, message: str, code: str, node: str | None = None, headers: dict[str, str] | None = None,
        type: str = "server_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.node = node
        self.headers = headers or {}
        self.type = type

    def body(self) -> bytes:
        return orjson.dumps({"error": {"message": self.message, "type": self.type, "param": self.node, "code": self.code}})


def bad_request(message: str, param: str | None = None) -> PipelineError:
    return PipelineError(400, message, "invalid_request", param, type="invalid_request_error")
