"""`reranker`: reorder chunks by relevance to the query with TEI's /rerank, keep the top n.

Against TEI serving a cross-encoder (e.g. BAAI/bge-reranker-base) that is a cross-encoder reranker;
against Flotilla's onnx engine it is a similarity reranker (cosine between embeddings), and is
labelled so in metrics (`similarity-reranker`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flotilla.pipeline.calls import post_json
from flotilla.pipeline.context import RequestContext
from flotilla.pipeline.errors import CallFailed, bad_request
from flotilla.pipeline.nodes.base import Node


class RerankerNode(Node):
    kind = "reranker"

    def __init__(self, pipeline: str, name: str, spec: Any, method: str) -> None:
        super().__init__(pipeline, name, spec)
        self.method = method  # "similarity" (onnx engine) or "model" (whatever TEI serves)

    @property
    def label(self) -> str:
        return "similarity-reranker" if self.method == "similarity" else "reranker"

    def check_knobs(self, ctx: RequestContext) -> None:
        if ctx.knobs.top_n is not None and ctx.knobs.top_n > self.spec.max_top_n:
            raise bad_request(f"'top_n' may be at most {self.spec.max_top_n} (node {self.name!r}).", "top_n")

    async def run(self, inputs: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        chunks = list(inputs["documents"])
        top_n = ctx.knobs.top_n or self.spec.top_n
        if not chunks:
            return {"documents": []}
        what = f"reranker model {self.spec.model!r}"
        payload = await post_json(
            ctx.client, self.spec.model, "/rerank",
            {"query": inputs["query"], "texts": [c.text for c in chunks], "raw_scores": False, "truncate": True}, what,
        )
        if not isinstance(payload, list):
            raise CallFailed(f"{what} answered no list of scores", retryable=False)
        ranked = []
        for item in payload:
            index = item.get("index") if isinstance(item, dict) else None
            score = item.get("score") if isinstance(item, dict) else None
            if not isinstance(index, int) or not 0 <= index < len(chunks) or not isinstance(score, (int, float)):
                raise CallFailed(f"{what} answered a malformed score: {str(item)[:100]}", retryable=False)
            chunk = chunks[index]  # copied: parallel nodes may hold the same chunk
            ranked.append(replace(chunk, score=float(score), metadata={**chunk.metadata, "retrieval_score": chunk.score}))
        ranked.sort(key=lambda c: c.score, reverse=True)
        return {"documents": ranked[:top_n]}
