"""A served model: its engine, replicas and per-replica capacity.

The model type is built from the engine registry: `engine` accepts every registered kind and each
kind with options gets its `<kind>:` section, so a new engine needs no change here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Optional

from pydantic import Field, create_model, field_validator, model_validator

from flotilla.engines.base import DISAGGREGATION, LORA, MULTINODE
from flotilla.engines.registry import ENGINES
from flotilla.spec.deploy import ModelDeploy
from flotilla.spec.scheduling import PriorityBurstSpec, SchedulingSpec
from flotilla.spec.serving import ExtraConfigSpec, LoraSpec, ParallelismSpec, RolesSpec, RoutingPolicy

if TYPE_CHECKING:
    from flotilla.engines.base import Engine

# Kubernetes object names are DNS-1035 labels; model names become part of them.
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
MODEL_NAME_MAX = 40  # a 22-character release prefix + "-" + the name fits a Service's 63


class ModelSpecBase(ModelDeploy):
    """Fields every model has; build_model_spec adds `engine` and the engines' option sections."""

    engines: ClassVar[Mapping[str, Engine]] = {}

    name: str = Field(
        ...,
        description="The OpenAI `model` clients send; it names Kubernetes objects (lowercase, digits, '-', at most 40).",
        # In the JSON Schema too, so that Helm refuses a bad name before rendering objects from it.
        json_schema_extra={"pattern": _DNS_LABEL.pattern, "maxLength": MODEL_NAME_MAX},
    )
    replicas: int = Field(1, ge=0, description="Engine replicas (ignored for external: one per URL).")
    max_concurrency: int | None = Field(
        None, ge=1,
        description="Requests one replica takes at once; the rest wait in the gateway's queue. Default: what "
        "the engine serves at once (llamacpp: nParallel; sim: maxNumSeqs; vllm: maxNumSeqs or 256; "
        "tgi: maxConcurrentRequests or 128; sglang: maxRunningRequests or 128; external: 8).",
    )
    scheduling: SchedulingSpec | None = Field(None, description="Overrides gateway.scheduling for this model.")
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
    loras: list[LoraSpec] = Field(
        default_factory=list, description="LoRA adapters served on this model's replicas, each listed as a model."
    )
    parallelism: ParallelismSpec = Field(default_factory=ParallelismSpec)
    roles: RolesSpec | None = Field(
        None, description="Disaggregated prefill/decode: replicas and settings of each role (replaces `replicas`)."
    )
    routing_policy: RoutingPolicy | None = Field(
        None, description="How the gateway picks this model's replicas: none (the gateway's `routing`), "
        "least-loaded, round-robin, random, or prefix-aware (the replica holding the longest prefix of the "
        "prompt, unless that would unbalance the load).",
    )
    extra_config: ExtraConfigSpec | None = Field(
        None, description="The engine's YAML config file (vLLM and SGLang --config), inline or from a ConfigMap."
    )

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

    @field_validator("routing_policy", mode="before")
    @classmethod
    def _kv_routing_is_not_here(cls, value: Any) -> Any:
        if value == "kv":
            raise ValueError(
                "routingPolicy 'kv' (KV-cache-aware routing) needs the engines' KV-cache events, which Flotilla "
                "does not read yet; prefix-aware routes by prompt prefixes the gateway has seen (or none, "
                "least-loaded, round-robin, random)"
            )
        return value

    @property
    def descriptor(self) -> Engine:
        return type(self).engines[self.engine]  # type: ignore[attr-defined]

    @model_validator(mode="after")
    def _engine_options_present(self) -> "ModelSpecBase":
        engine = self.descriptor
        kind = engine.kind
        if engine.container is None:
            if not self.urls:
                raise ValueError(f"engine {kind!r} needs `urls`: the base URLs of the OpenAI-compatible server")
        elif self.urls:
            raise ValueError(f"`urls` is only for engine 'external', not {kind!r}")
        if engine.options is not None and getattr(self, kind) is None:
            if engine.options_required:
                raise ValueError(f"engine {kind!r} needs a `{kind}:` section with at least `model`")
            setattr(self, kind, engine.options())
        for other in type(self).engines.values():
            if other.options is not None and other.kind != kind and getattr(self, other.kind) is not None:
                raise ValueError(f"`{other.kind}:` options given to a model whose engine is {kind!r}")
        if self.max_concurrency is None:
            self.max_concurrency = engine.max_concurrency(getattr(self, kind, None))
        return self

    @model_validator(mode="after")
    def _features_supported(self) -> "ModelSpecBase":
        engine = self.descriptor
        kind = engine.kind
        supported = engine.features
        if self.loras and LORA not in supported:
            raise ValueError(f"`loras` needs an engine that serves LoRA adapters (vllm, sim), not {kind!r}")
        names = [lora.name for lora in self.loras]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"LoRA adapter names must be unique; repeated: {', '.join(repeated)}")
        if self.name in names:
            raise ValueError(f"LoRA adapter {self.name!r} has the model's own name")
        par = self.parallelism
        if par.nodes > 1 and MULTINODE not in supported:
            raise ValueError(f"parallelism.nodes > 1 needs an engine that runs across nodes (vllm, sglang), not {kind!r}")
        tensor = self.tensor_parallel_size
        if tensor is not None and (tensor * par.pipeline) % par.nodes:
            raise ValueError(
                f"parallelism: tensor x pipeline ({tensor} x {par.pipeline}) GPUs must split evenly over {par.nodes} nodes"
            )
        if par.nodes > 1 and self.autoscaling is not None and self.autoscaling.enabled:
            raise ValueError("autoscaling a multi-node model (parallelism.nodes > 1) is not supported: set its replicas")
        if self.roles is not None:
            if DISAGGREGATION not in supported:
                raise ValueError(f"`roles` (disaggregated prefill/decode) needs engine vllm (or sim), not {kind!r}")
            if par.nodes > 1:
                raise ValueError("`roles` with parallelism.nodes > 1 is not supported: disaggregate single-node replicas")
        burst = self.priority_burst
        if burst is not None and engine.concurrency_option is not None and self.max_concurrency is not None:
            # Burst requests the engine cannot run at once would wait inside it, behind the very
            # requests they were meant to pass: the knob would silently do nothing.
            options = getattr(self, kind, None)
            serves = engine.max_concurrency(options)
            wanted = self.max_concurrency + burst.slots
            if wanted > serves:
                option = engine.options.model_fields[engine.concurrency_option].alias or engine.concurrency_option
                raise ValueError(
                    f"priorityBurst: maxConcurrency {self.max_concurrency} + {burst.slots} burst slots = {wanted} "
                    f"requests at once, but this {kind} engine runs at most {serves} ({kind}.{option}); the burst "
                    f"would wait inside the engine. Raise {kind}.{option} to {wanted} or lower maxConcurrency"
                )
        configs = [self.extra_config] + ([self.roles.prefill.extra_config, self.roles.decode.extra_config] if self.roles else [])
        if any(configs) and engine.config_flag is None:
            raise ValueError(f"`extraConfig` needs an engine that reads a config file (vllm, sglang), not {kind!r}")
        return self

    @property
    def tensor_parallel_size(self) -> int | None:
        if self.parallelism.tensor is not None:
            return self.parallelism.tensor
        options = getattr(self, self.engine, None)  # type: ignore[attr-defined]
        return getattr(options, "tensor_parallel_size", None)

    def routing(self, gateway_routing: str) -> str:
        """The replica choice in force: the model's routingPolicy, or the gateway's `routing`."""
        policy = self.routing_policy
        return gateway_routing if policy in (None, "none") else policy

    @property
    def upstream_model_name(self) -> str:
        return self.served_model_name or self.name

    @property
    def replica_count(self) -> int:
        if self.descriptor.container is None:
            return len(self.urls)
        return self.roles.decode.replicas if self.roles else self.replicas

    @property
    def forwards_vllm_priority(self) -> bool:
        """vLLM with --scheduling-policy priority (or the sim imitating it) takes each request's priority."""
        options = getattr(self, self.engine, None)  # type: ignore[attr-defined]
        return self.engine in ("vllm", "sim") and getattr(options, "scheduling_policy", None) == "priority"  # type: ignore[attr-defined]


def build_model_spec(engines: Mapping[str, Engine], name: str = "ModelSpec") -> type[ModelSpecBase]:
    """The model type for a set of engine kinds: `engine` is one of them, each gets its options section."""
    kinds = tuple(engines)
    fields: dict[str, Any] = {
        "engine": (Literal[kinds], Field(..., description=" | ".join(kinds))),  # type: ignore[valid-type]
    }
    for kind, engine in engines.items():
        if engine.options is not None:
            fields[kind] = (Optional[engine.options], None)  # noqa: UP045 (create_model needs a runtime type)
    model = create_model(name, __base__=ModelSpecBase, __module__=__name__, **fields)
    type.__setattr__(model, "engines", dict(engines))
    return model


if TYPE_CHECKING:
    ModelSpec = ModelSpecBase
else:
    ModelSpec = build_model_spec(ENGINES)
