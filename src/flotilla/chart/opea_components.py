"""OPEA's microservices that GMC's router calls for each kind of pipeline node, and what they need.

Under GMC the router, not Flotilla's gateway, runs the pipeline: it POSTs each step the previous
step's answer. Those steps are OPEA's component images (GenAIComps), configured by environment to
call the pipeline's engines. Ports and health paths are OPEA's; the component variables are those
of OPEA release 1.3's images (comps/*/deployment/docker_compose).
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPEA_TAG = "1.3"


@dataclass(frozen=True)
class Component:
    step: str  # GMC's step name for it (its controller knows these)
    downstream_step: str  # GMC's name for what it calls
    image: str
    port: int
    endpoint: str  # what the router POSTs to
    env: dict[str, str] = field(default_factory=dict)
    downstream_variable: str = ""  # the variable holding the downstream's URL (GMC resolves these keys too)
    downstream_endpoint: str = ""  # the downstream's own path, for the GMConnector's config


COMPONENTS: dict[str, Component] = {
    "embedding": Component(
        "Embedding", "TeiEmbedding", f"opea/embedding:{OPEA_TAG}", 6000, "/v1/embeddings",
        {"EMBEDDING_COMPONENT_NAME": "OPEA_TEI_EMBEDDING"}, "TEI_EMBEDDING_ENDPOINT", "/embed",
    ),
    "retriever": Component(
        "Retriever", "VectorDB", f"opea/retriever:{OPEA_TAG}", 7000, "/v1/retrieval",
        {"RETRIEVER_COMPONENT_NAME": "OPEA_RETRIEVER_PGVECTOR"}, "PG_CONNECTION_STRING", "",
    ),
    "reranker": Component(
        "Reranking", "TeiReranking", f"opea/reranking:{OPEA_TAG}", 8000, "/v1/reranking",
        {"RERANK_COMPONENT_NAME": "OPEA_TEI_RERANKING"}, "TEI_RERANKING_ENDPOINT", "/rerank",
    ),
    "llm": Component(
        "Llm", "", f"opea/llm-textgen:{OPEA_TAG}", 9000, "/v1/chat/completions",
        {"LLM_COMPONENT_NAME": "OpeaTextGenService"}, "LLM_ENDPOINT", "/v1/chat/completions",
    ),
}

HEALTH_PATH = "/v1/health_check"
# Engines GMC has step names for; other engines keep their kind's name (GMC's CRD takes any name).
ENGINE_STEPS = {"tgi": "Tgi", "tei": "Tei", "vllm": "Vllm"}
