"""The gateway's OpenAPI 3.1 document, built in Python and served at /openapi.json.

It describes what the gateway itself checks and answers. Inference bodies are open
(`additionalProperties`): every field the gateway does not read goes to the engine unchanged,
and the engine's own 4xx reaches the client unchanged, so those fields are documented as
examples of what engines take, not as the gateway's rules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

import flotilla
from flotilla.gateway.requests import PRIORITY_MAX, PRIORITY_MIN
from flotilla.httpserver import Request, Response

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": _ref("Error")}}}
    if retry_after:
        response["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
    return response


_INFERENCE_ERRORS = {
    "400": _error("Malformed JSON, a missing or mistyped field, or a refusal by the engine (relayed unchanged)."),
    "401": _error("Missing, unknown or revoked bearer token."),
    "404": _error("Unknown model (the message names the known ones), or the engine's 404 relayed."),
    "408": _error("The request body did not arrive within gateway.bodyTimeoutS."),
    "413": _error("Body larger than gateway.maxBodyBytes."),
    "422": _error("The engine refused the request (relayed unchanged)."),
    "429": _error("The token already has `threshold` requests waiting for this model.", retry_after=True),
    "502": _error("The engine could not be reached, or failed before answering."),
    "503": _error(
        "No healthy replica within gateway.unavailableWaitS, queue wait over gateway.maxQueueWaitS, "
        "or the gateway is shutting down.",
        retry_after=True,
    ),
}

_GATEWAY_FIELDS: dict[str, Any] = {
    "model": {"type": "string", "minLength": 1, "description": "A model name of the spec (see GET /v1/models)."},
    "stream": {"type": "boolean", "default": False, "description": "Answer as server-sent events."},
    "stream_options": {
        "type": ["object", "null"],
        "properties": {"include_usage": {"type": ["boolean", "null"]}},
        "description": "With `stream`: include_usage adds the final usage-only chunk.",
    },
    "priority": {
        "type": ["integer", "null"],
        "minimum": PRIORITY_MIN,
        "maximum": PRIORITY_MAX,
        "description": "Lower this request's priority below its token's (higher values are ignored: the token's "
        "priority is the ceiling).",
    },
}
# Checked by the engines (the sim and vLLM alike); any other OpenAI field (temperature, top_p, stop,
# seed, tools, ...) is passed to the engine unchecked, so it is not listed.
_GENERATION_FIELDS: dict[str, Any] = {
    "max_tokens": {"type": ["integer", "null"], "minimum": 1},
    "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1},
}
_OTHER_FIELDS = (
    " Fields not listed here go to the engine unchanged, and its answer (or its 400) comes back unchanged."
)


def _body(
    required: list[str], fields: dict[str, Any], description: str, models: list[str] | None, *, streams: bool = True
) -> dict[str, Any]:
    gateway_fields = _GATEWAY_FIELDS if streams else {k: v for k, v in _GATEWAY_FIELDS.items() if "stream" not in k}
    properties = {**gateway_fields, **fields}
    if models:
        properties["model"] = {**properties["model"], "enum": models}
    return {
        "type": "object",
        "description": description + _OTHER_FIELDS,
        "required": required,
        "properties": properties,
        "additionalProperties": True,
    }


def _schemas(models: list[str] | None) -> dict[str, Any]:
    message = {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"type": "string", "description": "system, developer, user, assistant or tool."},
            "content": {
                "type": ["string", "array", "null"],
                # The parts go to the engine as given: their shape is the engine's to check.
                "items": {"type": "object"},
                "description": "Text, or a list of content parts ({\"type\": \"text\", \"text\": ...}).",
            },
        },
    }
    usage = {
        "type": "object",
        "properties": {
            "prompt_tokens": {"type": "integer"},
            "completion_tokens": {"type": "integer"},
            "total_tokens": {"type": "integer"},
        },
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["message", "type"],
                    "properties": {
                        "message": {"type": "string"},
                        "type": {"type": "string"},
                        "param": {"type": ["string", "null"]},
                        "code": {"type": ["string", "integer", "null"]},
                    },
                }
            },
        },
        "ChatMessage": message,
        "ChatCompletionRequest": _body(
            ["model", "messages"],
            {"messages": {"type": "array", "minItems": 1, "items": _ref("ChatMessage")}, **_GENERATION_FIELDS},
            "An OpenAI chat completion request.",
            models,
        ),
        "CompletionRequest": _body(
            ["model", "prompt"],
            {
                "prompt": {
                    "description": "Text, token ids, or a batch of one of those.",
                    "oneOf": [
                        {"type": "string"},
                        {"type": "array", "items": {"type": "integer"}, "minItems": 1},
                        {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1},
                    ],
                },
                **_GENERATION_FIELDS,
            },
            "An OpenAI (legacy) completion request.",
            models,
        ),
        "EmbeddingRequest": _body(
            ["model", "input"],
            {
                "input": {
                    "description": "Text, texts, token ids, or lists of token ids.",
                    "oneOf": [
                        {"type": "string"},
                        {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        {"type": "array", "items": {"type": "integer"}, "minItems": 1},
                    ],
                },
            },
            "An OpenAI embeddings request (never streamed).",
            models,
            streams=False,
        ),
        "Usage": usage,
        "Completion": {
            "type": "object",
            "description": "The engine's answer, relayed unchanged (OpenAI chat.completion, text_completion or list).",
            "properties": {
                "id": {"type": "string"},
                "object": {"type": "string"},
                "model": {"type": "string"},
                "choices": {"type": "array", "items": {"type": "object"}},
                "data": {"type": "array", "items": {"type": "object"}},
                "usage": usage,
            },
        },
        "Model": {
            "type": "object",
            "required": ["id", "object", "created", "owned_by"],
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "model"},
                "created": {"type": "integer"},
                "owned_by": {"type": "string"},
            },
        },
        "ModelList": {
            "type": "object",
            "required": ["object", "data"],
            "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": _ref("Model")}},
        },
        "Readiness": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": ["ready", "not ready", "draining"]},
                "tokens": {"type": "integer"},
                "store": {"type": "string", "enum": ["reachable", "unreachable"]},
                "healthy_replicas": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
        },
    }


def _inference(summary: str, request_schema: str, streams: bool) -> dict[str, Any]:
    content: dict[str, Any] = {JSON: {"schema": _ref("Completion")}}
    if streams:
        content["text/event-stream"] = {  # OpenAPI 3.1: the schema of one event
            "schema": {
                "type": "object",
                "required": ["data"],
                "properties": {
                    "data": {
                        "type": "string",
                        "description": "A JSON chunk (chat.completion.chunk / text_completion), an error object "
                        "when the engine failed mid-stream, or [DONE] last.",
                    },
                    "event": {"type": "string"},
                    "id": {"type": "string"},
                    "retry": {"type": "integer"},
                },
            }
        }
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref(request_schema)}}},
            "responses": {
                "200": {
                    "description": "The engine's answer (streamed when `stream` is true).",
                    "headers": {"x-request-id": {"$ref": "#/components/headers/RequestId"}},
                    "content": content,
                },
                **_INFERENCE_ERRORS,
            },
        }
    }


def _plain_get(summary: str, response: dict[str, Any], *errors: str) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": response}
    for status in errors:
        responses[status] = _INFERENCE_ERRORS[status]
    return {"get": {"summary": summary, "responses": responses}}


def openapi_document(models: list[str] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the gateway's HTTP API (a new dict on every call).

    `models`: the model names a running gateway serves, listed as the `model` field's values
    (without: any model name).
    """
    models_get = _plain_get(
        "List the models this gateway serves.",
        {"description": "The models.", "content": {JSON: {"schema": _ref("ModelList")}}},
        "401",
    )
    models_get["get"]["security"] = [{"bearer": []}]
    model_get = _plain_get(
        "Describe one model.", {"description": "The model.", "content": {JSON: {"schema": _ref("Model")}}}, "401", "404"
    )
    model_get["get"]["security"] = [{"bearer": []}]
    model_get["get"]["parameters"] = [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}]
    live = _plain_get(
        "Liveness: the process answers.",
        {"description": "Alive.", "content": {JSON: {"schema": {"type": "object"}}}},
    )
    ready = _plain_get(
        "Readiness: tokens loaded, token store reachable, not draining.",
        {"description": "Ready.", "content": {JSON: {"schema": _ref("Readiness")}}},
    )
    ready["get"]["responses"]["503"] = {
        "description": "Not ready (tokens not loaded, store unreachable) or draining at stop.",
        "content": {JSON: {"schema": _ref("Readiness")}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Flotilla gateway",
            "version": flotilla.__version__,
            "description": "OpenAI-compatible gateway: bearer tokens with a priority each, a per-model priority "
            "queue, least-loaded routing to engine replicas, usage accounting. Errors use OpenAI's format.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": {
            "/v1/chat/completions": _inference("Create a chat completion.", "ChatCompletionRequest", streams=True),
            "/v1/completions": _inference("Create a completion.", "CompletionRequest", streams=True),
            "/v1/embeddings": _inference("Create embeddings.", "EmbeddingRequest", streams=False),
            "/v1/models": models_get,
            "/v1/models/{model}": model_get,
            "/health/live": live,
            "/health": live,
            "/health/ready": ready,
            "/metrics": _plain_get(
                "Prometheus metrics.",
                {"description": "Text exposition format.", "content": {"text/plain": {"schema": {"type": "string"}}}},
            ),
            "/openapi.json": _plain_get(
                "This document.",
                {"description": "OpenAPI 3.1.", "content": {JSON: {"schema": {"type": "object"}}}},
            ),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "A gateway token."}},
            "headers": {
                "RetryAfter": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
                "RequestId": {"description": "The gateway's id of this request.", "schema": {"type": "string"}},
            },
            "schemas": _schemas(models),
        },
    }


def openapi_handler(models: list[str]) -> Callable[[Request], Awaitable[Response]]:
    """The /openapi.json handler of a gateway serving `models` (the document is built once)."""
    body = orjson.dumps(openapi_document(models))

    async def openapi_json(request: Request) -> Response:
        return Response(body=body, content_type=JSON)

    return openapi_json
