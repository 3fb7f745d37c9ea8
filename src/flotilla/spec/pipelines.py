"""The `pipelines:` section: GenAI microservice graphs (embedding -> retrieval -> rerank -> LLM) served as models.

A pipeline has a name (clients send it as `model`), typed nodes, and a flow in the `a >> b` grammar
(pipeline_flow.py). Nodes exchange typed values through named ports (pipeline_wiring.py checks that
every connection carries a value of the right type). Nodes that call a model name a model of the
same spec, so the chart can render them and the gateway queues their calls by the caller's priority.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import Field, PrivateAttr, field_validator, model_validator

from flotilla.spec.base import SpecModel
from flotilla.spec.pipeline_flow import Edge

PortType = Literal["text", "vector", "documents", "messages", "json"]
_NODE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_PIPELINE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
_SOURCE_REF = re.compile(r"^([a-z][a-z0-9_-]*)\.([a-z][a-z0-9_]*)$")

DEFAULT_SYSTEM_PROMPT = (
    "You answer questions using the numbered context passages below. Answer briefly, in plain words, "
    "only from the context; say so when the context does not contain the answer. "
    "Name the passages you used by their numbers, e.g. [1].\n\nContext:\n{context}"
)


class _Node(SpecModel):
    """What every node has: how long it may take, how it retries, whether the answer may go without it."""

    timeout_s: float = Field(
        30.0, gt=0, description="Longest the node may take, queueing included (llm streams: until its first token)."
    )
    retries: int = Field(
        0, ge=0, le=10, description="Extra attempts after a connect error, 429 or 5xx, before any byte streamed."
    )
    backoff_s: float = Field(0.2, ge=0, le=60, description="Wait before the first retry; doubles for each next one.")
    optional: bool = Field(
        False, description="On failure the node is skipped (named in the answer): its inputs pass on in place of its outputs."
    )
    inputs: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="Input port -> 'node.port' (or 'request.query', 'request.messages'); default: by type from the node's predecessors.",
    )


class EmbeddingNode(_Node):
    kind: Literal["embedding"]
    model: str = Field(..., description="A model of this spec serving /v1/embeddings (engine tei, onnx, external, ...).")


class SqliteStoreSpec(SpecModel):
    """The embedded local store: chunks and vectors in one SQLite file, exact cosine search with numpy."""

    kind: Literal["sqlite"]
    path: str | None = Field(None, description="SQLite file; default ./.flotilla/vectors-<pipeline>-<node>.db.")


class PgvectorStoreSpec(SpecModel):
    """PostgreSQL with the pgvector extension (the token store's server can hold it)."""

    kind: Literal["pgvector"]
    url: str | None = Field(
        None,
        description="postgresql://user:pass@host:5432/db (use ${ENV} for the password). Leave it out for the "
        "deployment's own store: the chart's `vectorStore`, docker compose's pgvector service.",
    )
    table: str | None = Field(None, description="Table of chunks; default flotilla_chunks_<pipeline>_<node>.")
    hnsw: bool = Field(True, description="Build an HNSW index (cosine) for approximate search on large tables.")

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            raise ValueError("pgvector url must start with postgresql://")
        return url

    @field_validator("table")
    @classmethod
    def _table_name(cls, table: str | None) -> str | None:
        if table is not None and not re.match(r"^[a-z_][a-z0-9_]{0,62}$", table):
            raise ValueError(f"table {table!r} must be lowercase letters, digits and '_' (at most 63)")
        return table


StoreSpec = Annotated[Union[SqliteStoreSpec, PgvectorStoreSpec], Field(discriminator="kind")]


class RetrieverNode(_Node):
    kind: Literal["retriever"]
    store: StoreSpec = Field(default_factory=lambda: SqliteStoreSpec(kind="sqlite"))
    k: int = Field(4, ge=1, description="Chunks returned; a request may ask for another `k` up to maxK.")
    max_k: int = Field(50, ge=1, le=1000, description="Largest `k` a request may ask for.")
    score_threshold: float | None = Field(
        None, ge=-1, le=1, description="Drop chunks whose cosine similarity is below this (request: score_threshold)."
    )

    @model_validator(mode="after")
    def _k_within_max(self) -> "RetrieverNode":
        if self.k > self.max_k:
            raise ValueError(f"k ({self.k}) must not exceed maxK ({self.max_k})")
        return self


class RerankerNode(_Node):
    kind: Literal["reranker"]
    model: str = Field(..., description="A model serving TEI's /rerank (engine tei; engine onnx: similarity reranker).")
    top_n: int = Field(3, ge=1, description="Chunks kept; a request may ask for another `top_n` up to maxTopN.")
    max_top_n: int = Field(50, ge=1, le=1000)

    @model_validator(mode="after")
    def _top_n_within_max(self) -> "RerankerNode":
        if self.top_n > self.max_top_n:
            raise ValueError(f"topN ({self.top_n}) must not exceed maxTopN ({self.max_top_n})")
        return self


class LlmNode(_Node):
    kind: Literal["llm"]
    model: str = Field(..., description="A model of this spec serving /v1/chat/completions.")
    timeout_s: float = Field(300.0, gt=0, description="Longest until the answer (streamed: its first token), queueing included.")
    system_prompt: str = Field(
        DEFAULT_SYSTEM_PROMPT, description="System message; {context} becomes the numbered retrieved chunks."
    )
    max_context_chars: int = Field(
        6000, ge=100, description="Context beyond this many characters is cut (the model's window is finite)."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Default chat parameters (temperature, max_tokens, ...); the request's win."
    )

    @field_validator("system_prompt")
    @classmethod
    def _prompt_placeholders(cls, prompt: str) -> str:
        try:
            prompt.format(context="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"systemPrompt may use only the placeholder {{context}} (write {{{{ and }}}} for braces): {exc!r}"
            ) from None
        return prompt


class HttpNode(_Node):
    """Any JSON-over-HTTP service: it receives its inputs as one JSON object, answers its outputs as one."""

    kind: Literal["http"]
    url: str = Field(..., description="POST target, e.g. http://guard:8080/v1/check.")
    outputs: dict[str, PortType] = Field(
        ..., min_length=1, description="Output ports and their types, read from the response's keys of the same names."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers (use ${ENV} for secrets).")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} is not an http(s) URL")
        return url

    @field_validator("outputs")
    @classmethod
    def _output_names(cls, outputs: dict[str, str]) -> dict[str, str]:
        for name in outputs:
            if not re.match(r"^[a-z][a-z0-9_]*$", name):
                raise ValueError(f"output port {name!r} must be lowercase letters, digits and '_'")
        return outputs


NodeSpec = Annotated[
    Union[EmbeddingNode, RetrieverNode, RerankerNode, LlmNode, HttpNode], Field(discriminator="kind")
]
NODE_KINDS = ("embedding", "retriever", "reranker", "llm", "http")


class IngestSpec(SpecModel):
    """Data prep: who may add documents, how they are cut into chunks, and the limits of one request."""

    tokens: list[str] = Field(
        default_factory=list, description="Names of gateway tokens allowed to ingest, list and delete; none: nobody."
    )
    chunk_size: int = Field(800, ge=50, le=100_000, description="Characters per chunk (a request may set chunk_size).")
    chunk_overlap: int = Field(80, ge=0, description="Characters shared by neighbouring chunks.")
    max_file_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Larger files or fetched links get 413.")
    max_files: int = Field(64, ge=1, description="Files and links in one request.")
    allow_links: bool = Field(True, description="Let ingest requests name http(s) links the gateway fetches.")
    sources: list[str] = Field(
        default_factory=list,
        description="Files or folders (relative to the spec file) `flotilla up` ingests when it starts; unchanged ones are skipped.",
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> "IngestSpec":
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(f"chunkOverlap ({self.chunk_overlap}) must be smaller than chunkSize ({self.chunk_size})")
        if self.sources and not self.tokens:
            raise ValueError("`sources` are ingested with the first of `tokens`: name a gateway token there")
        return self


class PipelineSpec(SpecModel):
    name: str = Field(..., description="The OpenAI `model` clients send to call the pipeline.")
    description: str | None = None
    nodes: dict[str, NodeSpec] = Field(..., min_length=1)
    flow: list[str] = Field(
        ..., min_length=1, description="Lines in the grammar `a >> b >> c`, `(a, b) >> c`; one chain per line."
    )
    ingest: IngestSpec = Field(default_factory=IngestSpec)
    _graph: Any = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name_is_dns_label(cls, name: str) -> str:
        if not _PIPELINE_NAME.match(name):
            raise ValueError(
                f"pipeline name {name!r} must be lowercase letters, digits and '-', start with a letter, at most 40 characters"
            )
        return name

    @field_validator("nodes")
    @classmethod
    def _node_names(cls, nodes: dict[str, Any]) -> dict[str, Any]:
        for name in nodes:
            if name == "request" or not _NODE_NAME.match(name):
                raise ValueError(
                    f"node name {name!r} must be lowercase letters, digits, '_' or '-', start with a letter "
                    "(and not be 'request', the name of the incoming request)"
                )
        return nodes

    @model_validator(mode="after")
    def _flow_is_a_typed_dag(self) -> "PipelineSpec":
        from flotilla.spec.pipeline_wiring import build_graph  # the wiring rules live beside the grammar

        self._graph = build_graph(self)
        return self

    @property
    def graph(self):
        """The checked graph: edges, wiring of every input port, order, and the node whose output answers."""
        return self._graph

    @property
    def edges(self) -> list[Edge]:
        return list(self._graph.edges)

    def model_names(self) -> list[tuple[str, str]]:
        """(node, model) for every node that calls a model of the spec."""
        return [(n, node.model) for n, node in self.nodes.items() if hasattr(node, "model")]
