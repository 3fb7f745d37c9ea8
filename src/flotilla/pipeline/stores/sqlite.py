"""The embedded store: chunks and float32 vectors in one SQLite file, exact cosine search with numpy.

Vectors are kept normalised in one in-memory matrix, rebuilt after every change (ours, or another
connection's: SQLite's data_version tells), so a search is one matrix-vector product (exact, like sqlite-vec's brute-force vec0; this Python's sqlite3 cannot load
extensions, so sqlite-vec itself is not used). Memory grows with what authorised tokens ingest:
384 floats (1.5 KiB) per chunk for all-MiniLM-L6-v2.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from flotilla.pipeline.documents import Chunk
from flotilla.pipeline.stores.base import StoredDocument, StoreError, check_dimensions

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
  name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, chunks INTEGER NOT NULL,
  embedding_model TEXT NOT NULL, dimensions INTEGER NOT NULL, ingested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
  document TEXT NOT NULL REFERENCES documents(name) ON DELETE CASCADE,
  idx INTEGER NOT NULL, text TEXT NOT NULL, metadata TEXT NOT NULL, vector BLOB NOT NULL,
  PRIMARY KEY (document, idx)
);
"""


class SqliteStore:
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.description = f"sqlite {self.path}"
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one connection, used from worker threads one at a time
        self._keys: list[tuple[str, int]] = []
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._dimensions: int | None = None
        self._model: str | None = None
        self._data_version = -1

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(_SCHEMA)
        self._db = db
        self._reload()

    async def close(self) -> None:
        if self._db is not None:
            with self._lock:
                self._db.close()
                self._db = None

    def _reload(self) -> None:
        """Rebuild the in-memory matrix from the file (after a change, or at open)."""
        with self._lock:
            self._data_version = self._conn().execute("PRAGMA data_version").fetchone()[0]
            rows = self._conn().execute("SELECT document, idx, vector FROM chunks ORDER BY rowid").fetchall()
            meta = self._conn().execute("SELECT dimensions, embedding_model FROM documents LIMIT 1").fetchone()
        self._keys = [(r[0], r[1]) for r in rows]
        if rows:
            matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), -1)
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            self._matrix = matrix / np.clip(norms, 1e-12, None)
        else:
            self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._dimensions, self._model = (meta[0], meta[1]) if meta else (None, None)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"{self.description} is closed")
        return self._db

    def _changed_elsewhere(self) -> bool:
        """Another connection (another retriever on this file, another process) committed since our reload."""
        with self._lock:
            version = self._conn().execute("PRAGMA data_version").fetchone()[0]
        return version != self._data_version

    async def search(self, vector: list[float], k: int, threshold: float | None) -> list[Chunk]:
        if self._changed_elsewhere():
            await asyncio.to_thread(self._reload)
        matrix, keys = self._matrix, self._keys  # a consistent pair even if a reload happens meanwhile
        if not keys:
            return []
        query = np.asarray(vector, dtype=np.float32)
        if query.shape != (matrix.shape[1],):
            raise StoreError(f"query vector has {query.size} dimensions; the store's have {matrix.shape[1]}")
        query /= max(float(np.linalg.norm(query)), 1e-12)
        scores = matrix @ query
        top = np.argsort(-scores)[:k] if k < 64 or k >= len(scores) else np.argpartition(-scores, k)[:k]
        top = top[np.argsort(-scores[top])]
        wanted = [(keys[i], float(scores[i])) for i in top if threshold is None or scores[i] >= threshold]
        return await asyncio.to_thread(self._load_chunks, wanted)

    def _load_chunks(self, wanted: list[tuple[tuple[str, int], float]]) -> list[Chunk]:
        chunks = []
        with self._lock:
            for (document, index), score in wanted:
                row = self._conn().execute(
                    "SELECT text, metadata FROM chunks WHERE document = ? AND idx = ?", (document, index)
                ).fetchone()
                if row is not None:  # deleted since the search
                    chunks.append(Chunk(f"{document}#{index}", document, index, row[0], score, orjson.loads(row[1])))
        return chunks

    async def document(self, name: str) -> StoredDocument | None:
        def read() -> Any:
            with self._lock:
                return self._conn().execute(
                    "SELECT name, sha256, chunks, embedding_model, ingested_at FROM documents WHERE name = ?", (name,)
                ).fetchone()

        row = await asyncio.to_thread(read)
        return StoredDocument(*row) if row else None

    async def replace_document(self, doc: StoredDocument, chunks: list[Chunk], vectors: list[list[float]]) -> None:
        dims = len(vectors[0]) if vectors else (self._dimensions or 0)
        check_dimensions(self._dimensions, self._model, dims, doc.embedding_model)

        def write() -> None:
            blobs = [np.asarray(v, dtype=np.float32).tobytes() for v in vectors]
            with self._lock:
                db = self._conn()
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute("DELETE FROM documents WHERE name = ?", (doc.document,))
                    db.execute(
                        "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)",
                        (doc.document, doc.sha256, len(chunks), doc.embedding_model, dims, doc.ingested_at),
                    )
                    db.executemany(
                        "INSERT INTO chunks VALUES (?, ?, ?, ?, ?)",
                        [(doc.document, c.index, c.text, orjson.dumps(c.metadata).decode(), b) for c, b in zip(chunks, blobs)],
                    )
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            self._reload()

        await asyncio.to_thread(write)

    async def documents(self) -> list[StoredDocument]:
        def read() -> list[Any]:
            with self._lock:
                return self._conn().execute(
                    "SELECT name, sha256, chunks, embedding_model, ingested_at FROM documents ORDER BY name"
                ).fetchall()

        return [StoredDocument(*row) for row in await asyncio.to_thread(read)]

    async def delete(self, name: str | None) -> int:
        def remove() -> int:
            with self._lock:
                db = self._conn()
                if name is None:
                    count = db.execute("DELETE FROM documents").rowcount
                else:
                    count = db.execute("DELETE FROM documents WHERE name = ?", (name,)).rowcount
            self._reload()
            return count

        return await asyncio.to_thread(remove)
