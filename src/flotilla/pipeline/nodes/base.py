"""What every runtime node is: a name, its spec, and one attempt at producing its outputs."""

from __future__ import annotations

from typing import Any

from flotilla.pipeline.context import RequestContext


class Node:
    kind = "node"

    def __init__(self, pipeline: str, name: str, spec: Any) -> None:
        self.pipeline = pipeline
        self.name = name
        self.spec = spec

    @property
    def label(self) -> str:
        """How metrics and logs name what this node does (the reranker says which method it uses)."""
        return self.kind

    def check_knobs(self, ctx: RequestContext) -> None:
        """Reject request knobs beyond this node's limits before anything runs (PipelineError 400)."""

    async def run(self, inputs: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        """One attempt. Raises CallFailed (retryable or not) or CallRejected."""
        raise NotImplementedError
