"""The whole spec file: models, gateway, benchmark, and the chart-only sections."""

from __future__ import annotations

from pydantic import Field, model_validator

from flotilla.spec.benchmark import BenchmarkSpec
from flotilla.spec.deploy import DeploySettings
from flotilla.spec.gateway import GatewaySpec
from flotilla.spec.models import ModelSpec


class FlotillaSpec(DeploySettings):
    models: list[ModelSpec] = Field(..., min_length=1, description="Models the gateway serves.")
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    benchmark: BenchmarkSpec = Field(default_factory=BenchmarkSpec)

    @model_validator(mode="after")
    def _model_names_unique(self) -> "FlotillaSpec":
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
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

    def model(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)
