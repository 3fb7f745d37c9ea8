"""Prometheus metrics of pipeline nodes. Labels come from the spec only (pipeline and node names,
the node's kind as it runs: `similarity-reranker` for the embedding-based reranker)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from flotilla.pipeline.context import NodeRun
from flotilla.pipeline.nodes.base import Node

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class PipelineMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            "flotilla_pipeline_node_duration_seconds", "Time a pipeline node took (llm streams: until the first token).",
            ["pipeline", "node", "kind"], buckets=_BUCKETS, registry=registry,
        )
        self.outcomes = Counter(
            "flotilla_pipeline_node_outcomes", "Pipeline node runs by outcome (ok, failed, timeout, skipped).",
            ["pipeline", "node", "kind", "outcome"], registry=registry,
        )
        self.retries = Counter(
            "flotilla_pipeline_node_retries", "Pipeline node attempts repeated after a retryable failure.",
            ["pipeline", "node"], registry=registry,
        )
        self.ingested = Counter(
            "flotilla_pipeline_ingested_chunks", "Chunks embedded and stored by data prep.", ["pipeline"], registry=registry,
        )

    def node_finished(self, pipeline: str, node: Node, run: NodeRun) -> None:
        self.outcomes.labels(pipeline, node.name, node.label, run.outcome).inc()
        if run.started is not None and run.ended is not None and run.outcome == "ok":
            self.duration.labels(pipeline, node.name, node.label).observe(run.ended - run.started)

    def node_retried(self, pipeline: str, node: Node) -> None:
        self.retries.labels(pipeline, node.name).inc()

    def chunks_ingested(self, pipeline: str, count: int) -> None:
        self.ingested.labels(pipeline).inc(count)
