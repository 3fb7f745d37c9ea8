"""From a remote microservice (name, endpoint, host, port) to a pipeline node, by the endpoint it exposes.

Shared by the seed-format import and the Python API. OpenAI-style endpoints become typed nodes on an
`external` model of the spec (so their calls queue in the gateway); the seed family's retrieval and
reranking services become `http` nodes with their documented fields (EmbedDoc -> SearchedDoc ->
RerankedDoc); any other endpoint becomes an `http` node answering `text`.
"""

from __future__ import annotations

from typing import Any

MODEL_ENDPOINTS = {"/v1/embeddings": "embedding", "/v1/chat/completions": "llm"}


def service_url(host: str, port: int | None) -> str:
    return f"http://{host}:{port}" if port else f"http://{host}"


def remote_service(name: str, endpoint: str, host: str, port: int | None, previous: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(node, model or None) for a service; `previous` is the node before it in the flow, if one."""
    endpoint = "/" + endpoint.strip("/")
    base = service_url(host, port)
    kind = MODEL_ENDPOINTS.get(endpoint)
    if kind is not None:
        model_name = name.replace("_", "-").lower()
        return {"kind": kind, "model": model_name}, {"name": model_name, "engine": "external", "urls": [base]}
    if endpoint == "/v1/retrieval":
        inputs: dict[str, Any] = {"text": "request.query"}
        if previous:
            inputs["embedding"] = f"{previous}.vector"
        return {"kind": "http", "url": base + endpoint, "inputs": inputs, "outputs": {"retrieved_docs": "documents"}}, None
    if endpoint == "/v1/reranking":
        inputs = {"initial_query": "request.query"}
        if previous:
            inputs["retrieved_docs"] = f"{previous}.retrieved_docs"
        return {"kind": "http", "url": base + endpoint, "inputs": inputs, "outputs": {"reranked_docs": "documents"}}, None
    return {"kind": "http", "url": base + endpoint, "outputs": {"text": "text"}}, None
