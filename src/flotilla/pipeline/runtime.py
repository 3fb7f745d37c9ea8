"""The pipelines of a spec, ready to serve: runtime nodes, opened stores, one HTTP session for services."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import aiohttp

from flotilla.pipeline.executor import Executor, NodeObserver
from flotilla.pipeline.ingest.service import Ingestor
from flotilla.pipeline.nodes import build_node
from flotilla.pipeline.stores import VectorStore, open_store
from flotilla.spec.pipeline_wiring import REQUEST
from flotilla.spec.pipelines import PipelineSpec
from flotilla.spec.root import FlotillaSpec

log = logging.getLogger("flotilla.pipeline")


class IngestNotPossible(ValueError):
    """The retriever's vectors do not come straight from an embedding node: data prep cannot make them."""


@dataclass
class ServedPipeline:
    spec: PipelineSpec
    executor: Executor
    stores: dict[str, VectorStore] = field(default_factory=dict)  # retriever node -> store

    def ingestor(self, retriever: str | None) -> Ingestor:
        """The ingestor of one retriever node (it may be left out when the pipeline has one)."""
        names = list(self.stores)
        if retriever is None:
            if len(names) != 1:
                raise IngestNotPossible(
                    f"pipeline '{self.spec.name}' has {len(names)} retrievers ({', '.join(names) or 'none'}): name one with `retriever`"
                )
            retriever = names[0]
        if retriever not in self.stores:
            raise IngestNotPossible(f"pipeline '{self.spec.name}' has no retriever node {retriever!r} (retrievers: {', '.join(names) or 'none'})")
        [source] = self.spec.graph.wiring[retriever]["vector"]
        embedder = self.spec.nodes.get(source.node) if source.node != REQUEST else None
        if embedder is None or embedder.kind != "embedding":
            raise IngestNotPossible(
                f"retriever {retriever!r} gets its vectors from {source}, not from an embedding node: data prep cannot embed for it"
            )
        return Ingestor(self.stores[retriever], embedder.model)


class PipelineRuntime:
    def __init__(self, spec: FlotillaSpec, observer: NodeObserver | None = None, connect_timeout_s: float = 3.0) -> None:
        self.spec = spec
        self.observer = observer
        self.connect_timeout_s = connect_timeout_s
        self.session: aiohttp.ClientSession | None = None
        self.pipelines: dict[str, ServedPipeline] = {}
        self._engines = {m.name: m.engine for m in spec.models}
        self._building: dict[str, VectorStore] = {}

    # Resources handed to node constructors (nodes/__init__.py).
    def store_for(self, node: str) -> VectorStore:
        return self._building[node]

    def reranker_method(self, model: str) -> str:
        return "similarity" if self._engines.get(model) == "onnx" else "model"

    async def open(self) -> None:
        # No total timeout: each node bounds its own calls with its timeoutS.
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s))
        try:
            for pipeline in self.spec.pipelines:
                self.pipelines[pipeline.name] = await self._build(pipeline)
        except BaseException:
            await self.close()
            raise

    async def _build(self, pipeline: PipelineSpec) -> ServedPipeline:
        self._building = {}
        for name, node in pipeline.nodes.items():
            if node.kind == "retriever":
                store = open_store(node.store, pipeline.name, name)
                await store.open()
                self._building[name] = store
                log.info("pipeline %s: retriever %s uses %s", pipeline.name, name, store.description)
        stores = dict(self._building)
        nodes = {name: build_node(pipeline.name, name, spec, self) for name, spec in pipeline.nodes.items()}
        executor = Executor(pipeline.name, pipeline.graph, nodes, self.observer)
        self._building = {}  # owned by the ServedPipeline from here on
        return ServedPipeline(pipeline, executor, stores)

    async def close(self) -> None:
        for served in self.pipelines.values():
            for store in served.stores.values():
                try:
                    await store.close()
                except Exception:
                    log.exception("closing %s", store.description)
        for store in self._building.values():
            await store.close()
        self._building = {}
        if self.session is not None:
            await self.session.close()
            self.session = None
