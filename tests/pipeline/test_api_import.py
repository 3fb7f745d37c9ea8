"""The seed-format YAML import and the Python API build the same pipelines the YAML spec does."""

import re
import subprocess
import textwrap
import sys

import pytest
import yaml
from shared import need_shared

from flotilla.pipeline.api import MicroService, ServiceOrchestrator
from flotilla.pipeline.seed_import import ImportProblem, import_seed, import_seed_text
from flotilla.spec.loader import load_spec, parse_spec

from pipeline_helpers import REPO

SEED_YAML = """
opea_micro_services:
  embedding:
    endpoint: /v1/embeddings
    port: 6000
  retrieval:
    endpoint: /v1/retrieval
    port: 7000
  reranking:
    endpoint: /v1/reranking
    port: 8000
  llm:
    endpoint: /v1/chat/completions
    port: 9000

opea_mega_service:
  port: 8080
  mega_flow:
    - embedding >> retrieval >> reranking >> llm
"""


def graph_of(pipeline):
    """What makes two pipelines the same: nodes (as the spec holds them) and edges."""
    return pipeline.model_dump(include={"name", "nodes"}), sorted(map(str, pipeline.edges))


def full_spec(fragment: dict) -> dict:
    return {**fragment, "gateway": {"tokens": [{"name": "staff", "token": "staff-secret-1"}]}}


def test_seed_yaml_imports_as_a_checked_pipeline_over_its_services():
    fragment = import_seed_text(SEED_YAML, "chatqna")
    spec = parse_spec(full_spec(fragment), env={})
    pipeline = spec.pipeline("chatqna")
    assert [str(e) for e in pipeline.edges] == ["embedding >> retrieval", "retrieval >> reranking", "reranking >> llm"]
    assert {m.name: (m.engine, m.urls) for m in spec.models} == {
        "embedding": ("external", ["http://localhost:6000"]), "llm": ("external", ["http://localhost:9000"]),
    }
    nodes = pipeline.nodes
    assert nodes["embedding"].kind == "embedding" and nodes["llm"].kind == "llm"
    assert nodes["retrieval"].url == "http://localhost:7000/v1/retrieval"
    assert nodes["retrieval"].inputs == {"text": "request.query", "embedding": "embedding.vector"}
    assert nodes["reranking"].inputs == {"initial_query": "request.query", "retrieved_docs": "retrieval.retrieved_docs"}
    assert [str(s) for s in pipeline.graph.wiring["llm"]["documents"]] == ["reranking.reranked_docs"]


def test_the_seed_documents_own_yaml_imports():
    text = need_shared("seeds/001_857e738c752e81ed.txt").read_text()
    block = textwrap.dedent(re.search(r"```yaml\n(\s*opea_micro_services:.*?)```", text, re.S).group(1))
    fragment = import_seed_text(block, "chatqna")
    assert [str(e) for e in parse_spec(full_spec(fragment), env={}).pipeline("chatqna").edges] == [
        "embedding >> retrieval", "retrieval >> reranking", "reranking >> llm",
    ]


def test_seed_problems_name_the_field():
    with pytest.raises(ImportProblem, match=r"opea_micro_services.llm: needs `endpoint`"):
        import_seed({"opea_micro_services": {"llm": {"port": 9000}}, "opea_mega_service": {"mega_flow": ["llm"]}}, "x")
    with pytest.raises(ImportProblem, match=r"opea_mega_service.mega_flow\[0\]"):
        import_seed({"opea_micro_services": {"llm": {"endpoint": "/v1/chat/completions"}},
                     "opea_mega_service": {"mega_flow": ["llm >>"]}}, "x")


def test_import_command_writes_a_fragment_that_validates(tmp_path):
    seed = tmp_path / "ChatQnA.yaml"
    seed.write_text(SEED_YAML)
    out = tmp_path / "fragment.yaml"
    result = subprocess.run([sys.executable, "-m", "flotilla.cli", "pipeline", "import", str(seed), "-o", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    fragment = yaml.safe_load(out.read_text())
    assert fragment["pipelines"][0]["name"] == "chatqna"
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(full_spec(fragment)))
    check = subprocess.run([sys.executable, "-m", "flotilla.cli", "validate", str(spec_file)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr

    seed.write_text("opea_micro_services: {llm: {endpoint: /v1/chat/completions}}\nopea_mega_service: {mega_flow: [llm >> gpt]}\n")
    bad = subprocess.run([sys.executable, "-m", "flotilla.cli", "pipeline", "import", str(seed)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert "pipelines[0].flow[0]: unknown node 'gpt'" in bad.stderr


def test_python_api_in_the_seeds_shape_equals_the_import():
    """The seed's own Python example (remote services by port and endpoint) gives the imported pipeline."""
    builder = ServiceOrchestrator("chatqna")
    embedding = MicroService(name="embedding", port=6000, expose_endpoint="/v1/embeddings", use_remote_service=True)
    retriever = MicroService(name="retrieval", port=7000, expose_endpoint="/v1/retrieval", use_remote_service=True)
    rerank = MicroService(name="reranking", port=8000, expose_endpoint="/v1/reranking", use_remote_service=True)
    llm = MicroService(name="llm", port=9000, expose_endpoint="/v1/chat/completions", use_remote_service=True)
    builder.add(embedding).add(retriever).add(rerank).add(llm)
    builder.flow_to(embedding, retriever)
    builder.flow_to(retriever, rerank)
    builder.flow_to(rerank, llm)
    imported = parse_spec(full_spec(import_seed_text(SEED_YAML, "chatqna")), env={})
    built = parse_spec(full_spec(builder.spec_fragment()), env={})
    assert graph_of(built.pipeline("chatqna")) == graph_of(imported.pipeline("chatqna"))
    assert [m.model_dump() for m in built.models] == [m.model_dump() for m in imported.models]


def test_python_api_builds_the_rag_example():
    example = load_spec(REPO / "examples" / "rag.yaml", env={}).pipeline("rag")
    rag = ServiceOrchestrator("rag", description=example.description, ingest=example.ingest.model_dump(by_alias=True))
    embedding = MicroService("embedding", kind="embedding", model="embed")
    retriever = MicroService("retriever", kind="retriever", store={"kind": "sqlite", "path": "./.flotilla/rag-vectors.db"}, k=6)
    reranker = MicroService("reranker", kind="reranker", model="embed", topN=3, optional=True)
    llm = MicroService("llm", kind="llm", model="chat", params={"temperature": 0, "max_tokens": 160})
    rag.add(embedding).add(retriever).add(reranker).add(llm)
    rag.flow_to(embedding, retriever).flow_to(retriever, reranker).flow_to(reranker, llm)
    built = rag.pipeline()
    assert graph_of(built) == graph_of(example)
    assert built.ingest == example.ingest


def test_python_api_misuse_is_explained():
    with pytest.raises(ValueError, match="give `kind`"):
        MicroService("x")
    builder = ServiceOrchestrator("p")
    a, b = MicroService("a", kind="llm", model="chat"), MicroService("b", kind="llm", model="chat")
    builder.add(a)
    with pytest.raises(ValueError, match=r"add\('b'\) before flow_to"):
        builder.flow_to(a, b)
