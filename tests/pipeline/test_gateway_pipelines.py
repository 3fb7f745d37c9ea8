"""A pipeline served by the real gateway: listed and called like a model (openai client, stream and
not), same tokens, thresholds, priorities, usage records and metrics; the data prep API; disconnects."""

import asyncio
import concurrent.futures
import functools
import http.server
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

import aiohttp
import orjson
import pytest
from openai import APIStatusError, OpenAI

from pipeline_helpers import REPO
from procs import free_port, gateway, sim_engine, usage_rows

STAFF, STUDENTS, GUEST = "staff-secret-0001", "students-secret-0001", "guest-secret-0001"
DOCS = REPO / "examples" / "rag-docs"


def stack_spec(tmp) -> dict:
    return {
        "models": [
            {"name": "chat", "engine": "sim", "maxConcurrency": 1},
            {"name": "embed", "engine": "onnx", "maxConcurrency": 4},
            {"name": "failing", "engine": "sim"},  # its replica answers 500 to everything
            {"name": "cutoff", "engine": "sim"},  # its replica cuts every stream off halfway
        ],
        "pipelines": [{
            "name": "rag",
            "nodes": {
                "embedding": {"kind": "embedding", "model": "embed"},
                "retriever": {"kind": "retriever", "store": {"kind": "sqlite", "path": str(tmp / "vectors.db")}, "k": 6},
                "reranker": {"kind": "reranker", "model": "embed", "topN": 3},
                "llm": {"kind": "llm", "model": "chat", "params": {"max_tokens": 8}},
            },
            "flow": ["embedding >> retriever >> reranker >> llm"],
            "ingest": {"tokens": ["staff"], "chunkSize": 400, "chunkOverlap": 40, "maxFileBytes": 65536},
        }, {
            "name": "guarded-rag",  # an optional guard service that is down: the answer comes without it
            "nodes": {
                "embedding": {"kind": "embedding", "model": "embed"},
                "retriever": {"kind": "retriever", "store": {"kind": "sqlite", "path": str(tmp / "vectors.db")}},
                "guard": {"kind": "http", "url": f"http://127.0.0.1:{free_port()}/check", "outputs": {"documents": "documents"},
                          "optional": True},
                "llm": {"kind": "llm", "model": "chat", "params": {"max_tokens": 8}},
            },
            "flow": ["embedding >> retriever >> guard >> llm"],
        }, {
            "name": "failing-rag",
            "nodes": {"llm": {"kind": "llm", "model": "failing", "retries": 1, "backoffS": 0.01}},
            "flow": ["llm"],
        }, {
            "name": "cutoff-rag",
            "nodes": {"llm": {"kind": "llm", "model": "cutoff"}},
            "flow": ["llm"],
        }],
        "gateway": {
            "tokens": [
                {"name": "staff", "token": STAFF, "priority": 10, "threshold": 50},
                {"name": "students", "token": STUDENTS, "priority": 1, "threshold": 5},
                {"name": "guest", "token": GUEST, "priority": 1, "threshold": 0},
            ],
            "authRefreshS": 0.5, "usageFlushS": 0.2,
        },
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory, embedder):
    tmp = tmp_path_factory.mktemp("pipeline-stack")
    with (
        sim_engine(tmp, ttft_ms=5, itl_ms=20, max_num_seqs=8) as sim,
        sim_engine(tmp, model="failing", ttft_ms=1, itl_ms=1, error_rate=1) as failing,
        sim_engine(tmp, model="cutoff", ttft_ms=1, itl_ms=5, die_mid_stream_rate=1) as cutoff,
        gateway(tmp, stack_spec(tmp), {"chat": [sim], "embed": [embedder], "failing": [failing], "cutoff": [cutoff]}) as gw,
    ):
        ingest = subprocess.run(
            [sys.executable, "-m", "flotilla.cli", "ingest", "rag", str(DOCS), "--url", gw],
            env={**os.environ, "FLOTILLA_TOKEN": STAFF}, capture_output=True, text=True, timeout=120,
        )
        assert ingest.returncode == 0, ingest.stderr
        yield {"gateway": gw, "sim": sim, "tmp": tmp, "ingest_output": ingest.stdout}


def client(stack, token=STAFF) -> OpenAI:
    return OpenAI(base_url=stack["gateway"] + "/v1", api_key=token, max_retries=0, timeout=60)


