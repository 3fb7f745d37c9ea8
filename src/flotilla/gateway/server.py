"""Assembles the gateway from a spec and runs it."""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from flotilla.engines import get_engine
from flotilla.gateway.app import GatewayHandlers, ServedModel, add_routes, openai_errors
from flotilla.gateway.auth import TokenCache
from flotilla.gateway.dispatch import make_dispatcher
from flotilla.gateway.endpoints import EndpointSource
from flotilla.gateway.health import HealthMonitor, ModelHealth
from flotilla.gateway.metrics import GatewayMetrics
from flotilla.gateway.replicas import ReplicaPool
from flotilla.gateway.speed import SpeedGovernor
from flotilla.gateway.upstream import UpstreamClient
from flotilla.gateway.usage_recorder import UsageRecorder
from flotilla.logs import configure_logging
from flotilla.spec.models import ModelSpec
from flotilla.spec.root import FlotillaSpec
from flotilla.store import Store

log = logging.getLogger("flotilla.gateway")


HANDLERS = web.AppKey("flotilla.handlers", GatewayHandlers)


class GatewayConfigError(ValueError):
    pass


def resolve_endpoints(
    spec: FlotillaSpec, flags: dict[str, list[EndpointSource]]
) -> dict[str, list[EndpointSource]]:
    """Every model's replica sources: --endpoint flags, or the spec's URLs for external engines."""
    unknown = sorted(set(flags) - {m.name for m in spec.models})
    if unknown:
        raise GatewayConfigError(f"--endpoint names unknown model(s): {', '.join(unknown)}")
    sources: dict[str, list[EndpointSource]] = {}
    for model in spec.models:
        if model.name in flags:
            sources[model.name] = flags[model.name]
        elif model.engine == "external":
            sources[model.name] = [EndpointSource(u) for u in model.urls]
        else:
            raise GatewayConfigError(
                f"model '{model.name}' (engine {model.engine}) has no endpoint: pass --endpoint {model.name}=http://HOST:PORT "
                "(`flotilla up` does this for you)"
            )
    return sources


def _served_model(model: ModelSpec, routing: str) -> ServedModel:
    headers = {"Authorization": f"Bearer {model.api_key}"} if model.api_key else {}
    return ServedModel(
        model, model.upstream_model_name, headers, model.forwards_vllm_priority,
        prefix_aware=(model.routing or routing) == "prefix-aware",
    )


def _health_of(model: ModelSpec, pool: ReplicaPool, sources: list[EndpointSource]) -> ModelHealth:
    engine = get_engine(model.engine)
    headers = {"Authorization": f"Bearer {model.api_key}"} if model.api_key else {}
    speed = SpeedGovernor(model.min_tokens_per_second) if model.min_tokens_per_second else None
    return ModelHealth(pool, sources, engine.health_path, engine.metrics_path, headers, speed)


async def create_gateway_app(spec: FlotillaSpec, endpoints: dict[str, list[EndpointSource]]) -> web.Application:
    """Open the store, load tokens, probe replicas, then return the app (its cleanup closes everything)."""
    g = spec.gateway
    sources = resolve_endpoints(spec, endpoints)
    pools = {m.name: ReplicaPool(m.name, m.max_concurrency, m.routing or g.routing) for m in spec.models}
    closers: list = []  # closed in reverse order of opening

    async def close_all(_: web.Application | None = None) -> None:
        for closer in reversed(closers):
            try:
                await closer()
            except Exception:
                log.exception("error while shutting down")

    try:
        store = await Store.open(g.database)
        closers.append(store.close)
        await store.bootstrap_tokens(g.tokens)
        tokens = TokenCache(store, g.auth_refresh_s)
        await tokens.start()
        closers.append(tokens.close)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=g.upstream_timeout_s, sock_connect=g.connect_timeout_s),
            auto_decompress=False,
        )
        closers.append(session.close)
        upstream = UpstreamClient(connect_timeout=g.connect_timeout_s, read_timeout=g.upstream_timeout_s)
        closers.append(upstream.close)
        usage = UsageRecorder(store, flush_interval_s=g.usage_flush_s)
        usage.start()
        closers.append(usage.close)
        dispatcher = make_dispatcher(spec, pools)
        monitor = HealthMonitor(
            [_health_of(m, pools[m.name], sources[m.name]) for m in spec.models],
            session, g.health_interval_s, dispatcher.replicas_changed,
        )
        await monitor.start()
        closers.append(monitor.close)
        await dispatcher.start()
        closers.append(dispatcher.close)  # closed first: waiting requests get an answer
    except BaseException:
        await close_all()
        raise

    metrics = GatewayMetrics()
    metrics.watch(pools, dispatcher.queue_depths, usage, dispatcher.status)

    def ready_check() -> tuple[bool, dict]:
        replicas = {name: pool.healthy_count for name, pool in pools.items()}
        dispatch_ok, dispatch = dispatcher.status()
        return tokens.loaded and dispatch_ok, {"tokens": len(tokens), "healthy_replicas": replicas, "dispatcher": dispatch}

    most_replicas = max(len(p.replicas) for p in pools.values())
    handlers = GatewayHandlers(
        {m.name: _served_model(m, g.routing) for m in spec.models}, tokens, dispatcher, upstream, usage, metrics,
        max_body_bytes=g.max_body_bytes, max_attempts=max(2, most_replicas + 1), ready_check=ready_check,
    )
    app = web.Application(middlewares=[openai_errors], client_max_size=g.max_body_bytes)
    add_routes(app, handlers)
    app.on_cleanup.append(close_all)
    if spec.pipelines:  # imported only for specs that have pipelines (their stores open here)
        from flotilla.gateway.pipelines import install_pipelines

        try:
            closers.append((await install_pipelines(app, handlers, spec)).close)
        except BaseException:
            await close_all()
            raise
    app[HANDLERS] = handlers
    log.info("gateway ready: %s", ", ".join(f"{n} ({p.healthy_count}/{len(p.replicas)} healthy)" for n, p in pools.items()))
    return app


def run_gateway(
    spec: FlotillaSpec, endpoints: dict[str, list[EndpointSource]], host: str | None = None, port: int | None = None
) -> None:
    import uvloop

    configure_logging(spec.gateway.log_level)
    host = host or spec.gateway.host
    port = port or spec.gateway.port
    log.info("listening on http://%s:%d", host, port)
    uvloop.install()
    web.run_app(
        create_gateway_app(spec, endpoints), host=host, port=port, access_log=None, print=None, shutdown_timeout=30,
        handler_cancellation=True,  # a client that hangs up leaves the queue instead of holding a slot
    )
