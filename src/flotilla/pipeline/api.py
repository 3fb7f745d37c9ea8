"""The Python API in the seed's shape: MicroService, ServiceOrchestrator with add() and flow_to().

    from flotilla.pipeline.api import MicroService, ServiceOrchestrator
    rag = ServiceOrchestrator("rag")
    embedding = MicroService("embedding", kind="embedding", model="embed")
    retriever = MicroService("retriever", kind="retriever", k=4)
    llm = MicroService("llm", kind="llm", model="chat")
    rag.add(embedding).add(retriever).add(llm)
    rag.flow_to(embedding, retriever)
    rag.flow_to(retriever, llm)
    pipeline = rag.pipeline()            # the same PipelineSpec the YAML gives

A MicroService given the seed's remote-service arguments (port, expose_endpoint) and no kind becomes
the node the seed-format import makes of it.
"""

from __future__ import annotations

from typing import Any

from flotilla.pipeline.services import remote_service
from flotilla.spec.pipelines import PipelineSpec


class MicroService:
    def __init__(
        self,
        name: str,
        kind: str | None = None,
        *,
        host: str = "localhost",
        port: int | None = None,
        expose_endpoint: str | None = None,
        use_remote_service: bool = True,
        **options: Any,
    ) -> None:
        if kind is None and expose_endpoint is None:
            raise ValueError(f"MicroService {name!r}: give `kind` (embedding, retriever, reranker, llm, http) or `expose_endpoint`")
        if not use_remote_service:
            raise ValueError(f"MicroService {name!r}: Flotilla runs nodes as remote services (models of the spec or URLs)")
        self.name = name
        self.kind = kind
        self.host = host
        self.port = port
        self.expose_endpoint = expose_endpoint
        self.options = options

    def node(self, previous: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        if self.kind is not None:
            return {"kind": self.kind, **self.options}, None
        return remote_service(self.name, self.expose_endpoint or "", self.host, self.port, previous)


class ServiceOrchestrator:
    def __init__(self, name: str = "pipeline", **pipeline_options: Any) -> None:
        self.name = name
        self.pipeline_options = pipeline_options  # description, ingest
        self.services: dict[str, MicroService] = {}
        self.flows: list[tuple[str, str]] = []

    def add(self, service: MicroService) -> "ServiceOrchestrator":
        if service.name in self.services:
            raise ValueError(f"a service named {service.name!r} was already added")
        self.services[service.name] = service
        return self

    def flow_to(self, source: MicroService, target: MicroService) -> "ServiceOrchestrator":
        for service in (source, target):
            if self.services.get(service.name) is not service:
                raise ValueError(f"add({service.name!r}) before flow_to() with it")
        self.flows.append((source.name, target.name))
        return self

    def _parts(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        previous = {}
        for source, target in self.flows:
            previous.setdefault(target, source)
        nodes, models = {}, []
        for name, service in self.services.items():
            node, model = service.node(previous.get(name))
            nodes[name] = node
            if model is not None:
                models.append(model)
        return nodes, models

    def spec_fragment(self) -> dict[str, Any]:
        """{models, pipelines} as YAML would hold them (models: the external ones remote services need)."""
        nodes, models = self._parts()
        flow = [f"{s} >> {t}" for s, t in self.flows] or list(self.services)
        return {"models": models, "pipelines": [{"name": self.name, "nodes": nodes, "flow": flow, **self.pipeline_options}]}

    def pipeline(self) -> PipelineSpec:
        """The checked PipelineSpec (flow, wiring, types); model names are checked when it joins a spec."""
        return PipelineSpec.model_validate(self.spec_fragment()["pipelines"][0])
