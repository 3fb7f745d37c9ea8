"""Path and method to handler: exact paths in a dict, and `/prefix/{name}` routes for one trailing segment.

A GET route also answers HEAD (the body left out), as aiohttp's did.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from flotilla.httpserver.request import Request

Handler = Callable[[Request], Awaitable[Any]]


class NotFound(Exception):
    pass


class MethodNotAllowed(Exception):
    def __init__(self, allowed: list[str]) -> None:
        super().__init__(", ".join(allowed))
        self.allowed = allowed


class Router:
    def __init__(self) -> None:
        self._exact: dict[str, dict[str, Handler]] = {}
        self._segment: list[tuple[str, str, dict[str, Handler]]] = []  # (prefix ending in '/', name, methods)

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        methods = [method, "HEAD"] if method == "GET" else [method]
        if path.endswith("}") and "{" in path:
            prefix, _, name = path.rpartition("{")
            if "{" in prefix or not prefix.endswith("/"):
                raise ValueError(f"only one trailing path parameter is supported: {path}")
            table = next((t for p, n, t in self._segment if p == prefix and n == name[:-1]), None)
            if table is None:
                table = {}
                self._segment.append((prefix, name[:-1], table))
        else:
            table = self._exact.setdefault(path, {})
        for m in methods:
            table.setdefault(m, handler)

    def add_get(self, path: str, handler: Handler) -> None:
        self.add_route("GET", path, handler)

    def add_post(self, path: str, handler: Handler) -> None:
        self.add_route("POST", path, handler)

    def resolve(self, request: Request) -> Handler:
        """The handler of `request` (its path parameters set in match_info); NotFound or MethodNotAllowed."""
        table = self._exact.get(request.path)
        if table is None:
            table = self._match_segment(request)
        handler = table.get(request.method)
        if handler is None:
            raise MethodNotAllowed(sorted(table))
        return handler

    def _match_segment(self, request: Request) -> dict[str, Handler]:
        path = request.path
        for prefix, name, table in self._segment:
            if path.startswith(prefix):
                value = path[len(prefix):]
                if value and "/" not in value:
                    request.match_info[name] = value
                    return table
        raise NotFound(path)
