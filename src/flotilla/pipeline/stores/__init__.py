"""Vector stores of retriever nodes: an embedded SQLite file (default) or PostgreSQL with pgvector."""

from __future__ import annotations

from typing import Any

from flotilla.pipeline.stores.base import StoreError, VectorStore


def open_store(spec: Any, pipeline: str, node: str) -> VectorStore:
    """The store a retriever node's spec describes (not yet connected: call `open()`)."""
    if spec.kind == "sqlite":
        from flotilla.pipeline.stores.sqlite import SqliteStore

        return SqliteStore(spec.path or f"./.flotilla/vectors-{pipeline}-{node}.db")
    if spec.kind == "pgvector":
        from flotilla.pipeline.stores.pgvector import PgvectorStore

        if not spec.url:
            raise StoreError(
                f"pipelines[{pipeline}].nodes.{node}.store.url is not set: give the PostgreSQL URL "
                "(only the Helm chart and `flotilla render --format compose` fill it in themselves)"
            )
        table = spec.table or f"flotilla_chunks_{pipeline}_{node}".replace("-", "_")
        return PgvectorStore(spec.url, table, hnsw=spec.hnsw)
    raise ValueError(f"unknown store kind {spec.kind!r}")


__all__ = ["StoreError", "VectorStore", "open_store"]
