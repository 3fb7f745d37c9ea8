"""Typed ports of each node kind, and the wiring of a pipeline's flow: which output feeds which input.

Each input port takes its value from the node's predecessors by type (or from the request: its last
user message as `query`, all of it as `messages`), unless the node names a source in `inputs:`.
A `documents` input gathers the documents of every predecessor (parallel retrievers fan in). Every
edge must carry at least one value: `embedding >> llm` is a type mismatch (llm takes no vector).
Problems are raised as one ValidationError whose entries carry field paths (nodes.x.inputs.y, flow[i]).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from flotilla.spec.pipeline_flow import Edge, FlowSyntaxError, find_cycle, flow_edges, flow_nodes, topological_order

REQUEST = "request"
REQUEST_PORTS = {"query": "text", "messages": "messages"}


@dataclass(frozen=True)
class Port:
    name: str
    type: str
    required: bool = True
    gather: bool = False  # takes the values of every matching predecessor, concatenated
    from_request: str | None = None  # request port used when no predecessor gives this type


@dataclass(frozen=True)
class Source:
    node: str  # "request" for the incoming request
    port: str

    def __str__(self) -> str:
        return f"{self.node}.{self.port}"


@dataclass
class Graph:
    nodes: list[str]
    edges: list[Edge]
    order: list[str]  # topological
    sink: str  # the node whose `text` output is the answer
    wiring: dict[str, dict[str, list[Source]]] = field(default_factory=dict)  # node -> input port -> sources

    def predecessors(self, node: str) -> list[str]:
        return [e.source for e in self.edges if e.target == node]


def input_ports(node) -> list[Port]:
    kind = node.kind
    if kind == "embedding":
        return [Port("text", "text", from_request="query")]
    if kind == "retriever":
        return [Port("vector", "vector")]
    if kind == "reranker":
        return [Port("query", "text", from_request="query"), Port("documents", "documents", gather=True)]
    if kind == "llm":
        return [
            Port("messages", "messages", from_request="messages"),
            Port("documents", "documents", required=False, gather=True),
        ]
    return []  # http: its fields are whatever it is given (see _wire_http)


def output_ports(node) -> dict[str, str]:
    kind = node.kind
    if kind == "embedding":
        return {"vector": "vector"}
    if kind in ("retriever", "reranker"):
        return {"documents": "documents"}
    if kind == "llm":
        return {"text": "text"}
    return dict(node.outputs)


class _Problems:
    def __init__(self) -> None:
        self.items: list[InitErrorDetails] = []

    def add(self, loc: tuple, message: str, value: object = None) -> None:
        # A mapping as the input keeps the spec printer from appending "(got ...)" where no value is at fault.
        value = {} if value is None else value
        self.items.append(
            InitErrorDetails(type=PydanticCustomError("pipeline", message), loc=loc, input=value)  # type: ignore[arg-type]
        )

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationError.from_exception_data("PipelineSpec", self.items)


def build_graph(spec) -> Graph:
    problems = _Problems()
    try:
        edge_lines = flow_edges(spec.flow)
        names = flow_nodes(spec.flow)
    except FlowSyntaxError as exc:
        problems.add(("flow", exc.line), str(exc), spec.flow[exc.line])
        problems.raise_if_any()
        raise AssertionError("unreachable") from None
    for name in names:
        if name not in spec.nodes:
            line = next(i for i, text in enumerate(spec.flow) if name in text)
            problems.add(("flow", line), f"unknown node {name!r} (nodes: {', '.join(spec.nodes)})", spec.flow[line])
    for name in spec.nodes:
        if name not in names:
            problems.add(("nodes", name), f"node {name!r} is not in the flow")
    problems.raise_if_any()

    edges = list(edge_lines)
    cycle = find_cycle(names, edges)
    if cycle:
        problems.add(("flow",), f"the flow has a cycle: {' >> '.join(cycle)}", spec.flow)
        problems.raise_if_any()

    wiring: dict[str, dict[str, list[Source]]] = {}
    miswired: set[str] = set()  # nodes already reported: their edges are not reported again
    for name in topological_order(names, edges):
        node = spec.nodes[name]
        preds = [e.source for e in edges if e.target == name]
        before = len(problems.items)
        if node.kind == "http":
            wiring[name] = _wire_http(name, node, preds, spec, problems)
        else:
            wiring[name] = _wire_typed(name, node, preds, spec, problems)
        if len(problems.items) > before:
            miswired.add(name)

    for edge, line in edge_lines.items():
        if edge.target in miswired:
            continue
        used = any(s.node == edge.source for sources in wiring[edge.target].values() for s in sources)
        if not used:
            target, source = spec.nodes[edge.target], spec.nodes[edge.source]
            takes = ", ".join(f"{p.name} ({p.type})" for p in input_ports(target)) or "what its `inputs:` name"
            gives = ", ".join(f"{p} ({t})" for p, t in output_ports(source).items())
            problems.add(
                ("flow", line),
                f"type mismatch in {edge}: {edge.target} ({target.kind}) takes {takes}; "
                f"{edge.source} ({source.kind}) gives {gives}",
                spec.flow[line],
            )
    sinks = [n for n in names if not any(e.source == n for e in edges)]
    if len(sinks) != 1:
        problems.add(("flow",), f"the flow must end in one node whose text is the answer; it ends in {', '.join(sinks)}")
    elif "text" not in output_ports(spec.nodes[sinks[0]]).values():
        sink = spec.nodes[sinks[0]]
        problems.add(
            ("flow",),
            f"the flow ends in {sinks[0]} ({sink.kind}), which gives no text to answer with; end it in an llm or http node with a text output",
        )
    problems.raise_if_any()
    return Graph(nodes=names, edges=edges, order=topological_order(names, edges), sink=sinks[0], wiring=wiring)


def _types_of(sources: list[Source], spec) -> dict[Source, str]:
    types = {}
    for s in sources:
        if s.node == REQUEST:
            types[s] = REQUEST_PORTS[s.port]
        else:
            types[s] = output_ports(spec.nodes[s.node]).get(s.port, "")
    return types


def _explicit_sources(name: str, port: str, given, preds: list[str], spec, problems: _Problems) -> list[Source] | None:
    refs = [given] if isinstance(given, str) else list(given)
    sources = []
    for ref in refs:
        loc = ("nodes", name, "inputs", port)
        node_name, _, port_name = ref.partition(".")
        if not port_name:
            problems.add(loc, f"{ref!r} must name a port as 'node.port' (e.g. retriever.documents, request.query)", ref)
            return None
        if node_name == REQUEST:
            if port_name not in REQUEST_PORTS:
                problems.add(loc, f"the request gives {', '.join('request.' + p for p in REQUEST_PORTS)}, not {ref!r}", ref)
                return None
        elif node_name not in spec.nodes:
            problems.add(loc, f"unknown node {node_name!r} (nodes: {', '.join(spec.nodes)})", ref)
            return None
        elif node_name not in preds:
            problems.add(loc, f"{node_name!r} does not flow into {name!r} (add `{node_name} >> {name}` to the flow)", ref)
            return None
        elif port_name not in output_ports(spec.nodes[node_name]):
            outs = ", ".join(output_ports(spec.nodes[node_name]))
            problems.add(loc, f"{node_name!r} has no output {port_name!r} (it gives {outs})", ref)
            return None
        sources.append(Source(node_name, port_name))
    return sources


def _wire_typed(name: str, node, preds: list[str], spec, problems: _Problems) -> dict[str, list[Source]]:
    wiring: dict[str, list[Source]] = {}
    ports = {p.name: p for p in input_ports(node)}
    for unknown in set(node.inputs) - set(ports):
        problems.add(("nodes", name, "inputs", unknown), f"{node.kind} nodes have no input {unknown!r} (inputs: {', '.join(ports)})")
    for port in ports.values():
        loc = ("nodes", name, "inputs", port.name)
        if port.name in node.inputs:
            sources = _explicit_sources(name, port.name, node.inputs[port.name], preds, spec, problems)
            if sources is None:
                continue
            for source, kind in _types_of(sources, spec).items():
                if kind != port.type:
                    problems.add(loc, f"type mismatch: {port.name} takes {port.type}; {source} gives {kind}", str(source))
            if len(sources) > 1 and not port.gather:
                problems.add(loc, f"{port.name} takes one source, not {len(sources)}")
            wiring[port.name] = sources
            continue
        candidates = [Source(p, out) for p in preds for out, kind in output_ports(spec.nodes[p]).items() if kind == port.type]
        if len(candidates) > 1 and not port.gather:
            names = ", ".join(map(str, candidates))
            problems.add(loc, f"ambiguous {port.type} input: {names} all give one; choose with `inputs: {{{port.name}: NODE.PORT}}`")
            continue
        if not candidates and port.from_request:
            candidates = [Source(REQUEST, port.from_request)]
        if not candidates and port.required:
            gives = "; ".join(
                f"{p} gives {', '.join(output_ports(spec.nodes[p]).values())}" for p in preds
            ) or "nothing flows into it"
            port_text = "" if port.name == port.type else f" for `{port.name}`"
            problems.add(("nodes", name), f"{name} ({node.kind}) needs a {port.type} input{port_text}: {gives}")
            continue
        wiring[port.name] = candidates
    return wiring


def _wire_http(name: str, node, preds: list[str], spec, problems: _Problems) -> dict[str, list[Source]]:
    """An http node gets `inputs:` as written, else every predecessor output by its port name, plus the request's."""
    wiring: dict[str, list[Source]] = {}
    if node.inputs:
        for field_name, given in node.inputs.items():
            sources = _explicit_sources(name, field_name, given, preds, spec, problems)
            if sources is not None:
                wiring[field_name] = sources
        return wiring
    for port, kind in REQUEST_PORTS.items():
        wiring[port] = [Source(REQUEST, port)]
    owners: dict[str, str] = {}
    for pred in preds:
        for out in output_ports(spec.nodes[pred]):
            if out in owners and owners[out] != REQUEST:
                problems.add(
                    ("nodes", name, "inputs"),
                    f"{owners[out]}.{out} and {pred}.{out} both arrive as {out!r}: map them with `inputs:`",
                )
                continue
            owners[out] = pred
            wiring[out] = [Source(pred, out)]
    return wiring
