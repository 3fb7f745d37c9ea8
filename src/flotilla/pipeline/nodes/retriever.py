"""`retriever`: the k chunks nearest to a vector in the node's store (cosine similarity)."""

from __future__ import annotations

from typing import Any

from flotilla.pipeline.context import RequestContext
from flotilla.pipeline.errors import CallFailed, bad_request
from flotilla.pipeline.nodes.base import Node
from flotilla.pipeline.stores.base import StoreError, VectorStore


class RetrieverNode(Node):
    kind = "retriever"

    def __init__(self, pipeline: str, name: str, spec: Any, store: VectorStore) -> None:
        super().__init__(pipeline, name, spec)
        self.store = store

    def check_knobs(self, ctx: RequestContext) -> None:
        if ctx.knobs.k is not None and ctx.knobs.k > self.spec.max_k:
            raise bad_request(f"'k' may be at most {self.spec.max_k} (node {self.name!r}).", "k")

    async def run(self, inputs: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        k = ctx.knobs.k or self.spec.k
        threshold = ctx.knobs.score_threshold if ctx.knobs.score_threshold is not None else self.spec.score_threshold
        try:
            chunks = await self.store.search(inputs["vector"], k, threshold)
        except StoreError as exc:
            raise CallFailed(f"vector store: {exc}", retryable=exc.retryable) from None
        return {"documents": chunks}
