"""A served model: its engine, replicas and per-replica capacity."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from flotilla.spec.deploy import ModelDeploy
from flotilla.spec.embedders import OnnxOptions, TeiOptions
from flotilla.spec.engines import (
    EngineKind,
    LlamaCppOptions,
    SglangOptions,
    SimOptions,
    TgiOptions,
    VllmOptions,
)
from flotilla.spec.scheduling import PriorityBurstSpec, RoutingPolicy, SchedulingSpec

# Kubernetes object names are DNS-1035 labels; model names become part of them.
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")


class ModelSpec(ModelDeploy):
    name: str = Field(..., description="The OpenAI `model` clients send.")
    engine: EngineKind = Field(..., description="sim | llamacpp | vllm | sglang | tgi | tei | onnx | external")
    replicas: int = Field(1, ge=0, description="Engine replicas (ignored for external: one per URL).")
    max_concurrency: int = Field(
        8, ge=1, description="Requests one replica takes at once; the rest wait in the gateway's queue."
    )
    scheduling: SchedulingSpec | None = Field(None, description="Overrides gateway.scheduling for this model.")
    routing: RoutingPolicy | None = Field(None, description="Overrides gateway.routing for this model.")
    priority_burst: PriorityBurstSpec | None = Field(
        None, description="Slots beyond maxConcurrency for high priorities (the engine must have room for them)."
    )
    min_tokens_per_second: float | None = Field(
        None, gt=0,
        description="Admit another request onto a replica only while each of its requests still decodes at least "
        "this fast (read from the engine's own inter-token latency); maxConcurrency stays the ceiling.",
    )
    served_model_name: str | None = Field(
        None, description="Model name the engine expects; default: `name`."
    )
    urls: list[str] = Field(
        default_factory=list, description="Base URLs of an external engine (http or https; a trailing /v1 is optional)."
    )
    api_key: str | None = Field(None, description="Bearer token the gateway sends to an external engine.")
    sim: SimOptions | None = None
    llamacpp: LlamaCppOptions | None = None
    vllm: VllmOptions | None = None
    sglang: SglangOptions | None = None
    tgi: TgiOptions | None = None
    tei: TeiOptions | None = None
    onnx: OnnxOptions | None = None

    @field_validator("name")
    @classmethod
    def _name_is_dns_label(cls, name: str) -> str:
        if not _DNS_LABEL.match(name):
            raise ValueError(
                f"model name {name!r} must be lowercase letters, digits and '-', start with a letter, "
                "at most 40 characters (it names Kubernetes objects)"
            )
        return name

    @field_validator("urls")
    @classmethod
    def _urls_are_http(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        # OpenAI clients' base URLs end in /v1; the gateway appends the /v1/... path itself.
        return [u.rstrip("/").removesuffix("/v1") for u in urls]

    @model_validator(mode="after")
    def _engine_options_present(self) -> "ModelSpec":
        if self.engine == "external":
            if not self.urls:
                raise ValueError("engine 'external' needs `urls`: the base URLs of the OpenAI-compatible server")
            return self
        if self.urls:
            raise ValueError(f"`urls` is only for engine 'external', not {self.engine!r}")
        if self.engine == "sim" and self.sim is None:
            self.sim = SimOptions()
        if self.engine == "llamacpp" and self.llamacpp is None:
            self.llamacpp = LlamaCppOptions()
        if self.engine == "onnx" and self.onnx is None:
            self.onnx = OnnxOptions()
        if self.engine in ("vllm", "sglang", "tgi", "tei") and getattr(self, self.engine) is None:
            raise ValueError(f"engine {self.engine!r} needs a `{self.engine}:` section with at least `model`")
        return self

    @property
    def upstream_model_name(self) -> str:
        return self.served_model_name or self.name

    @property
    def replica_count(self) -> int:
        return len(self.urls) if self.engine == "external" else self.replicas

    @property
    def forwards_vllm_priority(self) -> bool:
        return self.engine == "vllm" and self.vllm is not None and self.vllm.scheduling_policy == "priority"
