"""What a vector store does: keep each document's chunks with their vectors, find the nearest chunks."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from flotilla.pipeline.documents import Chunk


class StoreError(Exception):
    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class StoredDocument:
    document: str
    sha256: str
    chunks: int
    embedding_model: str
    ingested_at: str  # ISO 8601, UTC


class VectorStore(Protocol):
    description: str  # for logs: kind and where

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def search(self, vector: list[float], k: int, threshold: float | None) -> list[Chunk]:
        """The k chunks of highest cosine similarity (>= threshold when given), best first."""
        ...

    async def document(self, name: str) -> StoredDocument | None: ...

    async def replace_document(
        self, doc: StoredDocument, chunks: list[Chunk], vectors: list[list[float]]
    ) -> None:
        """Put a document's chunks in place of whatever it had, atomically."""
        ...

    async def documents(self) -> list[StoredDocument]: ...

    async def delete(self, name: str | None) -> int:
        """Remove one document (None: every document); returns how many were removed."""
        ...


def check_dimensions(have: int | None, model_have: str | None, got: int, model_got: str) -> None:
    if have is not None and have != got:
        raise StoreError(
            f"the store holds {have}-dimension vectors (model {model_have}); model {model_got} gives {got}: "
            "delete its documents (or use another store) before changing the embedding model"
        )


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
