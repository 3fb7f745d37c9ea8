"""The onnx embedding engine: TEI's API and OpenAI's, on the real all-MiniLM-L6-v2 (int8 ONNX)."""

import base64

import numpy as np
import orjson
import urllib.request
from openai import OpenAI


def post(url: str, body: dict) -> tuple[int, object]:
    request = urllib.request.Request(url, data=orjson.dumps(body), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def test_openai_client_gets_unit_vectors_that_rank_meaning(embedder):
    client = OpenAI(base_url=embedder + "/v1", api_key="unused", max_retries=0)
    texts = ["Mars has two small moons, Phobos and Deimos.", "How many moons does Mars have?", "The cafeteria opens at eight."]
    reply = client.embeddings.create(model="embed", input=texts)
    vectors = np.array([d.embedding for d in reply.data])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[1] @ vectors[0] > vectors[1] @ vectors[2] + 0.3  # the question is near its answer
    assert reply.usage.prompt_tokens > 10 and reply.model == "embed"
    as_base64 = client.embeddings.create(model="embed", input=texts[0], encoding_format="base64")
    decoded = np.frombuffer(base64.b64decode(as_base64.data[0].embedding), dtype="<f4")
    assert decoded.shape == (384,) and np.allclose(decoded, vectors[0], atol=1e-6)


def test_tei_embed_rerank_and_info(embedder):
    status, vectors = post(embedder + "/embed", {"inputs": ["a cat", "a kitten"]})
    assert status == 200 and len(vectors) == 2 and len(vectors[0]) == 384
    status, ranked = post(embedder + "/rerank", {"query": "Which drone has the thermal camera?",
                                                 "texts": ["Lunch is at noon.", "Only Skua carries the thermal camera."],
                                                 "return_text": True})
    assert status == 200
    assert [r["index"] for r in ranked] == [1, 0] and ranked[0]["score"] > ranked[1]["score"]
    assert ranked[0]["text"] == "Only Skua carries the thermal camera."
    with urllib.request.urlopen(embedder + "/info", timeout=30) as response:
        info = orjson.loads(response.read())
    assert info["model_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "not a cross-encoder" in info["rerank"]


def test_bad_requests_get_tei_and_openai_errors(embedder):
    status, body = post(embedder + "/embed", {"inputs": []})
    assert status == 422 and "non-empty list" in body["error"]
    status, body = post(embedder + "/embed", {"inputs": ["x"] * 65})
    assert status == 413 and "maximum allowed batch size 64" in body["error"]
    status, body = post(embedder + "/v1/embeddings", {"input": 7})
    assert status == 400 and body["error"]["param"] == "input"


def test_concurrent_requests_get_their_own_vectors(embedder):
    """Requests batched together still get their own rows back."""
    import concurrent.futures

    texts = [f"sentence number {i} about {'ice' if i % 2 else 'drones'}" for i in range(24)]
    single = {t: post(embedder + "/embed", {"inputs": t})[1][0] for t in texts[:4]}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda t: (t, post(embedder + "/embed", {"inputs": t})[1][0]), texts))
    for text, vector in results:
        if text in single:
            assert np.allclose(vector, single[text], atol=1e-5)
    assert len({tuple(np.round(v, 4)) for _, v in results}) == len(texts)
