"""Ingest documents into a retriever's store: extract, chunk, embed (through the pipeline's embedding
model, so ingestion queues with the caller's priority like any call), replace the document's chunks.

A document is identified by its name (file name or URL); ingesting it again replaces its chunks. A
fingerprint of its bytes, the chunking and the embedding model is kept, so an unchanged document is
skipped without embedding it again.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

from flotilla.pipeline.calls import ModelClient
from flotilla.pipeline.documents import Chunk
from flotilla.pipeline.ingest.chunking import split
from flotilla.pipeline.ingest.extract import extract
from flotilla.pipeline.nodes.embedding import embed_texts
from flotilla.pipeline.stores.base import StoredDocument, VectorStore, utc_now

EMBED_BATCH = 32  # TEI's default max client batch size


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes
    content_type: str | None = None


@dataclass(frozen=True)
class IngestOutcome:
    document: str
    status: str  # ingested | unchanged
    chunks: int

    def as_json(self) -> dict[str, Any]:
        return {"document": self.document, "status": self.status, "chunks": self.chunks}


def fingerprint(data: bytes, size: int, overlap: int, model: str) -> str:
    digest = hashlib.sha256(data)
    digest.update(f"\0{size}\0{overlap}\0{model}".encode())
    return digest.hexdigest()


class Ingestor:
    def __init__(self, store: VectorStore, embedding_model: str) -> None:
        self.store = store
        self.embedding_model = embedding_model

    async def ingest(self, upload: Upload, size: int, overlap: int, client: ModelClient) -> IngestOutcome:
        """Raises UnsupportedDocument (the client's fault), CallFailed/CallRejected (embedding), StoreError."""
        mark = fingerprint(upload.data, size, overlap, self.embedding_model)
        known = await self.store.document(upload.name)
        if known is not None and known.sha256 == mark:
            return IngestOutcome(upload.name, "unchanged", known.chunks)
        extracted = await asyncio.to_thread(extract, upload.name, upload.data, upload.content_type)
        texts = await asyncio.to_thread(split, extracted.text, extracted.format, size, overlap)
        vectors: list[list[float]] = []
        what = f"embedding model {self.embedding_model!r}"
        for start in range(0, len(texts), EMBED_BATCH):
            vectors += await embed_texts(client, self.embedding_model, texts[start : start + EMBED_BATCH], what)
        chunks = [
            Chunk(f"{upload.name}#{i}", upload.name, i, text, None, {"format": extracted.format})
            for i, text in enumerate(texts)
        ]
        await self.store.replace_document(
            StoredDocument(upload.name, mark, len(chunks), self.embedding_model, utc_now()), chunks, vectors
        )
        return IngestOutcome(upload.name, "ingested", len(chunks))
