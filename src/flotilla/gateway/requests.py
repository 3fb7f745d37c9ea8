"""Reading a client's JSON body: what the gateway needs from it, and the body the engine gets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from flotilla.gateway.errors import bad_request

# A client may lower its priority (32-bit, as engines take it); the token's priority is the ceiling.
PRIORITY_MIN, PRIORITY_MAX = -(2**31), 2**31 - 1

EMBEDDINGS = "/v1/embeddings"
# Endpoint path -> field a body must carry besides `model`.
REQUIRED_FIELD = {
    "/v1/chat/completions": "messages",
    "/v1/completions": "prompt",
    EMBEDDINGS: "input",
}


@dataclass(slots=True)
class ParsedBody:
    payload: dict[str, Any]
    model: str
    stream: bool
    client_wants_usage: bool  # stream_options.include_usage as the client sent it
    requested_priority: int | None


def parse_body(path: str, raw: bytes) -> ParsedBody:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise bad_request("The request body must be a JSON object.")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("Missing required parameter: 'model'.", param="model")
    field = REQUIRED_FIELD[path]
    if field not in payload:
        raise bad_request(f"Missing required parameter: '{field}'.", param=field)
    if field == "messages" and (not isinstance(payload["messages"], list) or not payload["messages"]):
        raise bad_request("'messages' must be a non-empty array.", param="messages")
    # Embeddings are never streamed (OpenAI has no such option; engines ignore the field).
    stream, wants_usage = (False, False) if path == EMBEDDINGS else _stream_fields(payload)
    priority = payload.pop("priority", None)
    if priority is not None and (
        isinstance(priority, bool) or not isinstance(priority, int) or not PRIORITY_MIN <= priority <= PRIORITY_MAX
    ):
        raise bad_request(f"'priority' must be an integer from {PRIORITY_MIN} to {PRIORITY_MAX}.", param="priority")
    return ParsedBody(payload, model, stream, wants_usage, priority)


def _stream_fields(payload: dict[str, Any]) -> tuple[bool, bool]:
    """`stream`, and whether the client asked for the usage chunk (stream_options.include_usage)."""
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("'stream' must be a boolean.", param="stream")
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("'stream_options' must be an object.", param="stream_options")
    include_usage = options.get("include_usage") if options else None
    if include_usage is not None and not isinstance(include_usage, bool):
        raise bad_request("'stream_options.include_usage' must be a boolean.", param="stream_options")
    return stream, bool(include_usage)


def effective_priority(token_priority: int, requested: int | None) -> int:
    """A client may lower, never raise, its priority."""
    return token_priority if requested is None else min(token_priority, requested)


def upstream_body(parsed: ParsedBody, upstream_model: str, vllm_priority: int | None) -> bytes:
    """The body the engine receives: the client's, but for model name, priority and usage on streams."""
    payload = parsed.payload
    payload["model"] = upstream_model
    if parsed.stream:
        # Usage accounting needs the engine's counts; the extra chunk is dropped for clients that did not ask.
        options = dict(payload.get("stream_options") or {})
        options["include_usage"] = True
        payload["stream_options"] = options
    if vllm_priority is not None:
        payload["priority"] = vllm_priority
    try:
        return orjson.dumps(payload)
    except TypeError as exc:  # orjson reads nesting up to 1,024 levels deep but writes only 254
        raise bad_request(f"The request body nests JSON too deeply to be forwarded ({exc}).") from None


def vllm_priority_of(priority: int) -> int:
    """vLLM's priority scheduling serves lower values first; ours serves higher first."""
    return -priority
