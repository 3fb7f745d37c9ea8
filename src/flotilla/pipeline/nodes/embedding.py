"""`embedding`: the query's vector, from a model serving OpenAI's /v1/embeddings (TEI, the onnx engine, ...)."""

from __future__ import annotations

from typing import Any

from flotilla.pipeline.calls import post_json
from flotilla.pipeline.context import RequestContext
from flotilla.pipeline.errors import CallFailed
from flotilla.pipeline.nodes.base import Node


def vectors_of(payload: Any, expected: int, what: str) -> list[list[float]]:
    """The vectors of an OpenAI embeddings answer, in input order."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list) or len(data) != expected:
        raise CallFailed(f"{what} answered no list of {expected} embedding(s)", retryable=False)
    vectors: list[list[float] | None] = [None] * expected
    for position, item in enumerate(data):
        index = item.get("index", position) if isinstance(item, dict) else None
        vector = item.get("embedding") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < expected or not isinstance(vector, list) or not vector:
            raise CallFailed(f"{what} answered a malformed embedding (item {position})", retryable=False)
        vectors[index] = vector
    return vectors  # type: ignore[return-value]


async def embed_texts(ctx_client, model: str, texts: list[str], what: str) -> list[list[float]]:
    payload = await post_json(ctx_client, model, "/v1/embeddings", {"input": texts, "encoding_format": "float"}, what)
    return vectors_of(payload, len(texts), what)


class EmbeddingNode(Node):
    kind = "embedding"

    async def run(self, inputs: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        text = inputs["text"]
        if not isinstance(text, str) or not text.strip():
            raise CallFailed("nothing to embed: the text input is empty", retryable=False)
        [vector] = await embed_texts(ctx.client, self.spec.model, [text], f"embedding model {self.spec.model!r}")
        return {"vector": vector}
