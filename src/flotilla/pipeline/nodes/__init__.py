"""One module per node kind; `build_node` makes the runtime node of a node spec."""

from __future__ import annotations

from typing import Any

from flotilla.pipeline.nodes.base import Node


def build_node(pipeline: str, name: str, spec: Any, resources: Any) -> Node:
    kind = spec.kind
    if kind == "embedding":
        from flotilla.pipeline.nodes.embedding import EmbeddingNode

        return EmbeddingNode(pipeline, name, spec)
    if kind == "retriever":
        from flotilla.pipeline.nodes.retriever import RetrieverNode

        return RetrieverNode(pipeline, name, spec, resources.store_for(name))
    if kind == "reranker":
        from flotilla.pipeline.nodes.reranker import RerankerNode

        return RerankerNode(pipeline, name, spec, resources.reranker_method(spec.model))
    if kind == "llm":
        from flotilla.pipeline.nodes.llm import LlmNode

        return LlmNode(pipeline, name, spec)
    if kind == "http":
        from flotilla.pipeline.nodes.http import HttpNode

        return HttpNode(pipeline, name, spec, resources.session)
    raise ValueError(f"unknown node kind {kind!r}")
