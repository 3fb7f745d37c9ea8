"""Errors the sim answers with, in vLLM's OpenAI-compatible shape.

vLLM: `{"error": {"message": ..., "type": "BadRequestError", "param": null, "code": 400}}`, where
`code` is the HTTP status and `type` names the error class.
"""

from __future__ import annotations

import orjson

_TYPE_BY_STATUS = {
    400: "BadRequestError",
    404: "NotFoundError",
    405: "MethodNotAllowed",
    500: "InternalServerError",
}


class SimError(Exception):
    """A request the sim refuses; the server turns it into an OpenAI error response."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param

    def body(self) -> bytes:
        return error_body(self.status, self.message, self.param)


def error_body(status: int, message: str, param: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": _TYPE_BY_STATUS.get(status, "InternalServerError"),
                "param": param,
                "code": status,
            }
        }
    )


def bad_request(message: str, param: str | None = None) -> SimError:
    return SimError(400, message, param)
