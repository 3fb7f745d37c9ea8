"""Reading a client's JSON body: what the gateway needs from it, and the body the engine gets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from flotilla.gateway.errors import bad_request

# Endpoint path -> field a body must carry besides `model`.
REQUIRED_FIELD = {
    "/v1/chat/completions": "messages",
    "/v1/completions": "prompt",
    "/v1/embeddings": "input",
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
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("'stream' must be a boolean.", param="stream")
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("'stream_options' must be an object.", param="stream_options")
    wants_usage = bool(options and options.get("include_usage"))
    priority = payload.pop("priority", None)
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise bad_request("'priority' must be an integer.", param="priority")
    return ParsedBody(payload, model, stream, wants_usage, priority)


def effective_priority(token_priority: int, requested: int | None) -> int:
    """A client may lower, never raise, its priority."""
    return token_priority if requested is None else min(token_priority, requested)


# Engines that know only the older `max_tokens`: llama-cpp-python's server ignores
# `max_completion_tokens`, which current clients (langchain-openai, the openai SDKs) send instead.
LEGACY_MAX_TOKENS_ENGINES = frozenset({"llamacpp"})


def upstream_body(
    parsed: ParsedBody, upstream_model: str, vllm_priority: int | None, legacy_max_tokens: bool = False
) -> bytes:
    """The body the engine receives: the client's, but for model name, priority, usage on streams
    and, for engines that need it, `max_completion_tokens` also given as `max_tokens`."""
    payload = parsed.payload
    payload["model"] = upstream_model
    if legacy_max_tokens and "max_tokens" not in payload and payload.get("max_completion_tokens") is not None:
        payload["max_tokens"] = payload["max_completion_tokens"]
    if parsed.stream:
        # Usage accounting needs the engine's counts; the extra chunk is dropped for clients that did not ask.
        options = dict(payload.get("stream_options") or {})
        options["include_usage"] = True
        payload["stream_options"] = options
    if vllm_priority is not None:
        payload["priority"] = vllm_priority
    return orjson.dumps(payload)


def vllm_priority_of(priority: int) -> int:
    """vLLM's priority scheduling serves lower values first; ours serves higher first."""
    return -priority
