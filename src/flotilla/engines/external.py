"""`engine: external`: an OpenAI-compatible server someone else runs; the gateway only needs its `urls`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flotilla.engines.base import Engine, NothingToLaunch

if TYPE_CHECKING:
    from flotilla.spec.models import ModelSpec


class ExternalEngine(Engine):
    kind = "external"
    health_path = "/v1/models"  # the one path every OpenAI-compatible server answers
    metrics_path = None
    container = None
    default_concurrency = 8  # unknown server: a modest share until the spec says otherwise

    def server_args(self, model: ModelSpec, port: int, **_: object) -> list[str]:
        raise NothingToLaunch(f"model {model.name!r} is external ({', '.join(model.urls)}): nothing to launch")

    def local_command(self, model: ModelSpec, port: int) -> list[str]:
        raise NothingToLaunch(f"model {model.name!r} is external ({', '.join(model.urls)}): nothing to launch")


ENGINE = ExternalEngine()
