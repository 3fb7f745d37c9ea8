"""What every engine kind provides: how to launch it here, and what it answers on.

One module per kind (sim.py, llamacpp.py, vllm.py, tgi.py, sglang.py, external.py) defines an
`Engine` instance; `flotilla.engines.get_engine(kind)` returns it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from flotilla.spec.models import ModelSpec


class EngineNotInstalled(RuntimeError):
    """The engine's program is missing here; the message says what to install."""


@dataclass(frozen=True)
class ContainerDefaults:
    """Image and port the chart uses for this engine (the chart's templates must agree)."""

    image_repository: str
    image_tag: str
    port: int


class Engine(Protocol):
    kind: str
    health_path: str  # GET answering 200 once the model is loaded
    metrics_path: str | None  # Prometheus text with vLLM-style load gauges, if any
    container: ContainerDefaults | None  # None: nothing to deploy (external)

    def server_args(self, model: ModelSpec, port: int) -> list[str]:
        """The engine's own arguments for serving `model` on `port` (shared by local launch and chart)."""
        ...

    def local_command(self, model: ModelSpec, port: int) -> list[str]:
        """Full argv to run one replica on this machine; raises EngineNotInstalled."""
        ...
