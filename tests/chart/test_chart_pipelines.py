"""`pipelines:` in the chart: the engines a pipeline needs (TEI, onnx) through the engine templates,
its vector store wired to the chart's PostgreSQL or a Secret, and the pipeline runtime in the
gateway's ConfigMap'd spec."""

from __future__ import annotations

import base64

import pytest
import yaml

from chartkit import REPO, container, env_map, find, one, render
from flotilla.chart.helm import HelmError

RAG = (REPO / "examples" / "k8s" / "rag.yaml").read_text()


def gateway_spec(docs, release: str = "rag") -> dict:
    return yaml.safe_load(one(docs, "ConfigMap", f"{release}-flotilla")["data"]["flotilla.yaml"])


def volumes(deployment) -> dict[str, dict]:
    return {v["name"]: v for v in deployment["spec"]["template"]["spec"].get("volumes", [])}


@pytest.fixture(scope="module")
def rag():
    return render(RAG, "rag", "llm")


def test_rag_example_tei_engines_run_their_models_from_the_cache(rag):
    for name, model in (("bge-embed", "BAAI/bge-base-en-v1.5"), ("bge-rerank", "BAAI/bge-reranker-base")):
        deployment = one(rag, "Deployment", f"rag-flotilla-{name}")
        c = container(deployment)
        assert c["image"] == "ghcr.io/huggingface/text-embeddings-inference:cpu-1.8"
        assert c["command"] == ["text-embeddings-router"]
        env = env_map(c)
        assert env["MODEL_ID"] == model and env["REVISION"] == "main"
        assert env["SERVED_MODEL_NAME"] == name
        assert env["PORT"] == "8080" and env["HOSTNAME"] == "0.0.0.0"
        # TEI's image points its hub cache at /data: the chart keeps it on the cache volume.
        assert env["HUGGINGFACE_HUB_CACHE"] == "/models/hub" and env["HF_HOME"] == "/models"
        assert volumes(deployment)["model-cache"]["persistentVolumeClaim"]["claimName"] == f"rag-flotilla-{name}-cache"
        assert "dshm" not in volumes(deployment)  # no shards, no shared memory: the limit stays the model's
        assert c["resources"]["limits"]["memory"] in ("4Gi", "6Gi")
        # Probes sized for a model load: the startup window (600 s) in periods of 10 s.
        assert c["startupProbe"]["httpGet"]["path"] == "/health"
        assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] == 600
        assert c["livenessProbe"]["httpGet"]["path"] == "/health"
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_rag_example_vllm_engine_with_its_token_and_download(rag):
    deployment = one(rag, "Deployment", "rag-flotilla-llama-8b")
    c = container(deployment)
    assert c["image"].startswith("vllm/vllm-openai:")
    assert c["args"][0] == "meta-llama/Llama-3.1-8B-Instruct"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = env_map(c)
    assert env["HF_TOKEN"] == {"secretKeyRef": {"name": "hf-token", "key": "HF_TOKEN"}}
    init = deployment["spec"]["template"]["spec"]["initContainers"]
    assert [i["name"] for i in init] == ["download"]
    assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] == 1200


def test_rag_example_gateway_runs_the_pipeline_on_the_chart_postgresql(rag):
    spec = gateway_spec(rag)
    [pipeline] = spec["pipelines"]
    assert pipeline["name"] == "rag" and pipeline["flow"] == ["embedding >> retriever >> reranker >> llm"]
    nodes = pipeline["nodes"]
    assert nodes["retriever"]["store"] == {"kind": "pgvector", "url": "${FLOTILLA_VECTOR_DB_URL}"}
    assert (nodes["embedding"]["model"], nodes["reranker"]["model"], nodes["llm"]["model"]) == ("bge-embed", "bge-rerank", "llama-8b")
    gateway = container(one(rag, "Deployment", "rag-flotilla"))
    env = env_map(gateway)
    # The URL, password included, comes from CloudNativePG's app Secret: never from the ConfigMap.
    assert env["FLOTILLA_VECTOR_DB_URL"] == {"secretKeyRef": {"name": "rag-flotilla-tokendb-app", "key": "uri"}}
    args = gateway["args"]
    endpoints = [args[i + 1] for i, a in enumerate(args) if a == "--endpoint"]
    assert "bge-embed=dns+http://rag-flotilla-bge-embed.llm.svc.cluster.local:8080" in endpoints
    assert "bge-rerank=dns+http://rag-flotilla-bge-rerank.llm.svc.cluster.local:8080" in endpoints
    assert "llama-8b=dns+http://rag-flotilla-llama-8b.llm.svc.cluster.local:8000" in endpoints
    cluster = one(rag, "Cluster", "rag-flotilla-tokendb")
    assert cluster["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"] == ["CREATE EXTENSION IF NOT EXISTS vector"]
    assert one(rag, "HTTPRoute")["spec"]["hostnames"] == ["rag.example.com"]
    assert "postgresql://" not in one(rag, "ConfigMap", "rag-flotilla")["data"]["flotilla.yaml"]


