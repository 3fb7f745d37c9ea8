"""`engine: llamacpp`: llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`) on CPU."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field

from flotilla.engines.base import ContainerDefaults, EngineNotInstalled
from flotilla.local.gguf import resolve_gguf
from flotilla.spec.engines import LlamaCppOptions
from flotilla.spec.models import ModelSpec

LLAMA_CPP_SERVER_IMAGE = ContainerDefaults(
    image_repository="ghcr.io/ggml-org/llama.cpp", image_tag="server-b11206", port=8080
)
INSTALL_HINT = "pip install 'llama-cpp-python[server]' (compiles llama.cpp: several minutes on 2 cores)"
# llama_cpp.server imports these (the [server] extra); llama_cpp alone cannot serve.
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")


@dataclass(frozen=True)
class LlamaCppEngine:
    kind: str = "llamacpp"
    # llama_cpp.server has no /health; it loads the model before it listens, and /v1/models answers 200.
    health_path: str = "/v1/models"
    metrics_path: str | None = None
    # The chart runs llama.cpp's own server image (its flags and /health differ from llama-cpp-python's,
    # which is what runs here): these defaults mirror charts/flotilla/templates/_helpers.tpl.
    container: ContainerDefaults | None = field(default=LLAMA_CPP_SERVER_IMAGE)

    def server_args(self, model: ModelSpec, port: int) -> list[str]:
        """llama_cpp.server arguments with the model file resolved here; the listen host is the caller's."""
        options = model.llamacpp or LlamaCppOptions()
        gguf = resolve_gguf(model.name, options)
        args = [
            "--model", str(gguf),
            "--model_alias", model.upstream_model_name,
            "--port", str(port),
            "--n_ctx", str(options.n_ctx),
        ]
        if options.n_threads is not None:
            # Batch (prompt) threads too: otherwise prompt processing still takes every core.
            args += ["--n_threads", str(options.n_threads), "--n_threads_batch", str(options.n_threads)]
        if options.chat_format:
            args += ["--chat_format", options.chat_format]
        return args + list(options.extra_args)

    def local_command(self, model: ModelSpec, port: int) -> list[str]:
        missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            raise EngineNotInstalled(
                f"model {model.name!r} needs llama-cpp-python's server ({', '.join(missing)} missing): {INSTALL_HINT}"
            )
        # --interrupt_requests False: by default llama-cpp-python ends a running stream (with [DONE], then
        # a dropped connection) whenever another request waits for the model, and the gateway's health
        # check (GET /v1/models) is such a request. The gateway already sends one generation at a time.
        return [
            sys.executable, "-m", "llama_cpp.server", *self.server_args(model, port), "--host", "127.0.0.1",
            "--interrupt_requests", "False",
        ]


ENGINE = LlamaCppEngine()
