"""The gateway's OpenAPI 3.1 document, built in Python and served at /openapi.json.

It describes what the gateway itself checks and answers. Inference bodies are open
(`additionalProperties`): every field the gateway does not read goes to the engine unchanged,
and the engine's own 4xx reaches the client unchanged, so those fields are documented as
examples of what engines take, not as the gateway's rules.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from aiohttp import web

import flotilla

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
        "type": "object",
        "properties": {"include_usage": {"type": "boolean"}},
        "description": "With `stream`: include_usage adds the final usage-only chunk.",
    },
    "priority": {
        "type": "integer",
        "description": "Lower this request's priority below its token's (higher values are ignored: the token's "
        "priority is the ceiling).",
    },
}
_GENERATION_FIELDS: dict[str, Any] = {
    "max_tokens": {"type": "integer", "minimum": 1},
    "max_completion_tokens": {"type": "integer", "minimum": 1},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    "seed": {"type": "integer"},
    "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 4}]},
}


def _body(required: list[str], fields: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": required,
        "properties": {**_GATEWAY_FIELDS, **fields},
        "additionalProperties": True,
    }


def _schemas() -> dict[str, Any]:
    message = {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"type": "string", "enum": ["system", "developer", "user", "assistant"]},
            "content": {
                "oneOf": [
                    {"type": "string"},
                    {"type": "null"},
                    {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["type", "text"],
                            "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
                        },
                    },
                ]
            },
            "name": {"type": "string"},
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
        ),
        "CompletionRequest": _body(
            ["model", "prompt"],
            {
                "prompt": {
                    "oneOf": [
                        {"type": "string"},
                        {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
                    ]
                },
                **_GENERATION_FIELDS,
            },
            "An OpenAI (legacy) completion request.",
        ),
        "EmbeddingRequest": _body(
            ["model", "input"],
            {
                "input": {
                    "oneOf": [
                        {"type": "string"},
                        {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    ]
                },
                "encoding_format": {"type": "string", "enum": ["float"]},
            },
            "An OpenAI embeddings request.",
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
        content["text/event-stream"] = {
            "schema": {"type": "string", "description": "`data: {chunk}` events, then `data: [DONE]`."}
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


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the gateway's HTTP API (a new dict on every call)."""
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
            "schemas": _schemas(),
        },
    }


@cache
def _document_bytes() -> bytes:
    return orjson.dumps(openapi_document())


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=_document_bytes(), content_type=JSON)
