"""`engine: external`: an OpenAI-compatible server someone else runs; the gateway only needs its `urls`."""

from __future__ import annotations

from dataclasses import dataclass

from flotilla.engines.base import ContainerDefaults
from flotilla.spec.models import ModelSpec


class NothingToLaunch(RuntimeError):
    """Asked to launch a model whose engine is a URL."""


@dataclass(frozen=True)
class ExternalEngine:
    kind: str = "external"
    health_path: str = "/v1/models"  # the one path every OpenAI-compatible server answers
    metrics_path: str | None = None
    container: ContainerDefaults | None = None

    def server_args(self, model: ModelSpec, port: int) -> list[str]:
        raise NothingToLaunch(f"model {model.name!r} is external ({', '.join(model.urls)}): nothing to launch")

    def local_command(self, model: ModelSpec, port: int) -> list[str]:
        raise NothingToLaunch(f"model {model.name!r} is external ({', '.join(model.urls)}): nothing to launch")


ENGINE = ExternalEngine()
