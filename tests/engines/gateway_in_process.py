"""A gateway on this event loop (create_gateway_app on a free port), for tests that also inspect
in-process sims' state."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from flotilla.gateway.endpoints import EndpointSource
from flotilla.gateway.serve import http_server
from flotilla.gateway.server import create_gateway_app
from flotilla.spec.loader import parse_spec

STAFF = "staff-secret-0001"


def spec_with(models: list[dict], tmp: Path, **gateway: object):
    return parse_spec({
        "models": models,
        "gateway": {
            "database": f"sqlite:///{tmp}/gateway.db",
            "tokens": [{"name": "staff", "token": STAFF, "priority": 10, "threshold": 50}],
            "healthIntervalS": 0.2, "usageFlushS": 0.2, **gateway,
        },
    })


@contextlib.asynccontextmanager
async def running_gateway(spec, endpoints: dict[str, list[str]]) -> AsyncIterator[str]:
    app = await create_gateway_app(spec, {k: [EndpointSource(u) for u in v] for k, v in endpoints.items()})
    server = http_server(app, spec.gateway.max_body_bytes)
    try:
        await server.start("127.0.0.1", 0)
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.shutdown(1.0)
        await app.cleanup()
