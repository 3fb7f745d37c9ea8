"""Engine registry: `get_engine(kind)` imports `flotilla.engines.<kind>` on first use and returns its `ENGINE`.

Importing lazily keeps `flotilla` fast to start and lets an engine module depend on packages that
only some machines have. An engine with `container is None` (external) has nothing to launch:
callers check `launches_process(engine)` instead of comparing kinds.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import get_args

from flotilla.engines.base import ContainerDefaults, Engine, EngineNotInstalled
from flotilla.spec.engines import EngineKind

ENGINE_KINDS: tuple[str, ...] = get_args(EngineKind)

__all__ = [
    "ENGINE_KINDS",
    "ContainerDefaults",
    "Engine",
    "EngineNotInstalled",
    "UnknownEngine",
    "get_engine",
    "launches_process",
]


class UnknownEngine(ValueError):
    """No engine module of that kind."""


@cache
def get_engine(kind: str) -> Engine:
    if kind not in ENGINE_KINDS:
        raise UnknownEngine(f"unknown engine {kind!r}; known engines: {', '.join(ENGINE_KINDS)}")
    module = importlib.import_module(f"flotilla.engines.{kind}")
    engine = getattr(module, "ENGINE", None)
    if engine is None:
        raise UnknownEngine(f"module flotilla.engines.{kind} defines no ENGINE")
    return engine


def launches_process(engine: Engine) -> bool:
    """False for engines that are only URLs (external): no process to start, locally or in the chart."""
    return engine.container is not None
