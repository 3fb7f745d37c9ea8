"""The chart's pipeline wiring runs: the onnx engine's rendered arguments, the gateway's ConfigMap'd
spec with its pipeline and the environment the chart gives it (the vector store's URL from the
chart's Secret) start the real processes here, on a real PostgreSQL with pgvector; documents are
ingested the way the README says to on a cluster (`flotilla ingest --url`), then the pipeline
answers through the gateway with citations."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request

import pytest

from chartkit import container, one, render, replace_flag
from procs import free_port, running
from shared import pgvector_server, require_installed

FLOTILLA = [sys.executable, "-m", "flotilla.cli"]
pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def pgvector_url(tmp_path_factory):
    with pgvector_server(tmp_path_factory.mktemp("pg") / "data") as url:
        yield url


@pytest.fixture(scope="module")
def stack(tmp_path_factory, pgvector_url):
    require_installed("onnxruntime", "tokenizers")  # the onnx engine (the pipelines extra)
    tmp = tmp_path_factory.mktemp("chart-pipeline")
    values = {
        "models": [
            {"name": "chat", "engine": "sim", "sim": {"ttftMs": 5, "itlMs": 1, "deterministic": True}},
            {"name": "embed", "engine": "onnx", "onnx": {"threads": 1}},
        ],
        "pipelines": [{
            "name": "notes",
            "nodes": {
                "embedding": {"kind": "embedding", "model": "embed"},
                "retriever": {"kind": "retriever", "store": {"kind": "pgvector"}, "k": 2},
                "llm": {"kind": "llm", "model": "chat", "params": {"max_tokens": 4}},
            },
            "flow": ["embedding >> retriever >> llm"],
            "ingest": {"tokens": ["staff"]},
        }],
        "vectorStore": {"type": "external", "external": {"url": pgvector_url}},
        "gateway": {"tokens": [{"name": "staff", "token": "staff-secret-value", "priority": 10}]},
    }
    docs = render(values)
    spec_path = tmp / "flotilla.yaml"
    spec_path.write_text(one(docs, "ConfigMap", "rel-flotilla")["data"]["flotilla.yaml"])
    secret = {k: base64.b64decode(v).decode() for k, v in one(docs, "Secret", "rel-flotilla")["data"].items()}

    ports = {"chat": free_port(), "embed": free_port()}
    engine_args = {}
    for model in ports:
        args = container(one(docs, "Deployment", f"rel-flotilla-{model}"))["args"]
        engine_args[model] = replace_flag(replace_flag(args, "--port", str(ports[model])), "--host", "127.0.0.1")

    gateway = container(one(docs, "Deployment", "rel-flotilla"))
    env = {"FLOTILLA_DATABASE_URL": f"sqlite:///{tmp}/flotilla.db"}
    for entry in gateway["env"]:
        if "valueFrom" in entry:
            env[entry["name"]] = secret[entry["valueFrom"]["secretKeyRef"]["key"]]
    gateway_port = free_port()
    args = [a.replace("/etc/flotilla/flotilla.yaml", str(spec_path)) for a in gateway["args"]]
    args = replace_flag(replace_flag(args, "--port", str(gateway_port)), "--host", "127.0.0.1")
    rewritten = []
    for i, arg in enumerate(args):
        if i and args[i - 1] == "--endpoint":
            model = arg.split("=", 1)[0]
            arg = f"{model}=dns+http://localhost:{ports[model]}"
        rewritten.append(arg)

    with running([*FLOTILLA, *engine_args["chat"]], f"http://127.0.0.1:{ports['chat']}/health", tmp / "sim.log"), \
            running([*FLOTILLA, *engine_args["embed"]], f"http://127.0.0.1:{ports['embed']}/health", tmp / "embed.log"), \
            running([*FLOTILLA, *rewritten], f"http://127.0.0.1:{gateway_port}/health/ready", tmp / "gateway.log", env):
        yield {"url": f"http://127.0.0.1:{gateway_port}", "token": secret["token.staff"], "tmp": tmp, "env": env}


def test_the_gateway_got_the_vector_store_url_from_the_secret(stack):
    assert stack["env"]["FLOTILLA_VECTOR_DB_URL"].startswith("postgresql://")
    assert "FLOTILLA_VECTOR_DB_URL" in (stack["tmp"] / "flotilla.yaml").read_text()


def test_documents_ingested_with_flotilla_ingest_answer_the_pipeline(stack):
    notes = stack["tmp"] / "notes"
    notes.mkdir()
    (notes / "boat.txt").write_text("The station's rescue boat is called Kittiwake and is moored at the east jetty.")
    (notes / "radio.txt").write_text("The radio room is staffed from 07:00 to 19:00 every day.")
    env = {**os.environ, "FLOTILLA_TOKEN": stack["token"]}
    ingest = subprocess.run([*FLOTILLA, "ingest", "notes", str(notes), "--url", stack["url"]],
                            capture_output=True, text=True, env=env, timeout=120)
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    assert "2 document(s) into pipeline notes" in ingest.stdout

    body = json.dumps({"model": "notes", "messages": [{"role": "user", "content": "What is the rescue boat called?"}]}).encode()
    request = urllib.request.Request(
        f"{stack['url']}/v1/chat/completions", data=body,
        headers={"Authorization": f"Bearer {stack['token']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.load(response)
    assert answer["citations"][0]["document"].endswith("boat.txt")
    assert answer["usage"]["completion_tokens"] == 4
