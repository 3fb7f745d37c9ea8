"""`flotilla render --format gmc`: a GMConnector per pipeline that validates against GMC's CRD
(../shared/crds/gmc.opea.io_gmconnectors.yaml), and the workloads of its steps against Kubernetes
1.30+ and their CRDs; the graph, the downstream services and the wiring between steps."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from chartkit import REPO, container, env_map, find, one
from flotilla.chart.gmc import gmc_manifests
from flotilla.chart.spec_source import read_spec_source
from shared import need_shared
from test_manifests_validate import problems_of

RAG = REPO / "examples" / "rag.yaml"
CHATQNA = REPO / "examples" / "opea" / "chatqna.yaml"


def docs_of(path, **kw):
    manifests, warnings = gmc_manifests(read_spec_source(path), **kw)
    return [yaml.safe_load(m.text) for m in manifests], warnings


def root_steps(connector) -> list[dict]:
    return connector["spec"]["nodes"]["root"]["steps"]


@pytest.mark.parametrize("spec", [RAG, CHATQNA], ids=["rag", "chatqna"])
def test_every_manifest_validates_against_its_crd_or_kubernetes(spec):
    need_shared("crds/gmc.opea.io_gmconnectors.yaml")
    docs, _ = docs_of(spec, namespace="gmcsample")
    assert {"GMConnector", "Deployment", "Service", "Cluster"} <= {d["kind"] for d in docs}
    assert [p for d in docs for p in problems_of(d)] == []


def test_a_wrong_field_is_caught_by_the_gmc_crd():
    need_shared("crds/gmc.opea.io_gmconnectors.yaml")
    docs, _ = docs_of(CHATQNA)
    connector = one(docs, "GMConnector")
    root_steps(connector)[0]["internalService"]["downstream"] = True
    assert any("downstream" in p for p in problems_of(connector))


def test_chatqna_is_the_seed_sample_shape():
    docs, warnings = docs_of(CHATQNA, release="chatqna", namespace="gmcsample")
    connector = one(docs, "GMConnector", "chatqna")
    assert connector["apiVersion"] == "gmc.opea.io/v1alpha3"
    assert connector["spec"]["nodes"]["root"]["routerType"] == "Sequence"
    steps = root_steps(connector)
    assert [s["name"] for s in steps] == ["Embedding", "TeiEmbedding", "Retriever", "VectorDB", "Reranking",
                                         "TeiReranking", "Llm", "Tgi"]
    downstream = [s["name"] for s in steps if s["internalService"].get("isDownstreamService")]
    assert downstream == ["TeiEmbedding", "VectorDB", "TeiReranking", "Tgi"]
    called = [s for s in steps if not s["internalService"].get("isDownstreamService")]
    assert "data" not in called[0] and all(s["data"] == "$response" for s in called[1:])
    by_name = {s["name"]: s["internalService"] for s in steps}
    assert by_name["TeiEmbedding"]["config"] == {"modelId": "BAAI/bge-base-en-v1.5", "endpoint": "/embed"}
    assert by_name["Tgi"]["config"]["modelId"] == "Intel/neural-chat-7b-v3-3"
    assert by_name["Embedding"]["config"]["TEI_EMBEDDING_ENDPOINT"] == by_name["TeiEmbedding"]["serviceName"]
    assert any("no tokens, priorities or queues" in w for w in warnings)


def test_chatqna_workloads_are_wired_step_to_step():
    docs, _ = docs_of(CHATQNA, release="chatqna", namespace="gmcsample")
    # The router-called microservices are OPEA's images on OPEA's ports.
    embedding = one(docs, "Deployment", "chatqna-embedding")
    c = container(embedding)
    assert c["image"].startswith("opea/embedding:") and c["ports"][0]["containerPort"] == 6000
    assert env_map(c)["TEI_EMBEDDING_ENDPOINT"] == "http://chatqna-flotilla-embedding:8080"
    assert one(docs, "Service", "chatqna-embedding")["spec"]["ports"][0]["port"] == 6000
    retrieval = container(one(docs, "Deployment", "chatqna-retrieval"))
    assert env_map(retrieval)["RETRIEVER_COMPONENT_NAME"] == "OPEA_RETRIEVER_PGVECTOR"
    assert env_map(retrieval)["PG_CONNECTION_STRING"] == {"secretKeyRef": {"name": "chatqna-retrieval-vectordb-app", "key": "uri"}}
    cluster = one(docs, "Cluster", "chatqna-retrieval-vectordb")
    assert cluster["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"] == ["CREATE EXTENSION IF NOT EXISTS vector"]
    llm = env_map(container(one(docs, "Deployment", "chatqna-llm")))
    assert llm["LLM_ENDPOINT"] == "http://chatqna-flotilla-llm:8080" and llm["LLM_MODEL_ID"] == "llm"
    # The engines are the chart's own: TEI and TGI with the models, cache and probes.
    tgi = container(one(docs, "Deployment", "chatqna-flotilla-llm"))
    assert tgi["image"].startswith("ghcr.io/huggingface/text-generation-inference:")
    assert env_map(tgi)["MODEL_ID"] == "Intel/neural-chat-7b-v3-3"
    assert tgi["startupProbe"]["httpGet"]["path"] == "/health"
    assert tgi["resources"]["limits"]["nvidia.com/gpu"] == 1
    tei = env_map(container(one(docs, "Deployment", "chatqna-flotilla-reranking")))
    assert tei["MODEL_ID"] == "BAAI/bge-reranker-base"
    assert not find(docs, "NetworkPolicy")  # the engines answer OPEA's microservices


def test_parallel_groups_become_an_ensemble(tmp_path):
    spec = tmp_path / "two.yaml"
    spec.write_text(yaml.safe_dump({
        "models": [{"name": "chat", "engine": "sim"}, {"name": "embed", "engine": "onnx"},
                   {"name": "rerank", "engine": "tei", "tei": {"model": "BAAI/bge-reranker-base"}}],
        "pipelines": [{
            "name": "two",
            "nodes": {
                "embedding": {"kind": "embedding", "model": "embed"},
                "docs": {"kind": "retriever", "store": {"kind": "pgvector"}},
                "faq": {"kind": "retriever", "store": {"kind": "pgvector"}},
                "reranker": {"kind": "reranker", "model": "rerank"},
                "llm": {"kind": "llm", "model": "chat"},
            },
            "flow": ["embedding >> (docs, faq) >> reranker >> llm"],
        }],
    }))
    docs, _ = docs_of(spec)
    connector = one(docs, "GMConnector", "two")
    nodes = connector["spec"]["nodes"]
    assert nodes["parallel-1"]["routerType"] == "Ensemble"
    assert [s["name"] for s in nodes["parallel-1"]["steps"]] == ["Retriever", "RetrieverFaq"]
    steps = root_steps(connector)
    group = next(s for s in steps if s.get("nodeName") == "parallel-1")
    assert group["data"] == "$response"
    downstream = [s["name"] for s in steps if s.get("internalService", {}).get("isDownstreamService")]
    assert downstream == ["TeiEmbedding", "VectorDB", "VectorDBFaq", "TeiReranking", "Sim"]
    assert len(find(docs, "Cluster")) == 2  # each retriever its own store


def test_a_spec_without_pipelines_is_refused(tmp_path):
    spec = tmp_path / "plain.yaml"
    spec.write_text("models: [{name: chat, engine: sim}]\n")
    result = subprocess.run([sys.executable, "-m", "flotilla.cli", "render", str(spec), "--format", "gmc", "-o", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "has no pipelines" in result.stderr


def test_render_command_prints_the_stream_warning(tmp_path):
    result = subprocess.run([sys.executable, "-m", "flotilla.cli", "render", str(CHATQNA), "--format", "gmc",
                             "-o", str(tmp_path / "gmc"), "-n", "gmcsample"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "GMC's router cuts long answers" in result.stderr
    assert (tmp_path / "gmc" / "gmconnector-chatqna.yaml").is_file()
