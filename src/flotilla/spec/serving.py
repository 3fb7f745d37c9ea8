"""How a model is served beyond one engine process: LoRA adapters, multi-node parallelism,
disaggregated prefill/decode roles, an engine config file, and the routing policy.

Each is checked against what the model's engine supports (its descriptor's `features`), in
ModelSpec's validators.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from flotilla.spec.base import SpecModel
from flotilla.spec.deploy import GpuSpec

# Adapter names are what clients send as `model`, and name directories in the engine's cache.
_ADAPTER_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
_HF_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

RoutingPolicy = Literal["none", "least-loaded", "round-robin", "random", "prefix-aware"]


class LoraSpec(SpecModel):
    """A LoRA adapter served on top of the model's weights, listed as a model of its own."""

    name: str = Field(..., description="The `model` clients send for this adapter (and the engine's adapter name).")
    source: str = Field(..., description="Hugging Face repository id, or an absolute path inside the engine's container.")
    revision: str | None = Field(None, description="Branch, tag or commit of a Hugging Face source; default: main.")

    @field_validator("name")
    @classmethod
    def _name_shape(cls, name: str) -> str:
        if not _ADAPTER_NAME.match(name):
            raise ValueError(
                f"adapter name {name!r} must be lowercase letters, digits, '.', '_' or '-', "
                "start and end with a letter or digit, at most 63 characters"
            )
        return name

    @model_validator(mode="after")
    def _source_shape(self) -> "LoraSpec":
        if not (self.source.startswith("/") or _HF_REPO_ID.match(self.source)):
            raise ValueError(f"source {self.source!r} is neither a Hugging Face repository id 'owner/repo' nor an absolute path")
        if self.revision and self.source.startswith("/"):
            raise ValueError("revision applies to a Hugging Face source, not to a path")
        return self

    @property
    def from_hub(self) -> bool:
        return not self.source.startswith("/")


class ParallelismSpec(SpecModel):
    """How one replica is split across GPUs and nodes (nodes > 1: a LeaderWorkerSet per replica)."""

    tensor: int | None = Field(None, ge=1, description="Tensor-parallel size across all nodes; default: the engine's tensorParallelSize.")
    pipeline: int = Field(1, ge=1, description="Pipeline-parallel size (stages).")
    nodes: int = Field(1, ge=1, description="Nodes (pods) per replica; GPUs per node = tensor x pipeline / nodes.")


class ConfigMapRef(SpecModel):
    name: str = Field(..., min_length=1, description="An existing ConfigMap in the release's namespace.")
    key: str = Field("config.yaml", description="The key holding the engine's YAML config.")


class ExtraConfigSpec(SpecModel):
    """The engine's own YAML config file (vLLM and SGLang `--config`): inline, or from a ConfigMap."""

    inline: dict[str, Any] | None = Field(None, description="The config itself (engine argument names as keys).")
    config_map_ref: ConfigMapRef | None = Field(None, description="A ConfigMap holding the config (chart only).")
    path: str = Field("/etc/flotilla/engine/config.yaml", description="Where the file is mounted in the container.")

    @model_validator(mode="after")
    def _one_source(self) -> "ExtraConfigSpec":
        if (self.inline is None) == (self.config_map_ref is None):
            raise ValueError("extraConfig needs exactly one of `inline` or `configMapRef`")
        if not self.path.startswith("/") or self.path.endswith("/"):
            raise ValueError(f"extraConfig.path {self.path!r} must be an absolute file path")
        return self


class RoleSpec(SpecModel):
    """One side of a disaggregated model: its replicas, GPUs and engine settings."""

    replicas: int = Field(1, ge=1)
    max_concurrency: int | None = Field(None, ge=1, description="Requests one replica of this role takes at once; default: the model's.")
    gpu: GpuSpec = Field(default_factory=GpuSpec)
    resources: dict[str, Any] = Field(default_factory=dict)
    extra_args: list[str] = Field(default_factory=list, description="Arguments added for this role only.")
    extra_config: ExtraConfigSpec | None = Field(None, description="This role's engine config file.")


class KvTransferSpec(SpecModel):
    """vLLM's --kv-transfer-config for both roles (NixlConnector moves the KV cache from prefill to decode)."""

    connector: str = Field("NixlConnector", description="vLLM KV connector class name.")
    extra_config: dict[str, Any] = Field(default_factory=dict, description="kv_connector_extra_config.")


class RolesSpec(SpecModel):
    """Disaggregated prefill/decode: the gateway sends each request to a prefill replica, then to a
    decode replica with the KV-transfer parameters the prefill returned."""

    prefill: RoleSpec = Field(default_factory=RoleSpec)
    decode: RoleSpec = Field(default_factory=RoleSpec)
    kv_transfer: KvTransferSpec = Field(default_factory=KvTransferSpec)

    @field_validator("prefill", "decode", mode="before")
    @classmethod
    def _null_is_defaults(cls, value: Any) -> Any:
        return {} if value is None else value


ROLE_NAMES = ("prefill", "decode")
