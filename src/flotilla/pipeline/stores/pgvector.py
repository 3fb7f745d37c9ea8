"""PostgreSQL with pgvector: chunks in `<table>`, documents in `<table>_documents`, cosine search.

The vector column's dimension is fixed when the first document arrives (the embedding model decides
it); an HNSW index (vector_cosine_ops) keeps searches fast on large tables. Several gateway
replicas can share the table.
"""

from __future__ import annotations

import asyncpg
import orjson

from flotilla.pipeline.documents import Chunk
from flotilla.pipeline.stores.base import StoredDocument, StoreError, check_dimensions

_RETRYABLE = (OSError, asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.exceptions.CannotConnectNowError,
              asyncpg.exceptions.TooManyConnectionsError)


def _vector_text(vector: list[float]) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


class PgvectorStore:
    def __init__(self, url: str, table: str, hnsw: bool = True) -> None:
        self.url = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.table = table
        self.documents_table = f"{table}_documents"
        self.hnsw = hnsw
        self.description = f"pgvector table {table}"
        self._pool: asyncpg.Pool | None = None
        self._dimensions: int | None = None
        self._model: str | None = None

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=8)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL for {self.description}: {exc}", retryable=True) from None
        async with self._pool.acquire() as conn:
            try:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except asyncpg.PostgresError as exc:
                raise StoreError(f"PostgreSQL has no pgvector extension available ({exc})") from None
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.documents_table} (name text PRIMARY KEY, sha256 text NOT NULL, "
                "chunks integer NOT NULL, embedding_model text NOT NULL, dimensions integer NOT NULL, ingested_at text NOT NULL)"
            )
            row = await conn.fetchrow(
                "SELECT a.atttypmod FROM pg_attribute a JOIN pg_class c ON a.attrelid = c.oid "
                "WHERE c.relname = $1 AND a.attname = 'embedding'", self.table,
            )
            meta = await conn.fetchrow(f"SELECT dimensions, embedding_model FROM {self.documents_table} LIMIT 1")
        if row is not None:
            self._dimensions = row[0]
        if meta is not None:
            self._model = meta[1]

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _need_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError(f"{self.description} is closed")
        return self._pool

    async def _create_chunks_table(self, conn: asyncpg.Connection, dims: int) -> None:
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (document text NOT NULL REFERENCES {self.documents_table}(name) "
            f"ON DELETE CASCADE, idx integer NOT NULL, text text NOT NULL, metadata jsonb NOT NULL, "
            f"embedding vector({dims}) NOT NULL, PRIMARY KEY (document, idx))"
        )
        if self.hnsw:
            await conn.execute(
                f"CREATE INDEX IF NOT EXISTS {self.table}_hnsw ON {self.table} USING hnsw (embedding vector_cosine_ops)"
            )

    async def search(self, vector: list[float], k: int, threshold: float | None) -> list[Chunk]:
        if self._dimensions is None:
            return []  # nothing ingested yet
        if len(vector) != self._dimensions:
            raise StoreError(f"query vector has {len(vector)} dimensions; the store's have {self._dimensions}")
        try:
            async with self._need_pool().acquire() as conn:
                rows = await conn.fetch(
                    f"SELECT document, idx, text, metadata, 1 - (embedding <=> ($1::text)::vector) AS score "
                    f"FROM {self.table} ORDER BY embedding <=> ($1::text)::vector LIMIT $2",
                    _vector_text(vector), k,
                )
        except _RETRYABLE as exc:
            raise StoreError(f"PostgreSQL: {exc}", retryable=True) from None
        return [
            Chunk(f"{r['document']}#{r['idx']}", r["document"], r["idx"], r["text"], float(r["score"]), orjson.loads(r["metadata"]))
            for r in rows
            if threshold is None or r["score"] >= threshold
        ]

    async def document(self, name: str) -> StoredDocument | None:
        async with self._need_pool().acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT name, sha256, chunks, embedding_model, ingested_at FROM {self.documents_table} WHERE name = $1", name
            )
        return StoredDocument(*row) if row else None

    async def replace_document(self, doc: StoredDocument, chunks: list[Chunk], vectors: list[list[float]]) -> None:
        dims = len(vectors[0]) if vectors else (self._dimensions or 0)
        check_dimensions(self._dimensions, self._model, dims, doc.embedding_model)
        async with self._need_pool().acquire() as conn:
            async with conn.transaction():
                if self._dimensions is None and dims:
                    await self._create_chunks_table(conn, dims)
                await conn.execute(f"DELETE FROM {self.documents_table} WHERE name = $1", doc.document)
                await conn.execute(
                    f"INSERT INTO {self.documents_table} VALUES ($1, $2, $3, $4, $5, $6)",
                    doc.document, doc.sha256, len(chunks), doc.embedding_model, dims, doc.ingested_at,
                )
                if chunks:
                    await conn.executemany(
                        f"INSERT INTO {self.table} VALUES ($1, $2, $3, $4::jsonb, ($5::text)::vector)",
                        [(doc.document, c.index, c.text, orjson.dumps(c.metadata).decode(), _vector_text(v))
                         for c, v in zip(chunks, vectors)],
                    )
        if dims:
            self._dimensions, self._model = dims, doc.embedding_model

    async def documents(self) -> list[StoredDocument]:
        async with self._need_pool().acquire() as conn:
            rows = await conn.fetch(
                f"SELECT name, sha256, chunks, embedding_model, ingested_at FROM {self.documents_table} ORDER BY name"
            )
        return [StoredDocument(*r) for r in rows]

    async def delete(self, name: str | None) -> int:
        async with self._need_pool().acquire() as conn:
            if name is None:
                result = await conn.execute(f"DELETE FROM {self.documents_table}")
            else:
                result = await conn.execute(f"DELETE FROM {self.documents_table} WHERE name = $1", name)
        return int(result.split()[-1])
