"""`engine: tgi`: Hugging Face Text Generation Inference (`text-generation-launcher`) on GPUs.

The chart configures TGI through environment variables (MODEL_ID, REVISION, ...) and passes only
`extraArgs` as arguments; locally the same settings become the launcher's flags (each of its flags
reads the environment variable of the same name, so the two forms are equivalent).
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field, model_validator

from flotilla.engines.base import ContainerDefaults, Engine, EngineNotInstalled
from flotilla.engines.rules import EnvHost, EnvOpt, EnvPort, Extra, Rules
from flotilla.spec.base import SpecModel

if TYPE_CHECKING:
    from flotilla.spec.models import ModelSpec

INSTALL_HINT = (
    "text-generation-launcher is not on PATH: install TGI from source (needs an NVIDIA GPU), "
    "or deploy with the Helm chart"
)


class TgiOptions(SpecModel):
    """Hugging Face Text Generation Inference."""

    model: str = Field(..., description="MODEL_ID: Hugging Face id or path.")
    revision: str | None = None
    max_input_length: int | None = Field(None, ge=1)
    max_total_tokens: int | None = Field(None, ge=2)
    max_concurrent_requests: int | None = Field(
        None, ge=1, description="MAX_CONCURRENT_REQUESTS: TGI answers 429 beyond it (TGI's default: 128)."
    )
    quantize: str | None = Field(None, description="awq, gptq, bitsandbytes, eetq, fp8, ...")
    num_shard: int = Field(1, ge=1)
    dtype: str | None = None
    extra_args: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _input_fits_total(self) -> "TgiOptions":
        if self.max_input_length and self.max_total_tokens and self.max_input_length >= self.max_total_tokens:
            raise ValueError(
                f"maxInputLength ({self.max_input_length}) must be below maxTotalTokens ({self.max_total_tokens})"
            )
        return self


TGI_RULES = Rules(
    args=(Extra("tgi.extraArgs"),),
    env=(
        EnvOpt("MODEL_ID", "tgi.model"),
        EnvOpt("REVISION", "tgi.revision"),
        # TGI 3 calls it MAX_INPUT_TOKENS; MAX_INPUT_LENGTH is still accepted as its legacy name.
        EnvOpt("MAX_INPUT_LENGTH", "tgi.maxInputLength", number=True),
        EnvOpt("MAX_TOTAL_TOKENS", "tgi.maxTotalTokens", number=True),
        EnvOpt("MAX_CONCURRENT_REQUESTS", "tgi.maxConcurrentRequests", number=True),
        EnvOpt("QUANTIZE", "tgi.quantize"),
        EnvOpt("NUM_SHARD", "tgi.numShard", number=True),
        EnvOpt("DTYPE", "tgi.dtype"),
        # Kubernetes sets HOSTNAME to the pod name, which TGI would otherwise read as its listen address.
        EnvHost("HOSTNAME"),
        EnvPort("PORT"),
    ),
)


def env_as_flags(env: dict[str, str]) -> list[str]:
    """MODEL_ID=x -> --model-id x: how text-generation-launcher names the flag of each variable."""
    flags: list[str] = []
    for name, value in env.items():
        flags += ["--" + name.lower().replace("_", "-"), value]
    return flags


class TgiEngine(Engine):
    kind = "tgi"
    concurrency_option: ClassVar[str | None] = "max_concurrent_requests"
    default_concurrency: ClassVar[int] = 128
    options = TgiOptions
    options_required = True
    rules = TGI_RULES
    container = ContainerDefaults(
        "ghcr.io/huggingface/text-generation-inference", "3.3.7", 8080, ("text-generation-launcher",)
    )
    # TGI's router gauges (docs: reference/metrics): the running batch and the queue.
    load_gauges = ("tgi_batch_current_size", "tgi_queue_size")
    gpu_option = "numShard"

    def local_command(self, model: ModelSpec, port: int) -> list[str]:
        program = shutil.which("text-generation-launcher")
        if program is None:
            raise EngineNotInstalled(f"model {model.name!r} needs TGI: {INSTALL_HINT}")
        env = self.server_env(model, port, host="127.0.0.1")
        return [program, *env_as_flags(env), *self.server_args(model, port)]


ENGINE = TgiEngine()