def dataprep(stack, path: str, token: str | None, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(stack["gateway"] + path, data=orjson.dumps(body or {}), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def metric(stack, name: str, **labels) -> float:
    with urllib.request.urlopen(stack["gateway"] + "/metrics", timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_the_cli_ingested_every_sample_document(stack):
    out = stack["ingest_output"]
    for name in ("station-handbook.md", "cafeteria.html", "lab-equipment.txt", "field-trips.pdf"):
        assert re.search(rf"ingested\s+\d+ chunks\s+examples/rag-docs/{re.escape(name)}|ingested\s+\d+ chunks\s+.*{re.escape(name)}", out), out
    status, listing = dataprep(stack, "/v1/dataprep/get", STAFF, {"pipeline": "rag"})
    assert status == 200 and len(listing["documents"]) == 4
    assert all(d["embedding_model"] == "embed" and d["chunks"] > 0 for d in listing["documents"])


def test_pipeline_is_listed_and_answers_with_citations(stack):
    api = client(stack)
    assert [m.id for m in api.models.list().data] == ["chat", "embed", "failing", "cutoff", "rag", "guarded-rag", "failing-rag", "cutoff-rag"]
    assert api.models.retrieve("rag").id == "rag"
    reply = api.chat.completions.create(model="rag", messages=[{"role": "user", "content": "Which drone carries the thermal camera?"}])
    assert reply.model == "rag" and reply.choices[0].message.content
    assert reply.usage.completion_tokens == 8
    citations = reply.citations  # an extra field the official client keeps
    assert citations[0]["id"].endswith("lab-equipment.txt#2") and "Skua carries the thermal" in citations[0]["text"]
    assert len(citations) == 3 and citations[0]["score"] >= citations[1]["score"]


def test_streamed_answer_carries_citations_on_its_first_chunk(stack):
    stream = client(stack).chat.completions.create(
        model="rag", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "When is pizza night?"}], extra_body={"top_n": 2},
    )
    chunks = list(stream)
    assert all(c.model == "rag" for c in chunks)
    assert [c["document"] for c in chunks[0].citations][0].endswith("cafeteria.html") and len(chunks[0].citations) == 2
    assert all(getattr(c, "citations", None) is None for c in chunks[1:])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage.completion_tokens == 8


def test_knobs_and_errors_use_openai_format(stack):
    api = client(stack)
    with pytest.raises(APIStatusError) as caught:
        api.chat.completions.create(model="rag", messages=[{"role": "user", "content": "x"}], extra_body={"k": 500})
    assert caught.value.status_code == 400 and caught.value.body["param"] == "k"
    quiet = api.chat.completions.create(model="rag", messages=[{"role": "user", "content": "Where is the mast?"}],
                                        extra_body={"score_threshold": 0.99})
    assert quiet.citations == []  # nothing is that similar: the LLM got no passages
    with pytest.raises(APIStatusError) as caught:
        api.embeddings.create(model="rag", input="x")
    assert caught.value.status_code == 400 and "is a pipeline" in caught.value.body["message"]
    with pytest.raises(APIStatusError) as caught:
        client(stack, "wrong-token-0001").chat.completions.create(model="rag", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 401


def test_usage_records_and_metrics_name_the_pipeline(stack):
    client(stack).chat.completions.create(model="rag", messages=[{"role": "user", "content": "Where is the weather mast?"}])
    rows = usage_rows(stack["tmp"] / f"flotilla-{stack['gateway'].rsplit(':', 1)[1]}.db", at_least=1)
    rag = [r for r in rows if r["model"] == "rag" and r["token_name"] == "staff"]
    assert rag and rag[0]["requests"] >= 1 and rag[0]["completion_tokens"] >= 8
    assert metric(stack, "flotilla_requests_total", model="rag", status="200", priority="10") >= 1
    assert metric(stack, "flotilla_pipeline_node_outcomes_total", node="reranker", kind="similarity-reranker", outcome="ok") >= 1
    assert metric(stack, "flotilla_pipeline_ingested_chunks_total", pipeline="rag") >= 10


def test_dataprep_access_and_document_lifecycle(stack, tmp_path):
    assert dataprep(stack, "/v1/dataprep/get", None)[0] == 401
    status, body = dataprep(stack, "/v1/dataprep/get", STUDENTS, {"pipeline": "rag"})
    assert status == 403 and "ingest.tokens" in body["error"]["message"]
    assert dataprep(stack, "/v1/dataprep/get", STAFF, {"pipeline": "nope"})[0] == 404

    async def upload(files: dict[str, bytes], token=STAFF, **fields):
        form = aiohttp.FormData()
        for key, value in fields.items():
            form.add_field(key, value)
        for name, data in files.items():
            form.add_field("files", data, filename=name)
        async with aiohttp.ClientSession() as session:
            async with session.post(stack["gateway"] + "/v1/dataprep/ingest", data=form,
                                    headers={"Authorization": f"Bearer {token}"}) as response:
                return response.status, await response.json()

    note = b"The greenhouse cat is called Pickles and sleeps on the heating pipe."
    status, body = asyncio.run(upload({"notes/cat.txt": note}, pipeline="rag"))
    assert status == 200 and body["documents"] == [{"document": "notes/cat.txt", "status": "ingested", "chunks": 1}]
    status, body = asyncio.run(upload({"notes/cat.txt": note}, pipeline="rag"))
    assert body["documents"][0]["status"] == "unchanged"
    reply = client(stack).chat.completions.create(model="rag", messages=[{"role": "user", "content": "What is the greenhouse cat called?"}])
    assert reply.citations[0]["id"] == "notes/cat.txt#0"

    assert asyncio.run(upload({"x.docx": b"PK.."}, pipeline="rag"))[0] == 415
    assert asyncio.run(upload({"big.txt": b"a" * 70000}, pipeline="rag"))[0] == 413
    assert asyncio.run(upload({"x.txt": b"x"}, token=STUDENTS, pipeline="rag"))[0] == 403
    status, body = asyncio.run(upload({"x.txt": b"x"}, pipeline="rag", colour="red"))
    assert status == 400 and body["error"]["param"] == "colour"

    status, body = dataprep(stack, "/v1/dataprep/delete", STAFF, {"pipeline": "rag", "file_path": "notes/cat.txt"})
    assert (status, body["deleted"]) == (200, 1)
    assert dataprep(stack, "/v1/dataprep/delete", STAFF, {"pipeline": "rag", "file_path": "notes/cat.txt"})[0] == 404


def test_links_are_fetched_and_ingested(stack, tmp_path):
    (tmp_path / "page.html").write_text("<html><body><p>The aurora camera sits on the library roof.</p></body></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/page.html"
        result = subprocess.run(
            [sys.executable, "-m", "flotilla.cli", "ingest", "rag", "--link", url, "--url", stack["gateway"]],
            env={**os.environ, "FLOTILLA_TOKEN": STAFF}, capture_output=True, text=True, timeout=120,
        )
        missing = subprocess.run(
            [sys.executable, "-m", "flotilla.cli", "ingest", "rag", "--link", url + ".gone", "--url", stack["gateway"]],
            env={**os.environ, "FLOTILLA_TOKEN": STAFF}, capture_output=True, text=True, timeout=120,
        )
    finally:
        server.shutdown()
    assert result.returncode == 0 and f"ingested      1 chunks  {url}" in result.stdout, result.stdout + result.stderr
    assert missing.returncode == 1 and "answered HTTP 404" in missing.stderr
    assert dataprep(stack, "/v1/dataprep/delete", STAFF, {"pipeline": "rag", "file_path": url})[0] == 200


async def _queue_waits(db, model: str) -> list[float]:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    from flotilla.store.schema import usage

    engine = create_async_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.select(usage.c.queue_wait_ms).where(usage.c.model == model))
            return [r[0] for r in rows if r[0] is not None]
    finally:
        await engine.dispose()


def _occupy_chat(stack, tokens: int) -> concurrent.futures.Future:
    """A long direct request holding chat's only slot (maxConcurrency 1)."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    return pool.submit(lambda: client(stack).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "long"}], max_tokens=tokens))


def _wait(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_pipeline_calls_are_held_to_the_callers_threshold(stack):
    busy = _occupy_chat(stack, 150)  # ~3 s at 20 ms per token
    _wait(lambda: metric(stack, "flotilla_replica_in_flight", model="chat") == 1, what="chat's slot to be taken")
    with pytest.raises(APIStatusError) as caught:
        client(stack, GUEST).chat.completions.create(model="rag", messages=[{"role": "user", "content": "Where is the mast?"}])
    assert not busy.done(), "the slot was freed too early for this test to mean anything"
    error = caught.value
    assert error.status_code == 429 and error.body["param"] == "llm" and error.body["code"] == "queue_threshold_exceeded"
    assert error.response.headers["retry-after"] == "1"
    busy.result(60)


def test_pipeline_calls_queue_by_the_callers_priority(stack):
    """With chat busy, a students request queues first, a staff pipeline request after it: staff's LLM call goes first."""
    busy = _occupy_chat(stack, 150)
    _wait(lambda: metric(stack, "flotilla_replica_in_flight", model="chat") == 1, what="chat's slot to be taken")
    finished: list[str] = []
    pool = concurrent.futures.ThreadPoolExecutor(2)

    def students():
        client(stack, STUDENTS).chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}], max_tokens=8)
        finished.append("students")

    def staff():
        client(stack).chat.completions.create(model="rag", messages=[{"role": "user", "content": "When is pizza night?"}])
        finished.append("staff")

    first = pool.submit(students)
    _wait(lambda: metric(stack, "flotilla_queue_depth", model="chat", priority="1") == 1, what="the students request to queue")
    second = pool.submit(staff)
    _wait(lambda: metric(stack, "flotilla_queue_depth", model="chat", priority="10") == 1, what="the pipeline's llm call to queue")
    assert not busy.done(), "the slot was freed before both requests queued: the test proves nothing"
    first.result(60), second.result(60), busy.result(60)
    assert finished == ["staff", "students"]
    db = stack["tmp"] / f"flotilla-{stack['gateway'].rsplit(':', 1)[1]}.db"
    # The pipeline's usage record carries the time its LLM call waited in chat's queue.
    _wait(lambda: any(w > 0 for w in asyncio.run(_queue_waits(db, "rag"))), what="the pipeline's queue wait to be recorded")


