"""The seed design's unified YAML (`opea_micro_services` + `opea_mega_service`) as a deployable spec.

`flotilla pipeline import` (pipeline/seed_import.py) turns the file into Flotilla `models:` and
`pipelines:` that call the services where they already run. Deploying it means running those
services too, so each imported service becomes the building block a user of that format expects
behind its endpoint, at its port: `/v1/embeddings` a TEI embedding model, `/v1/retrieval` a
retriever on the deployment's pgvector, `/v1/reranking` a TEI cross-encoder, `/v1/chat/completions`
a TGI model (the models of the seed's own GMConnector sample), and the mega service the gateway on
its port. A service that names its own `host` stays a remote service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flotilla.pipeline.seed_import import ImportProblem, import_seed

# The seed's GMConnector sample (BAAI/bge-base-en-v1.5, BAAI/bge-reranker-large, Intel/neural-chat-7b-v3-3);
# bge-reranker-base: the same family at a third of the size, what OPEA's own ChatQnA deploys.
EMBEDDING_MODEL = "BAAI/bge-base-en-v1.5"
RERANK_MODEL = "BAAI/bge-reranker-base"
LLM_MODEL = "Intel/neural-chat-7b-v3-3"
TOKEN_NAME = "opea"
TOKEN_ENV = "FLOTILLA_TOKEN_OPEA"


@dataclass
class SeedDeployment:
    spec: dict[str, Any]  # a Flotilla spec (references as ${ENV})
    service_ports: dict[str, int]  # model name -> the port its service kept in the seed file


def is_seed_format(data: Any) -> bool:
    return isinstance(data, dict) and "opea_micro_services" in data


def _model_name(node: str) -> str:
    return node.replace("_", "-").lower()


def seed_deployment(data: dict[str, Any], pipeline_name: str) -> SeedDeployment:
    """The seed file as a Flotilla spec whose services run beside the gateway (ImportProblem if not)."""
    fragment = import_seed(data, pipeline_name)
    services: dict[str, dict[str, Any]] = data["opea_micro_services"]
    [pipeline] = fragment["pipelines"]
    remote = {m["name"]: m for m in fragment["models"]}
    models: list[dict[str, Any]] = []
    ports: dict[str, int] = {}
    nodes: dict[str, Any] = {}
    for name, node in pipeline["nodes"].items():
        service = services[name]
        where = f"opea_micro_services.{name}"
        if "host" in service:  # the user runs it somewhere: keep calling it there
            nodes[name] = node
            if node.get("model") in remote:
                models.append(remote[node["model"]])
            continue
        port = service.get("port")
        endpoint = "/" + str(service["endpoint"]).strip("/")
        if node["kind"] == "embedding":
            model = {"name": node["model"], "engine": "tei", "tei": {"model": EMBEDDING_MODEL}}
            nodes[name] = node
        elif node["kind"] == "llm":
            model = {"name": node["model"], "engine": "tgi", "tgi": {"model": LLM_MODEL}}
            nodes[name] = node
        elif endpoint == "/v1/retrieval":
            nodes[name] = {"kind": "retriever", "store": {"kind": "pgvector"}}  # the deployment's own store
            model = None
        elif endpoint == "/v1/reranking":
            model = {"name": _model_name(name), "engine": "tei", "tei": {"model": RERANK_MODEL}}
            nodes[name] = {"kind": "reranker", "model": model["name"]}
        else:
            raise ImportProblem(
                f"{where}: no building block serves {endpoint} (Flotilla deploys /v1/embeddings, /v1/retrieval, "
                "/v1/reranking and /v1/chat/completions); run the service yourself and give its `host`"
            )
        if model is not None:
            models.append(model)
            if port is not None:
                ports[model["name"]] = port
    mega = data.get("opea_mega_service") or {}
    gateway: dict[str, Any] = {
        "host": "0.0.0.0",
        "port": mega.get("port", 8080) if isinstance(mega.get("port", 8080), int) else 8080,
        "tokens": [{"name": TOKEN_NAME, "token": "${" + TOKEN_ENV + "}", "priority": 1, "threshold": 64}],
        # In a cluster the token's value comes from this Secret (key: the token's name); compose reads .env.
        "tokensSecret": f"{pipeline_name}-tokens",
    }
    spec = {
        "models": models,
        "pipelines": [{**pipeline, "nodes": nodes, "ingest": {"tokens": [TOKEN_NAME]}}],
        "gateway": gateway,
        "vectorStore": {"type": "internal"},  # the chart's PostgreSQL; compose runs its own pgvector
    }
    return SeedDeployment(spec, ports)
