"""Assembles the gateway from a spec and runs it."""

from __future__ import annotations

import logging
from dataclasses import replace

import aiohttp
from aiohttp import web

from flotilla.engines import get_engine
from flotilla.gateway.app import GatewayHandlers, add_routes, openai_errors
from flotilla.gateway.auth import TokenCache
from flotilla.gateway.disagg import PrefillStep
from flotilla.gateway.dispatch import make_dispatcher
from flotilla.gateway.drain import DrainGate
from flotilla.gateway.endpoints import EndpointSource
from flotilla.gateway.health import HealthMonitor, ModelHealth
from flotilla.gateway.metrics import GatewayMetrics
from flotilla.gateway.replica_groups import ReplicaGroup, replica_groups
from flotilla.gateway.replicas import ReplicaPool
from flotilla.gateway.serve import serve
from flotilla.gateway.served import served_models, upstream_headers
from flotilla.gateway.speed import SpeedGovernor
from flotilla.gateway.upstream import upstream_client
from flotilla.gateway.usage_recorder import UsageRecorder
from flotilla.gateway.usage_spool import UsageSpool, spool_path
from flotilla.logs import configure_logging
from flotilla.spec.models import ModelSpec
from flotilla.spec.root import FlotillaSpec
from flotilla.store import Store, StoreError

log = logging.getLogger("flotilla.gateway")


HANDLERS = web.AppKey("flotilla.handlers", GatewayHandlers)
DRAIN_GATE = web.AppKey("flotilla.drain_gate", DrainGate)


class GatewayConfigError(ValueError):
    pass


def resolve_endpoints(
    spec: FlotillaSpec, flags: dict[str, list[EndpointSource]]
) -> dict[str, list[EndpointSource]]:
    """Every replica group's sources: --endpoint flags, or the spec's URLs for external engines."""
    groups = replica_groups(spec)
    unknown = sorted(set(flags) - {g.name for g in groups})
    if unknown:
        raise GatewayConfigError(f"--endpoint names unknown model(s): {', '.join(unknown)}")
    sources: dict[str, list[EndpointSource]] = {}
    for group in groups:
        model = group.model
        if group.name in flags:
            sources[group.name] = flags[group.name]
        elif not model.urls:
            raise GatewayConfigError(
                f"model '{group.name}' (engine {model.engine}) has no endpoint: pass --endpoint {group.name}=http://HOST:PORT "
                "(`flotilla up` does this for you)"
            )
        else:
            sources[group.name] = [EndpointSource(u) for u in model.urls]
    return sources


def scales_to_zero(model: ModelSpec) -> bool:
    """KEDA may take this model's replicas away (autoscaling with minReplicas 0)."""
    a = model.autoscaling
    return a is not None and a.enabled and a.min_replicas == 0


def _health_of(group: ReplicaGroup, pool: ReplicaPool, sources: list[EndpointSource]) -> ModelHealth:
    model = group.model
    engine = get_engine(model.engine)
    speed = SpeedGovernor(model.min_tokens_per_second) if model.min_tokens_per_second else None
    return ModelHealth(pool, sources, engine.health_path, engine.metrics_path, upstream_headers(model),
                       engine.gauges_for(model), speed)


async def create_gateway_app(spec: FlotillaSpec, endpoints: dict[str, list[EndpointSource]]) -> web.Application:
    """Open the store, load tokens, probe replicas, then return the app (its cleanup closes everything)."""
    g = spec.gateway
    sources = resolve_endpoints(spec, endpoints)
    groups = replica_groups(spec)
    pools = {r.name: ReplicaPool(r.name, r.capacity, r.policy, scales_to_zero=scales_to_zero(r.model)) for r in groups}
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
            timeout=aiohttp.ClientTimeout(total=g.first_byte_timeout_s, sock_connect=g.connect_timeout_s),
            auto_decompress=False,
        )
        closers.append(session.close)
        upstream = upstream_client(g)
        closers.append(upstream.close)
        usage = UsageRecorder(
            store, flush_interval_s=g.usage_flush_s, spool=UsageSpool(spool_path(g.database, g.usage_spool))
        )
        await usage.replay_spool()  # what the last run could not write at its stop
        usage.start()
        closers.append(usage.close)
        dispatcher = make_dispatcher(spec, pools)
        monitor = HealthMonitor(
            [_health_of(r, pools[r.name], sources[r.name]) for r in groups],
            session, g.health_interval_s, dispatcher.replicas_changed,
        )
        await monitor.start()
        closers.append(monitor.close)
        await dispatcher.start()
        closers.append(dispatcher.close)  # closed first: waiting requests get an answer
    except BaseException:
        await close_all()
        raise

    metrics = GatewayMetrics(tokens.priority_label)
    metrics.watch(pools, dispatcher.queue_depths, usage, dispatcher.status)

    def ready_check() -> tuple[bool, dict]:
        replicas = {name: pool.healthy_count for name, pool in pools.items()}
        store_state = "reachable" if tokens.store_reachable else "unreachable"
        dispatch_ok, dispatch = dispatcher.status()
        ready = tokens.loaded and tokens.store_reachable and dispatch_ok
        return ready, {
            "tokens": len(tokens), "store": store_state, "healthy_replicas": replicas, "dispatcher": dispatch,
        }

    most_replicas = max(len(p.replicas) for p in pools.values())
    served = served_models(spec)
    for name, model in list(served.items()):
        if model.spec.roles is not None:  # disaggregated: prefill on NAME@prefill before decode
            served[name] = replace(model, prefill=PrefillStep(model.spec.name, dispatcher, upstream))
    handlers = GatewayHandlers(
        served, tokens, dispatcher, upstream, usage, metrics,
        max_body_bytes=g.max_body_bytes, max_attempts=max(2, most_replicas + 1), ready_check=ready_check,
        body_timeout_s=g.body_timeout_s,
    )
    gate = DrainGate()
    app = web.Application(middlewares=[gate.middleware, openai_errors], client_max_size=g.max_body_bytes)
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
    app[DRAIN_GATE] = gate
    log.info("gateway ready: %s", ", ".join(f"{n} ({p.healthy_count}/{len(p.replicas)} healthy)" for n, p in pools.items()))
    return app


def run_gateway(
    spec: FlotillaSpec, endpoints: dict[str, list[EndpointSource]], host: str | None = None, port: int | None = None
) -> None:
    """Serve until SIGTERM/SIGINT, drain, stop; exits non-zero when start failed or usage records were lost."""
    import uvloop

    configure_logging(spec.gateway.log_level)
    status = uvloop.run(_serve_gateway(spec, endpoints, host or spec.gateway.host, port or spec.gateway.port))
    if status:
        raise SystemExit(status)


async def _serve_gateway(
    spec: FlotillaSpec, endpoints: dict[str, list[EndpointSource]], host: str, port: int
) -> int:
    g = spec.gateway
    try:
        app = await create_gateway_app(spec, endpoints)
    except StoreError as exc:
        log.error("cannot start the gateway: %s", exc)
        return 1
    handlers = app[HANDLERS]
    return await serve(
        app, app[DRAIN_GATE], handlers.dispatcher.stop_queueing, lambda: handlers.usage.records_lost,
        host=host, port=port, backlog=g.listen_backlog, drain_timeout_s=g.drain_timeout_s,
    )