def test_client_disconnect_mid_stream_frees_the_model(stack):
    async def hang_up():
        async with aiohttp.ClientSession() as session:
            async with session.post(
                stack["gateway"] + "/v1/chat/completions", headers={"Authorization": f"Bearer {STAFF}"},
                json={"model": "rag", "stream": True, "max_tokens": 2000, "messages": [{"role": "user", "content": "Tell me everything."}]},
            ) as response:
                assert response.status == 200
                await response.content.readline()  # the first event: the model is generating
        # leaving the block closes the connection mid-stream

    asyncio.run(hang_up())
    _wait(lambda: metric(stack, "flotilla_replica_in_flight", model="chat") == 0, what="the gateway to release chat's slot")
    with urllib.request.urlopen(stack["sim"] + "/metrics", timeout=10) as response:
        sim_metrics = response.read().decode()
    _wait(lambda: "vllm:num_requests_running" in sim_metrics, what="sim metrics")

    def sim_running() -> float:
        with urllib.request.urlopen(stack["sim"] + "/metrics", timeout=10) as response:
            lines = [l for l in response.read().decode().splitlines() if l.startswith("vllm:num_requests_running")]
        return sum(float(l.rsplit(" ", 1)[1]) for l in lines)

    _wait(lambda: sim_running() == 0, what="the engine to stop generating for the departed client")
    db = stack["tmp"] / f"flotilla-{stack['gateway'].rsplit(':', 1)[1]}.db"
    _wait(lambda: any(r["model"] == "rag" and r["outcome"] == "client_disconnected"
                      for r in usage_rows(db, group_by=("model", "outcome"))), what="the usage record of the departed client")


