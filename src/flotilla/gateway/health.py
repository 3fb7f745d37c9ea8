"""Keeps each model's replica pool true: discovery, health checks, and the engine's own load."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp

from flotilla.gateway.endpoints import DiscoveryFailed, EndpointSource
from flotilla.gateway.replicas import Replica, ReplicaPool
from flotilla.gateway.speed import SpeedGovernor
from flotilla.gateway.tasks import cancel_and_wait

log = logging.getLogger("flotilla.gateway.health")

# A healthy replica is marked down after this many health probes in a row time out. One timeout
# alone is weak evidence: an engine busy with a batch answers /health late, and a gateway whose own
# loop stalled (a long GC pause, a stopped process) finds every probe in flight expired at once.
# Marking the replica down on one would make it flap. A refused connection or an error status is
# unambiguous and counts at once; a hung engine is caught sooner by the requests' first-byte timeout.
TIMEOUTS_TO_DOWN = 2


def engine_load_from_metrics(text: bytes, gauges: tuple[str, ...]) -> int | None:
    """The sum of `gauges` (every series of each: one per rank or label set) in a Prometheus
    exposition; None when none of them is there. The gauge names are the engine descriptor's."""
    wanted = {g.encode() for g in gauges}
    total = 0.0
    seen = False
    for line in text.splitlines():
        if not line or line[0] == 35:  # '#': HELP and TYPE lines
            continue
        end = len(line)
        for stop in (b"{", b" "):
            at = line.find(stop)
            if 0 <= at < end:
                end = at
        if line[:end] not in wanted:
            continue
        try:
            value = line[line.rindex(b"}") + 1:] if b"}" in line else line[end:]
            total += float(value.split()[0])
            seen = True
        except (IndexError, ValueError):
            continue
    return int(total) if seen else None


class ModelHealth:
    """What to probe for one model."""

    def __init__(
        self,
        pool: ReplicaPool,
        sources: list[EndpointSource],
        health_path: str,
        metrics_path: str | None,
        headers: dict[str, str] | None = None,
        load_gauges: tuple[str, ...] = (),
        speed: SpeedGovernor | None = None,
    ) -> None:
        self.pool = pool
        self.sources = sources
        self.health_path = health_path
        self.metrics_path = metrics_path
        self.headers = headers or {}
        self.load_gauges = load_gauges
        self.speed = speed  # minTokensPerSecond: limits each replica by its measured decode speed
        # Each source's addresses as last resolved: a failed DNS lookup keeps them (their health
        # checks then decide) instead of emptying the pool, which would leave requests waiting.
        self.last_urls: dict[EndpointSource, list[str]] = {}
        self.failing: set[EndpointSource] = set()


class HealthMonitor:
    def __init__(
        self,
        models: list[ModelHealth],
        session: aiohttp.ClientSession,
        interval_s: float,
        on_change: Callable[[str], None],
    ) -> None:
        self._models = models
        self._session = session
        self._interval = interval_s
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.check_all()  # know who is up before serving
        self._task = asyncio.create_task(self._loop(), name="health-monitor")

    async def close(self) -> None:
        await cancel_and_wait(self._task)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check_all()
            except Exception:  # a monitor that dies silently would freeze routing
                log.exception("health check round failed")

    async def check_all(self) -> None:
        await asyncio.gather(*(self._check_model(m) for m in self._models))

    async def _check_model(self, model: ModelHealth) -> None:
        urls: list[str] = []
        for source in model.sources:
            urls.extend(await self._resolve(model, source))
        changed = model.pool.set_urls(urls)
        results = await asyncio.gather(*(self._probe(model, r) for r in model.pool.replicas if not r.removed))
        if changed or any(results):
            self._on_change(model.pool.model)

    async def _resolve(self, model: ModelHealth, source: EndpointSource) -> list[str]:
        try:
            urls = await source.resolve()
        except DiscoveryFailed as exc:
            if exc.no_such_name and model.pool.scales_to_zero:
                # Scaled to zero: the headless Service has no ready endpoint. Its requests wait for a
                # replica (and are the demand KEDA scales on) instead of a stale address failing them.
                if model.last_urls.get(source):
                    log.info("model %s has no replica at %s: scaled to zero", model.pool.model, source.url)
                model.last_urls[source] = []
                return []
            kept = model.last_urls.get(source, [])
            if source not in model.failing:
                model.failing.add(source)
                log.warning("replica discovery for %s failed (%s); keeping its %d last known replica(s)",
                            model.pool.model, exc, len(kept))
            return kept
        if source in model.failing:
            model.failing.discard(source)
            log.info("replica discovery for %s works again: %d replica(s)", model.pool.model, len(urls))
        model.last_urls[source] = urls
        return urls

    async def _probe(self, model: ModelHealth, replica: Replica) -> bool:
        """Probe one replica; True when its health or free capacity changed."""
        timeout = aiohttp.ClientTimeout(total=max(1.0, min(5.0, self._interval)))
        before = replica.free_slots
        try:
            async with self._session.get(replica.url + model.health_path, timeout=timeout, headers=model.headers) as resp:
                await resp.read()
                healthy = resp.status == 200
                error = None if healthy else f"health check answered {resp.status}"
            if healthy and model.metrics_path and (model.load_gauges or model.speed is not None):
                async with self._session.get(replica.url + model.metrics_path, timeout=timeout) as resp:
                    if resp.status == 200:
                        text = await resp.read()
                        load = engine_load_from_metrics(text, model.load_gauges)
                        if load is not None:
                            replica.external_load = max(0, load - replica.in_flight)
                        if model.speed is not None:
                            model.speed.observe(replica, text, load if load is not None else replica.in_flight)
        except asyncio.TimeoutError:  # aiohttp's read and connect timeouts are TimeoutErrors too
            replica.probe_timeouts += 1
            error = f"health check timed out after {timeout.total:g} s"
            if replica.healthy and replica.probe_timeouts < TIMEOUTS_TO_DOWN:
                replica.last_error = error
                log.info("replica %s of %s: %s (%d in a row; down after %d)", replica.label, replica.model,
                         error, replica.probe_timeouts, TIMEOUTS_TO_DOWN)
                return replica.free_slots != before
            healthy = False
        except (aiohttp.ClientError, OSError) as exc:
            healthy, error = False, f"{type(exc).__name__}: {exc}".rstrip(": ")
        else:
            replica.probe_timeouts = 0
        changed = model.pool.mark(replica, healthy, error)
        if changed:
            if healthy:
                log.info("replica %s of %s is healthy", replica.label, replica.model)
            else:
                log.warning("replica %s of %s is unhealthy: %s", replica.label, replica.model, error)
        return changed or replica.free_slots != before
