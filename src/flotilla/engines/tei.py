"""`engine: tei`: Hugging Face Text Embeddings Inference (`text-embeddings-router`): embedding models
(/embed, /v1/embeddings) and cross-encoder rerankers (/rerank), on CPU or GPU.

Like TGI, the chart passes settings as environment variables (each of the router's flags reads the
variable of the same name); locally they become flags.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from flotilla.engines.base import ContainerDefaults, EngineNotInstalled
from flotilla.spec.embedders import TeiOptions
from flotilla.spec.models import ModelSpec

# The CPU image: embedding and reranker models are small; GPU images are tagged without "cpu-".
TEI_IMAGE = ContainerDefaults(
    image_repository="ghcr.io/huggingface/text-embeddings-inference", image_tag="cpu-1.8", port=8080
)
INSTALL_HINT = (
    "text-embeddings-router is not on PATH: install TEI (cargo install from its repository), "
    "use engine onnx for a local embedding model, or deploy with the Helm chart"
)


def _options(model: ModelSpec) -> TeiOptions:
    if model.tei is None:
        raise ValueError(f"model {model.name!r} has no `tei:` section")
    return model.tei


def tei_env(model: ModelSpec, port: int, host: str = "0.0.0.0") -> dict[str, str]:
    o = _options(model)
    env = {"MODEL_ID": o.model, "SERVED_MODEL_NAME": model.upstream_model_name}
    if o.revision:
        env["REVISION"] = o.revision
    if o.dtype:
        env["DTYPE"] = o.dtype
    if o.pooling:
        env["POOLING"] = o.pooling
    if o.max_client_batch_size is not None:
        env["MAX_CLIENT_BATCH_SIZE"] = str(o.max_client_batch_size)
    if o.max_batch_tokens is not None:
        env["MAX_BATCH_TOKENS"] = str(o.max_batch_tokens)
    if o.auto_truncate:
        env["AUTO_TRUNCATE"] = "true"
    env["HOSTNAME"] = host  # Kubernetes sets HOSTNAME to the pod name, which TEI would read as its address
    env["PORT"] = str(port)
    return env


@dataclass(frozen=True)
class TeiEngine:
    kind: str = "tei"
    health_path: str = "/health"
    metrics_path: str | None = None  # TEI's /metrics has no vLLM-style load gauges
    container: ContainerDefaults | None = field(default=TEI_IMAGE)

    def server_env(self, model: ModelSpec, port: int) -> dict[str, str]:
        return tei_env(model, port)

    def server_args(self, model: ModelSpec, port: int) -> list[str]:
        return list(_options(model).extra_args)

    def local_command(self, model: ModelSpec, port: int) -> list[str]:
        program = shutil.which("text-embeddings-router")
        if program is None:
            raise EngineNotInstalled(f"model {model.name!r} needs TEI: {INSTALL_HINT}")
        flags: list[str] = []
        for name, value in tei_env(model, port, host="127.0.0.1").items():
            flag = "--" + name.lower().replace("_", "-")
            flags += [flag] if value == "true" else [flag, value]
        return [program, *flags, *self.server_args(model, port)]


ENGINE = TeiEngine()
