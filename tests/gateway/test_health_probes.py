"""Health probes: one timed-out probe does not take a healthy replica out (it would flap whenever an
engine answers /health late, or the gateway's own loop stalls); two in a row do. A refused
connection or an error status marks it down at once. Real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from flotilla.gateway.endpoints import EndpointSource
from flotilla.gateway.health import TIMEOUTS_TO_DOWN, HealthMonitor, ModelHealth
from flotilla.gateway.replicas import ReplicaPool
from flotilla.local.ports import free_port


class Engine:
    """/health that answers 200, answers 503, or hangs, as the test says."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    async def health(self, request: web.Request) -> web.Response:
        if self.mode == "hang":
            await asyncio.sleep(30)
        return web.Response(status=200 if self.mode == "ok" else 503)

    async def __aenter__(self) -> Engine:
        app = web.Application()
        app.router.add_get("/health", self.health)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


@asynccontextmanager
async def healthy_replica():
    """An engine, a health monitor of its one replica, and the replica once its first probe passed."""
    async with Engine() as engine, aiohttp.ClientSession() as session:
        pool = ReplicaPool("chat", 4)
        model = ModelHealth(pool, [EndpointSource(f"http://127.0.0.1:{engine.port}")], "/health", None)
        # interval 1 s: the probe's timeout is max(1, min(5, interval)) = 1 s
        monitor = HealthMonitor([model], session, 1.0, lambda model_name: None)
        await monitor.check_all()
        (replica,) = pool.replicas
        assert replica.healthy
        yield engine, monitor, pool, replica


async def test_one_timeout_keeps_a_healthy_replica_and_the_second_in_a_row_marks_it_down():
    assert TIMEOUTS_TO_DOWN == 2
    async with healthy_replica() as (engine, monitor, pool, replica):
        engine.mode = "hang"
        await monitor.check_all()
        assert replica.healthy, "one late answer must not take the replica out"
        assert replica.last_error == "health check timed out after 1 s"
        assert pool.healthy_count == 1

        engine.mode = "ok"  # an answer in between: the count starts again
        await monitor.check_all()
        assert replica.healthy and replica.probe_timeouts == 0 and replica.last_error is None

        engine.mode = "hang"
        await monitor.check_all()
        assert replica.healthy
        await monitor.check_all()
        assert not replica.healthy, "two timeouts in a row mark it down"
        assert pool.healthy_count == 0

        engine.mode = "ok"
        await monitor.check_all()
        assert replica.healthy


@pytest.mark.parametrize("failure", ["status", "refused"])
async def test_an_error_status_or_a_refused_connection_marks_it_down_at_once(failure):
    async with healthy_replica() as (engine, monitor, pool, replica):
        if failure == "status":
            engine.mode = "error"
            await monitor.check_all()
            assert replica.last_error == "health check answered 503"
        else:
            await engine.runner.cleanup()
            await monitor.check_all()
            assert "Connect" in replica.last_error
        assert not replica.healthy
