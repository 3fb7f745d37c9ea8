"""`engine: tei`: Hugging Face Text Embeddings Inference (`text-embeddings-router`): embedding models
(/embed, /v1/embeddings) and cross-encoder rerankers (/rerank), on CPU or GPU.

Like TGI, the chart passes settings as environment variables (each of the router's flags reads the
variable of the same name); locally they become flags.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from flotilla.engines.base import ContainerDefaults, Engine, EngineNotInstalled
from flotilla.engines.rules import EnvHost, EnvOpt, EnvPort, EnvServed, EnvSwitch, Extra, Rules
from flotilla.engines.tgi import env_as_flags
from flotilla.spec.base import SpecModel

if TYPE_CHECKING:
    from flotilla.spec.models import ModelSpec

INSTALL_HINT = (
    "text-embeddings-router is not on PATH: install TEI (cargo install from its repository), "
    "use engine onnx for a local embedding model, or deploy with the Helm chart"
)


class TeiOptions(SpecModel):
    """Hugging Face Text Embeddings Inference (`text-embeddings-router`): embedding or cross-encoder reranker models."""

    model: str = Field(..., description="Hugging Face id or path, e.g. BAAI/bge-small-en-v1.5 or BAAI/bge-reranker-base.")
    revision: str | None = None
    dtype: Literal["float16", "float32"] | None = None
    pooling: Literal["cls", "mean", "splade", "last-token"] | None = Field(
        None, description="Override the model's pooling (embedding models)."
    )
    max_client_batch_size: int | None = Field(None, ge=1, description="Most inputs one request may carry (TEI: 32).")
    max_batch_tokens: int | None = Field(None, ge=1, description="Tokens batched at once (TEI: 16384).")
    max_concurrent_requests: int | None = Field(
        None, ge=1, description="MAX_CONCURRENT_REQUESTS: TEI answers 429 beyond it (TEI's default: 512)."
    )
    auto_truncate: bool = Field(True, description="Cut inputs longer than the model's window instead of failing.")
    extra_args: list[str] = Field(default_factory=list)


TEI_RULES = Rules(
    args=(Extra("tei.extraArgs"),),
    env=(
        EnvOpt("MODEL_ID", "tei.model"),
        EnvServed("SERVED_MODEL_NAME"),
        EnvOpt("REVISION", "tei.revision"),
        EnvOpt("DTYPE", "tei.dtype"),
        EnvOpt("POOLING", "tei.pooling"),
        EnvOpt("MAX_CLIENT_BATCH_SIZE", "tei.maxClientBatchSize", number=True),
        EnvOpt("MAX_BATCH_TOKENS", "tei.maxBatchTokens", number=True),
        EnvOpt("MAX_CONCURRENT_REQUESTS", "tei.maxConcurrentRequests", number=True),
        EnvSwitch("AUTO_TRUNCATE", "tei.autoTruncate"),
        # Kubernetes sets HOSTNAME to the pod name, which TEI would read as its listen address.
        EnvHost("HOSTNAME"),
        EnvPort("PORT"),
    ),
)


class TeiEngine(Engine):
    kind = "tei"
    concurrency_option: ClassVar[str | None] = "max_concurrent_requests"
    default_concurrency: ClassVar[int] = 512
    options = TeiOptions
    options_required = True
    rules = TEI_RULES
    # The CPU image: embedding and reranker models are small; GPU images are tagged without "cpu-".
    container = ContainerDefaults(
        "ghcr.io/huggingface/text-embeddings-inference", "cpu-1.8", 8080, ("text-embeddings-router",),
        resources={"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "4", "memory": "4Gi"}},
        has_python=False, shared_memory=False,  # one process, no shards to share memory between
    )
    # TEI's /metrics (te_queue_size, te_batch_current_size) carries no running/waiting pair the
    # gateway could subtract; the gateway's own count is the load.

    def local_command(self, model: ModelSpec, port: int) -> list[str]:
        program = shutil.which("text-embeddings-router")
        if program is None:
            raise EngineNotInstalled(f"model {model.name!r} needs TEI: {INSTALL_HINT}")
        env = self.server_env(model, port, host="127.0.0.1")
        switches = [f"--{name.lower().replace('_', '-')}" for name, value in env.items() if value == "true"]
        valued = env_as_flags({name: value for name, value in env.items() if value != "true"})
        return [program, *valued, *switches, *self.server_args(model, port)]


ENGINE = TeiEngine()