def test_failing_llm_is_retried_then_named_in_a_502(stack):
    with pytest.raises(APIStatusError) as caught:
        client(stack).chat.completions.create(model="failing-rag", messages=[{"role": "user", "content": "x"}])
    error = caught.value
    assert error.status_code == 502 and error.body["param"] == "llm" and error.body["code"] == "pipeline_node_failed"
    assert "after 2 attempts" in error.body["message"] and "HTTP 500" in error.body["message"]
    assert metric(stack, "flotilla_pipeline_node_retries_total", pipeline="failing-rag", node="llm") >= 1


def test_stream_broken_by_the_model_ends_with_an_error_event(stack):
    from openai import APIError

    stream = client(stack).chat.completions.create(model="cutoff-rag", stream=True, max_tokens=40,
                                                   messages=[{"role": "user", "content": "x"}])
    received = []
    with pytest.raises(APIError, match="the model's stream broke off"):
        for chunk in stream:
            received.append(chunk)
    assert received and received[0].model == "cutoff-rag"  # it had started: the error came in the stream


def test_optional_node_that_fails_is_named_and_skipped(stack):
    reply = client(stack).chat.completions.create(model="guarded-rag", messages=[{"role": "user", "content": "Which drone carries the thermal camera?"}])
    assert [s["node"] for s in reply.skipped_nodes] == ["guard"] and "cannot reach" in reply.skipped_nodes[0]["error"]
    assert reply.citations[0]["id"].endswith("lab-equipment.txt#2")  # the retrieved chunks went on without the guard
    assert metric(stack, "flotilla_pipeline_node_outcomes_total", pipeline="guarded-rag", node="guard", outcome="skipped") >= 1
