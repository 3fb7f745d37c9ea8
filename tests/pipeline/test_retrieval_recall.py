"""The retrieval step alone, on the real embedding model: the sample documents ingested as the example
does (chunks of 400 characters), then each labelled question's nearest chunks. Prints recall@1 and @3."""

import aiohttp
import yaml

from flotilla.pipeline.calls import HttpModelClient
from flotilla.pipeline.ingest.service import Ingestor, Upload
from flotilla.pipeline.nodes.embedding import embed_texts
from flotilla.pipeline.stores.sqlite import SqliteStore

from pipeline_helpers import REPO

QUESTIONS = yaml.safe_load((REPO / "tests" / "pipeline" / "rag_questions.yaml").read_text())


async def test_recall_on_the_labelled_questions(embedder, tmp_path):
    store = SqliteStore(str(tmp_path / "vectors.db"))
    await store.open()
    async with aiohttp.ClientSession() as session:
        client = HttpModelClient(session, {"embed": embedder})
        ingestor = Ingestor(store, "embed")
        for path in sorted((REPO / "examples" / "rag-docs").iterdir()):
            outcome = await ingestor.ingest(Upload(path.name, path.read_bytes()), 400, 40, client)
            assert outcome.status == "ingested" and outcome.chunks > 0
        vectors = await embed_texts(client, "embed", [q["question"] for q in QUESTIONS], "embed")
    ranks = []
    for question, vector in zip(QUESTIONS, vectors):
        found = await store.search(vector, 3, None)
        right = [i for i, c in enumerate(found, 1) if c.document == question["document"] and question["phrase"] in c.text]
        ranks.append(right[0] if right else None)
        print(f"{question['question']!r}: rank {ranks[-1]} (top: {found[0].id})")
    await store.close()
    recall_1 = sum(r == 1 for r in ranks) / len(ranks)
    recall_3 = sum(r is not None for r in ranks) / len(ranks)
    print(f"recall@1 = {recall_1:.3f}, recall@3 = {recall_3:.3f} over {len(ranks)} questions")
    # Measured here: recall@1 13/14 (the battery-alarm question ranks the radio chunk first), recall@3 14/14.
    assert recall_3 == 1.0, [q["question"] for q, r in zip(QUESTIONS, ranks) if r is None]
    assert recall_1 >= 0.9, [q["question"] for q, r in zip(QUESTIONS, ranks) if r != 1]
