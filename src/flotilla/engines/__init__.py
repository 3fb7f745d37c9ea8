"""Engine descriptors: one module per kind (sim, llamacpp, vllm, sglang, tgi, external), each
defining an `ENGINE` (see base.Engine), all registered in registry.ENGINES."""

from __future__ import annotations

from flotilla.engines.base import ContainerDefaults, Engine, EngineNotInstalled, NothingToLaunch, launches_process
from flotilla.engines.registry import ENGINES, UnknownEngine, get_engine

ENGINE_KINDS: tuple[str, ...] = tuple(ENGINES)

__all__ = [
    "ENGINES",
    "ENGINE_KINDS",
    "ContainerDefaults",
    "Engine",
    "EngineNotInstalled",
    "NothingToLaunch",
    "UnknownEngine",
    "get_engine",
    "launches_process",
]
