"""The whole spec file: models, gateway, pipelines, benchmark, and the chart-only sections."""

from __future__ import annotations

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from flotilla.spec.benchmark import BenchmarkSpec
from flotilla.spec.deploy import DeploySettings
from flotilla.spec.gateway import GatewaySpec
from flotilla.spec.models import ModelSpec
from flotilla.spec.pipelines import PipelineSpec

# What a pipeline node may ask of a model, by engine kind (external: whatever the URL serves).
_NODE_ENGINES = {
    "llm": ("sim", "llamacpp", "vllm", "sglang", "tgi", "external"),  # /v1/chat/completions
    "embedding": ("tei", "onnx", "vllm", "sglang", "llamacpp", "external"),  # /v1/embeddings
    "reranker": ("tei", "onnx", "external"),  # TEI's /rerank
}


class FlotillaSpec(DeploySettings):
    models: list[ModelSpec] = Field(..., min_length=1, description="Models the gateway serves.")
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    pipelines: list[PipelineSpec] = Field(
        default_factory=list, description="Graphs of models and services, served by the gateway as models."
    )
    benchmark: BenchmarkSpec = Field(default_factory=BenchmarkSpec)

    @model_validator(mode="after")
    def _model_names_unique(self) -> "FlotillaSpec":
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        # LoRA adapters are listed as models too: their names share the same space.
        adapters = [(lora.name, m.name) for m in self.models for lora in m.loras]
        for adapter, owner in adapters:
            if adapter in names:
                raise ValueError(f"LoRA adapter {adapter!r} of model {owner!r} has the name of a model")
        adapter_names = [a for a, _ in adapters]
        repeated = sorted({a for a in adapter_names if adapter_names.count(a) > 1})
        if repeated:
            raise ValueError(f"LoRA adapter names must be unique across models; repeated: {', '.join(repeated)}")
        return self

    @model_validator(mode="after")
    def _many_gateways_share_a_broker(self) -> "FlotillaSpec":
        g = self.gateway
        if g.replicas > 1 and g.dispatcher.kind == "local" and self.rabbitmq.type == "none":
            raise ValueError(
                f"gateway.replicas is {g.replicas} but the dispatcher is local: each gateway would keep its own "
                "queues, so priorities would hold only within one gateway and every replica could receive "
                f"{g.replicas} x maxConcurrency requests. Set gateway.dispatcher (kind: rabbitmq, url: amqp://...) "
                "or, in the chart, rabbitmq.type: internal or external"
            )
        return self

    @model_validator(mode="after")
    def _pipelines_refer_to_the_spec(self) -> "FlotillaSpec":
        problems: list[InitErrorDetails] = []

        def problem(loc: tuple, message: str, value: object = None) -> None:
            problems.append(InitErrorDetails(type=PydanticCustomError("pipeline", message), loc=loc, input=value))  # type: ignore[arg-type]

        models = {m.name: m for m in self.models}
        tokens = {t.name for t in self.gateway.tokens}
        seen: set[str] = set()
        for i, pipeline in enumerate(self.pipelines):
            if pipeline.name in models:
                problem(("pipelines", i, "name"), f"{pipeline.name!r} is already a model's name", pipeline.name)
            if pipeline.name in seen:
                problem(("pipelines", i, "name"), f"pipeline names must be unique; {pipeline.name!r} repeats", pipeline.name)
            seen.add(pipeline.name)
            for node_name, node in pipeline.nodes.items():
                model_name = getattr(node, "model", None)
                if model_name is None:
                    continue
                loc = ("pipelines", i, "nodes", node_name, "model")
                model = models.get(model_name)
                if model is None:
                    problem(loc, f"unknown model {model_name!r} (models: {', '.join(models)})", model_name)
                elif model.engine not in _NODE_ENGINES[node.kind]:
                    problem(
                        loc,
                        f"a {node.kind} node cannot use model {model_name!r}: engine {model.engine} does not serve it "
                        f"(engines that do: {', '.join(_NODE_ENGINES[node.kind])})",
                        model_name,
                    )
            for j, token in enumerate(pipeline.ingest.tokens):
                if token not in tokens:
                    problem(
                        ("pipelines", i, "ingest", "tokens", j),
                        f"no gateway token is named {token!r} (tokens: {', '.join(sorted(tokens)) or 'none'})",
                        token,
                    )
        if problems:
            raise ValidationError.from_exception_data("FlotillaSpec", problems)
        return self

    def model(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def pipeline(self, name: str) -> PipelineSpec:
        for p in self.pipelines:
            if p.name == name:
                return p
        raise KeyError(name)