def test_the_pipeline_is_in_the_gateway_checksum(rag):
    other = render(RAG.replace("topN: 4", "topN: 5"), "rag", "llm")
    annotation = lambda docs: one(docs, "Deployment", "rag-flotilla")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]  # noqa: E731
    assert annotation(rag) != annotation(other)


def base(**extra):
    values = {
        "models": [
            {"name": "chat", "engine": "sim"},
            {"name": "embed", "engine": "onnx", "onnx": {"threads": 2}},
        ],
        "pipelines": [{
            "name": "docs",
            "nodes": {
                "embedding": {"kind": "embedding", "model": "embed"},
                "retriever": {"kind": "retriever", "store": {"kind": "sqlite", "path": "./here.db"}},
                "llm": {"kind": "llm", "model": "chat"},
            },
            "flow": ["embedding >> retriever >> llm"],
        }],
        "gateway": {"tokens": [{"name": "staff", "token": "staff-secret-1", "priority": 10}]},
    }
    values.update(extra)
    return values


def test_sqlite_store_lives_on_the_gateway_data_volume_whatever_the_token_database():
    docs = render(base(tokenDatabase={"type": "external", "external": {"url": "postgresql+asyncpg://u:p@db/x"}}))
    spec = gateway_spec(docs, "rel")
    assert spec["pipelines"][0]["nodes"]["retriever"]["store"] == {"kind": "sqlite", "path": "/var/lib/flotilla/vectors/docs-retriever.db"}
    gateway = one(docs, "Deployment", "rel-flotilla")
    mounts = {m["name"]: m["mountPath"] for m in container(gateway)["volumeMounts"]}
    assert mounts["data"] == "/var/lib/flotilla"
    assert volumes(gateway)["data"]["persistentVolumeClaim"]["claimName"] == "rel-flotilla-data"
    assert one(docs, "PersistentVolumeClaim", "rel-flotilla-data")
    assert gateway["spec"]["strategy"]["type"] == "Recreate"  # one writer of the file at a time


def test_no_data_volume_without_sqlite():
    values = base(tokenDatabase={"type": "external", "external": {"url": "postgresql+asyncpg://u:p@db/x"}},
                  vectorStore={"type": "external", "external": {"existingSecret": "vectors", "secretKey": "url"}})
    values["pipelines"][0]["nodes"]["retriever"]["store"] = {"kind": "pgvector"}
    docs = render(values)
    assert not find(docs, "PersistentVolumeClaim")
    env = env_map(container(one(docs, "Deployment", "rel-flotilla")))
    assert env["FLOTILLA_VECTOR_DB_URL"] == {"secretKeyRef": {"name": "vectors", "key": "url"}}


def test_external_vector_store_url_goes_to_the_chart_secret_not_the_configmap():
    values = base(vectorStore={"type": "external", "external": {"url": "postgresql://vec:s3cret@pg.example:5432/vec"}})
    values["pipelines"][0]["nodes"]["retriever"]["store"] = {"kind": "pgvector", "table": "docs_chunks"}
    docs = render(values)
    secret = one(docs, "Secret", "rel-flotilla")
    assert base64.b64decode(secret["data"]["vector-db-url"]).decode() == "postgresql://vec:s3cret@pg.example:5432/vec"
    assert "s3cret" not in one(docs, "ConfigMap", "rel-flotilla")["data"]["flotilla.yaml"]
    env = env_map(container(one(docs, "Deployment", "rel-flotilla")))
    assert env["FLOTILLA_VECTOR_DB_URL"] == {"secretKeyRef": {"name": "rel-flotilla", "key": "vector-db-url"}}
    assert not find(docs, "Cluster")  # no PostgreSQL of the chart's own


def test_internal_vector_store_makes_the_cluster_even_with_sqlite_tokens():
    values = base(vectorStore={"type": "internal"})
    values["pipelines"][0]["nodes"]["retriever"]["store"] = {"kind": "pgvector"}
    docs = render(values)
    cluster = one(docs, "Cluster", "rel-flotilla-tokendb")
    assert "CREATE EXTENSION IF NOT EXISTS vector" in cluster["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"]
    env = env_map(container(one(docs, "Deployment", "rel-flotilla")))
    assert env["FLOTILLA_DATABASE_URL"] == "sqlite:////var/lib/flotilla/flotilla.db"
    assert env["FLOTILLA_VECTOR_DB_URL"]["secretKeyRef"]["name"] == "rel-flotilla-tokendb-app"


