"""Errors in OpenAI's format: `{"error": {"message", "type", "param", "code"}}` with a fitting status."""

from __future__ import annotations

import orjson

from flotilla.httpserver import Response


class GatewayError(Exception):
    """An error the gateway itself answers with (never one relayed from an engine)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.code, self.param)

    def response(self, request_id: str | None = None) -> Response:
        headers = dict(self.headers)
        if request_id:
            headers["x-request-id"] = request_id
        return Response(status=self.status, body=self.body(), content_type="application/json", headers=headers)


def error_body(message: str, type: str, code: str | int | None = None, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type, "param": param, "code": code}})


def sse_error_event(message: str, type: str = "upstream_error", code: int | str | None = 502) -> bytes:
    """The event ending a stream that broke: OpenAI clients raise on an `error` key."""
    return b"data: " + error_body(message, type, code) + b"\n\n"


def unauthorized(message: str) -> GatewayError:
    return GatewayError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def bad_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, code="invalid_request", param=param)


def model_not_found(model: str, known: list[str]) -> GatewayError:
    return GatewayError(
        404,
        f"The model '{model}' does not exist. Known models: {', '.join(known) or '(none)'}.",
        code="model_not_found",
        param="model",
    )


def too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"Request body exceeds the limit of {limit} bytes.", code="request_too_large")


def queue_full(token_name: str, model: str, threshold: int, retry_after_s: int) -> GatewayError:
    return GatewayError(
        429,
        f"Too many queued requests for token '{token_name}' on model '{model}' "
        f"(at most {threshold} may wait). Retry after {retry_after_s} s.",
        type="rate_limit_exceeded",
        code="queue_threshold_exceeded",
        headers={"Retry-After": str(retry_after_s)},
    )


def queue_timeout(model: str, waited_s: float) -> GatewayError:
    return GatewayError(
        503,
        f"Model '{model}' is saturated: the request waited {waited_s:.1f} s in the queue without a free replica slot.",
        type="server_error",
        code="queue_timeout",
        headers={"Retry-After": "5"},
    )


def no_replica(model: str, detail: str) -> GatewayError:
    return GatewayError(
        503,
        f"No replica of model '{model}' is available: {detail}.",
        type="server_error",
        code="model_unavailable",
        headers={"Retry-After": "10"},
    )


def body_timeout(limit_s: float) -> GatewayError:
    return GatewayError(
        408, f"The request body did not arrive within {limit_s:g} s.", code="request_timeout",
        headers={"Connection": "close"},
    )


def undecodable_body(reason: str) -> GatewayError:
    return GatewayError(400, f"The request body could not be read: {reason}.", code="invalid_request_body",
                        headers={"Connection": "close"})
