"""The flow grammar of a pipeline (`a >> b`, `(a, b) >> c`, one chain per line) and its edges.

A line is a chain of groups joined by `>>`; a group is one node name or a parenthesised,
comma-separated list of names. Every node of a group flows into every node of the next group, so
`embed >> (docs, faq) >> rerank` fans out to two retrievers that run in parallel and fans back in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"\s*(>>|\(|\)|,|[A-Za-z_][A-Za-z0-9_-]*|\S)")


class FlowSyntaxError(ValueError):
    """A flow line that does not parse; `line` is its index in `flow`."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True, order=True)
class Edge:
    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.source} >> {self.target}"


def _tokens(text: str, line: int) -> list[str]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:  # only trailing whitespace is left
            break
        tokens.append(match.group(1))
        pos = match.end()
    if not tokens:
        raise FlowSyntaxError(line, "empty flow line")
    return tokens


def _group(tokens: list[str], i: int, line: int) -> tuple[list[str], int]:
    def name_at(j: int) -> str:
        if j >= len(tokens):
            raise FlowSyntaxError(line, "the line ends where a node name was expected")
        token = tokens[j]
        if not re.match(r"[A-Za-z_]", token):
            raise FlowSyntaxError(line, f"expected a node name, got {token!r}")
        return token

    if i < len(tokens) and tokens[i] == "(":
        names = [name_at(i + 1)]
        i += 2
        while i < len(tokens) and tokens[i] == ",":
            names.append(name_at(i + 1))
            i += 2
        if i >= len(tokens) or tokens[i] != ")":
            raise FlowSyntaxError(line, "a '(' group must be closed with ')' (names inside are separated by ',')")
        return names, i + 1
    return [name_at(i)], i + 1


def parse_flow_line(text: str, line: int = 0) -> list[list[str]]:
    """`a >> (b, c) >> d` -> [[a], [b, c], [d]]."""
    tokens = _tokens(text, line)
    groups, i = [], 0
    while True:
        group, i = _group(tokens, i, line)
        groups.append(group)
        if i == len(tokens):
            return groups
        if tokens[i] != ">>":
            raise FlowSyntaxError(line, f"expected '>>' between nodes, got {tokens[i]!r}")
        i += 1
        if i == len(tokens):
            raise FlowSyntaxError(line, "the line ends with '>>'")


def flow_edges(lines: list[str]) -> dict[Edge, int]:
    """Every edge of every line, each once, in the order written, with the line it was first written on."""
    edges: dict[Edge, int] = {}
    for index, text in enumerate(lines):
        groups = parse_flow_line(text, index)
        if len(groups) == 1 and len(groups[0]) > 1:
            raise FlowSyntaxError(index, "a group alone flows nowhere: join groups with '>>'")
        for before, after in zip(groups, groups[1:]):
            for source in before:
                for target in after:
                    edges.setdefault(Edge(source, target), index)
    return edges


def flow_nodes(lines: list[str]) -> list[str]:
    """Node names in the order they first appear (a one-node flow has no edges)."""
    seen: dict[str, None] = {}
    for index, text in enumerate(lines):
        for group in parse_flow_line(text, index):
            for name in group:
                seen[name] = None
    return list(seen)


def find_cycle(nodes: list[str], edges: list[Edge]) -> list[str] | None:
    """One cycle as a closed path [a, b, ..., a], or None."""
    successors: dict[str, list[str]] = {n: [] for n in nodes}
    for edge in edges:
        successors.setdefault(edge.source, []).append(edge.target)
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in successors.get(node, []):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in successors:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def topological_order(nodes: list[str], edges: list[Edge]) -> list[str]:
    """Nodes with every predecessor first (stable: ties keep the written order)."""
    indegree = {n: 0 for n in nodes}
    for edge in edges:
        indegree[edge.target] += 1
    order, ready = [], [n for n in nodes if indegree[n] == 0]
    while ready:
        node = ready.pop(0)
        order.append(node)
        for edge in edges:
            if edge.source == node:
                indegree[edge.target] -= 1
                if indegree[edge.target] == 0:
                    ready.append(edge.target)
    return order


def format_chain(edges: list[Edge]) -> list[str]:
    """Edges as flow lines (one per edge): what the Python API writes."""
    return [str(e) for e in edges]
