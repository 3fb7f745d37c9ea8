"""Runs one request through a pipeline's graph.

Every node is a task in one task group: it waits for its predecessors, then runs; independent
branches therefore run at the same time, and the first failure cancels every sibling. Each node
runs under its own timeout (all attempts together) and retries retryable failures with exponential
backoff. An optional node that fails is skipped: its outputs are its inputs of the same type (a
skipped reranker passes the retrieved chunks on), or nothing. All state is the request's own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from flotilla.pipeline.context import NodeRun, RequestContext
from flotilla.pipeline.errors import CallFailed, CallRejected, PipelineError
from flotilla.pipeline.nodes.base import Node
from flotilla.spec.pipeline_wiring import REQUEST, Graph, input_ports, output_ports

log = logging.getLogger("flotilla.pipeline")
_BACKOFF_CAP_S = 10.0


class NodeObserver(Protocol):
    def node_finished(self, pipeline: str, node: Node, run: NodeRun) -> None: ...

    def node_retried(self, pipeline: str, node: Node) -> None: ...


class _NoObserver:
    def node_finished(self, pipeline: str, node: Node, run: NodeRun) -> None:
        pass

    def node_retried(self, pipeline: str, node: Node) -> None:
        pass


class _NodeFailed(Exception):
    def __init__(self, error: PipelineError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass
class Result:
    answer: Any  # the sink's `text` output: LlmAnswer, LlmStream or str
    citations: list  # chunks that reached the sink's documents input
    skipped: list[NodeRun]


class Executor:
    def __init__(self, name: str, graph: Graph, nodes: dict[str, Node], observer: NodeObserver | None = None) -> None:
        self.name = name
        self.graph = graph
        self.nodes = nodes
        self.observer = observer or _NoObserver()
        self._inputs_of = {n: input_ports(nodes[n].spec) for n in graph.nodes}

    def check_knobs(self, ctx: RequestContext) -> None:
        for node in self.nodes.values():
            node.check_knobs(ctx)

    async def run(self, ctx: RequestContext, query: str) -> Result:
        values: dict[str, dict[str, Any]] = {REQUEST: {"query": query, "messages": ctx.messages}}
        done = {name: asyncio.Event() for name in self.graph.nodes}
        first_failure: list[PipelineError] = []
        for name in self.graph.order:
            ctx.trace[name] = NodeRun(name, self.nodes[name].label)
        try:
            async with asyncio.TaskGroup() as group:
                for name in self.graph.order:
                    group.create_task(self._node_task(name, ctx, values, done, first_failure), name=f"{self.name}.{name}")
        except* _NodeFailed:
            raise first_failure[0] from None
        sink = self.graph.sink
        citations = self._gather(sink, "documents", values) or []
        return Result(values[sink].get("text"), citations, ctx.skipped)

    def _gather(self, name: str, port: str, values: dict[str, dict[str, Any]]) -> Any:
        sources = self.graph.wiring[name].get(port, [])
        present = [values[s.node][s.port] for s in sources if s.port in values.get(s.node, {})]
        if len(present) <= 1:
            return present[0] if present else None
        merged: list = []  # fan-in: documents of parallel branches, concatenated in flow order
        for value in present:
            merged.extend(value) if isinstance(value, list) else merged.append(value)
        return merged

    async def _node_task(self, name: str, ctx: RequestContext, values, done, first_failure) -> None:
        for predecessor in self.graph.predecessors(name):
            await done[predecessor].wait()
        node = self.nodes[name]
        run = ctx.trace[name]
        inputs: dict[str, Any] = {}
        missing: list[str] = []
        if node.kind == "http":
            for port in self.graph.wiring[name]:
                value = self._gather(name, port, values)
                if value is not None:
                    inputs[port] = value
        else:
            for port in self._inputs_of[name]:
                value = self._gather(name, port.name, values)
                if value is None and port.required:
                    missing.append(port.name)
                elif value is not None:
                    inputs[port.name] = value
        try:
            if missing:
                gone = ", ".join(r.node for r in ctx.skipped)
                raise PipelineError(
                    502, f"Pipeline '{self.name}': node '{name}' has no {', '.join(missing)} input (skipped: {gone}).",
                    "pipeline_node_failed", name,
                )
            values[name] = await self._run_node(node, run, inputs, ctx)
        except PipelineError as error:
            if not node.spec.optional or error.status == 400:
                self._record(node, run)
                if not first_failure:
                    first_failure.append(error)
                raise _NodeFailed(error) from None
            run.outcome, run.error = "skipped", error.message
            self._record(node, run)
            values[name] = self._passthrough(node, inputs)
        done[name].set()

    def _passthrough(self, node: Node, inputs: dict[str, Any]) -> dict[str, Any]:
        """A skipped node's outputs: its input of the same name, else of the same type (http nodes: by name)."""
        outputs = {}
        types_in = {p.name: p.type for p in self._inputs_of[node.name]}
        for out, kind in output_ports(node.spec).items():
            if out in inputs and types_in.get(out, kind) == kind:
                outputs[out] = inputs[out]
                continue
            for port, value in inputs.items():
                if types_in.get(port) == kind:
                    outputs[out] = value
                    break
        return outputs

    def _record(self, node: Node, run: NodeRun) -> None:
        run.ended = time.monotonic()
        self.observer.node_finished(self.name, node, run)

    async def _run_node(self, node: Node, run: NodeRun, inputs: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        spec = node.spec
        run.started = time.monotonic()
        try:
            async with asyncio.timeout(spec.timeout_s):
                outputs = await self._attempts(node, run, inputs, ctx)
        except TimeoutError:
            run.outcome = "timeout"
            run.error = f"timed out after {spec.timeout_s:g} s ({run.attempts} attempt(s))"
            raise PipelineError(
                504, f"Pipeline '{self.name}': node '{node.name}' ({node.label}) {run.error}.",
                "pipeline_node_timeout", node.name,
            ) from None
        run.outcome = "ok"
        self._record(node, run)
        return outputs

    async def _attempts(self, node: Node, run: NodeRun, inputs: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        spec = node.spec
        while True:
            run.attempts += 1
            try:
                return await node.run(inputs, ctx)
            except CallRejected as exc:
                run.outcome, run.error = "failed", str(exc)
                raise PipelineError(
                    exc.status, f"Pipeline '{self.name}': node '{node.name}': {exc}", exc.code or "rejected", node.name,
                    exc.headers, type="rate_limit_exceeded" if exc.status == 429 else "server_error",
                ) from None
            except (PipelineError, asyncio.CancelledError):
                raise
            except CallFailed as exc:
                if exc.retryable and run.attempts <= spec.retries:
                    self.observer.node_retried(self.name, node)
                    log.info("pipeline node retry", extra={"fields": {
                        "request_id": ctx.request_id, "pipeline": self.name, "node": node.name,
                        "attempt": run.attempts, "error": str(exc)}})
                    await asyncio.sleep(min(spec.backoff_s * 2 ** (run.attempts - 1), _BACKOFF_CAP_S))
                    continue
                run.outcome, run.error = "failed", str(exc)
                tries = f" after {run.attempts} attempts" if run.attempts > 1 else ""
                raise PipelineError(
                    502, f"Pipeline '{self.name}': node '{node.name}' ({node.label}) failed{tries}: {exc}",
                    "pipeline_node_failed", node.name,
                ) from None
            except Exception as exc:  # a bug, not the service: logged whole, answered as this node's failure
                log.exception("pipeline %s: node %s raised", self.name, node.name)
                run.outcome, run.error = "failed", f"internal error ({type(exc).__name__})"
                raise PipelineError(
                    502, f"Pipeline '{self.name}': node '{node.name}' ({node.label}) failed: internal error ({type(exc).__name__}).",
                    "pipeline_node_failed", node.name,
                ) from None