def test_token_database_cluster_gets_no_extension_unless_asked():
    docs = render(base(tokenDatabase={"type": "postgresql"}))
    assert "postInitApplicationSQL" not in one(docs, "Cluster")["spec"]["bootstrap"]["initdb"]


def test_pgvector_without_url_needs_a_vector_store():
    values = base()
    values["pipelines"][0]["nodes"]["retriever"]["store"] = {"kind": "pgvector"}
    with pytest.raises(HelmError, match=r"pipelines\[docs\]\.nodes\.retriever\.store: a pgvector store without `url` needs vectorStore"):
        render(values)


def test_pgvector_with_its_own_url_is_kept():
    values = base()
    values["pipelines"][0]["nodes"]["retriever"]["store"] = {"kind": "pgvector", "url": "postgresql://v:${PGPASS}@pg:5432/v"}
    spec = gateway_spec(render(values), "rel")
    assert spec["pipelines"][0]["nodes"]["retriever"]["store"]["url"] == "postgresql://v:${PGPASS}@pg:5432/v"


def test_sqlite_store_with_several_gateways_is_refused():
    values = base(gateway={"replicas": 2, "tokens": [{"name": "staff", "token": "staff-secret-1"}]},
                  tokenDatabase={"type": "postgresql"}, rabbitmq={"type": "internal"})
    with pytest.raises(HelmError, match="a sqlite store lives on one gateway pod's volume"):
        render(values)


def test_onnx_engine_runs_from_flotillas_image_without_cache_or_shm():
    docs = render(base())
    deployment = one(docs, "Deployment", "rel-flotilla-embed")
    c = container(deployment)
    assert c["image"].startswith("ghcr.io/flotilla/flotilla:")
    assert c["args"][:3] == ["embedder", "--port", "8080"] and c["args"][c["args"].index("--threads") + 1] == "2"
    assert set(volumes(deployment)) == {"tmp"}
    assert "HF_HOME" not in env_map(c)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001
    assert not find(docs, "PersistentVolumeClaim", "rel-flotilla-embed-cache")


CHATQNA = REPO / "examples" / "opea" / "chatqna.yaml"


def test_seed_file_renders_with_the_chart_directly(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "manifests"
    result = subprocess.run([sys.executable, "-m", "flotilla.cli", "render", str(CHATQNA), "-o", str(out), "-r", "chatqna"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    spec = yaml.safe_load((out / "configmap-chatqna-flotilla.yaml").read_text())["data"]["flotilla.yaml"]
    pipeline = yaml.safe_load(spec)["pipelines"][0]
    assert pipeline["name"] == "chatqna" and pipeline["flow"] == ["embedding >> retrieval >> reranking >> llm"]
    assert pipeline["nodes"]["retrieval"]["store"]["url"] == "${FLOTILLA_VECTOR_DB_URL}"
    assert (out / "cluster-chatqna-flotilla-tokendb.yaml").is_file()  # vectorStore internal
    gateway = yaml.safe_load((out / "deployment-chatqna-flotilla.yaml").read_text())
    assert container(gateway)["ports"][0]["containerPort"] == 8080  # the mega service's port


def test_seed_file_as_a_values_file_passes_helm_lint(tmp_path):
    import subprocess
    import sys

    from chartkit import CHART
    from flotilla.chart.helm import run_helm

    values = tmp_path / "values.yaml"
    result = subprocess.run([sys.executable, "-m", "flotilla.cli", "render", str(CHATQNA), "--format", "values", "-o", str(values)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(values.read_text())
    assert [m["engine"] for m in data["models"]] == ["tei", "tei", "tgi"]
    assert data["gateway"]["tokens"] == [{"name": "opea", "token": "${FLOTILLA_TOKEN_OPEA}", "priority": 1, "threshold": 64}]
    out = run_helm(["lint", "--strict", str(CHART), "--values", str(values)])
    assert "0 chart(s) failed" in out and "[WARNING]" not in out


def test_every_variant_validates_against_kubernetes_and_the_crds():
    from test_manifests_validate import problems_of

    sqlite = base(tokenDatabase={"type": "external", "external": {"url": "postgresql+asyncpg://u:p@db/x"}})
    external = base(vectorStore={"type": "external", "external": {"existingSecret": "vectors"}})
    external["pipelines"][0]["nodes"]["retriever"]["store"] = {"kind": "pgvector"}
    internal = base(vectorStore={"type": "internal"})
    internal["pipelines"][0]["nodes"]["retriever"]["store"] = {"kind": "pgvector"}
    for values in (sqlite, external, internal):
        docs = render(values)
        assert [p for d in docs for p in problems_of(d)] == []
