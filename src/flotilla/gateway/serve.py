"""Running the gateway app: listen, serve until SIGTERM/SIGINT, then drain and stop in order.

The stop sequence, on the first signal:
1. readiness answers 503 and new requests get 503 + Retry-After + Connection: close (DrainGate);
   idle kept-alive connections are closed, busy ones after their answer;
2. the dispatcher stops queueing: requests still waiting are answered 503 + Retry-After at once
   (slots of running requests stay counted: with RabbitMQ, other gateways keep seeing them);
3. running requests and streams get up to `drain_timeout_s` to finish (a second signal cuts this short);
4. the listening socket closes; requests still running are cancelled after CANCEL_GRACE_S;
5. the app's cleanup closes the rest (health checks, upstream pool, usage recorder, token cache, store).
The exit status is 1 when usage records could be neither written nor spooled.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from flotilla.gateway.app import GatewayApp
from flotilla.gateway.drain import DrainGate
from flotilla.gateway.protocol import internal_error, protocol_error
from flotilla.httpserver import HttpServer

log = logging.getLogger("flotilla.gateway")

# Idle kept-alive connections close after this; it also bounds a client that opens a connection
# and never finishes its request headers (the timer starts when the connection opens).
KEEPALIVE_TIMEOUT_S = 75.0
# Handlers still running after the drain are cancelled this long after the listener closes.
CANCEL_GRACE_S = 1.0
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")


def effective_backlog(requested: int) -> int:
    """The accept-queue length the kernel will grant: Linux silently caps listen() at somaxconn."""
    try:
        limit = int(SOMAXCONN.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return requested
    if limit < requested:
        log.warning(
            "listenBacklog %d is capped by the kernel to net.core.somaxconn=%d: a burst of connections beyond "
            "that overflows the accept queue (raise it with `sysctl -w net.core.somaxconn=%d`)",
            requested, limit, requested,
        )
    return min(limit, requested)


class _Signals:
    """First SIGTERM/SIGINT: drain. Second: stop waiting for running requests."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.hurry = asyncio.Event()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._received, signum)

    def remove(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)

    def _received(self, signum: int) -> None:
        if self.stop.is_set():
            log.warning("second %s: no longer waiting for running requests", signal.Signals(signum).name)
            self.hurry.set()
        self.stop.set()


def freeze_startup_heap() -> None:
    """What start allocated (modules, spec, pools, store) lives until stop: it is moved out of the
    cyclic collector's reach, and young collections run less often, so a collection looks only at
    recent garbage. Each request allocates hundreds of containers; with the defaults (every 700,
    the whole heap on full runs) collecting took about a tenth of the gateway's CPU."""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, 10_000), middle, old)


def http_server(app: GatewayApp, max_body_bytes: int) -> HttpServer:
    """The gateway's HTTP server around `app`, with its secret-free OpenAI-format protocol errors."""
    return HttpServer(
        app, max_body_bytes=max_body_bytes, keepalive_timeout_s=KEEPALIVE_TIMEOUT_S,
        protocol_error=protocol_error, internal_error=internal_error,
    )


async def serve(
    app: GatewayApp,
    gate: DrainGate,
    stop_queueing: Callable[[], Awaitable[None]],
    records_lost: Callable[[], int],
    *,
    host: str,
    port: int,
    backlog: int,
    drain_timeout_s: float,
    max_body_bytes: int,
) -> int:
    """Serve `app` until a stop signal; returns the process exit status."""
    signals = _Signals()
    signals.install()
    server = http_server(app, max_body_bytes)
    freeze_startup_heap()
    try:
        try:
            await server.start(host, port, backlog=effective_backlog(backlog))
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
            return 1
        log.info("listening on http://%s:%d", host, port)
        await signals.stop.wait()
        await _drain(server, gate, stop_queueing, drain_timeout_s, signals.hurry)
    finally:
        await server.shutdown(CANCEL_GRACE_S)  # requests still running are cancelled after the grace
        await app.cleanup()  # closes what is left (usage, store)
        signals.remove()
    lost = records_lost()
    if lost:
        log.error("stopped with %d usage record(s) neither written nor spooled", lost)
        return 1
    log.info("stopped")
    return 0


async def _drain(
    server: HttpServer,
    gate: DrainGate,
    stop_queueing: Callable[[], Awaitable[None]],
    timeout_s: float,
    hurry: asyncio.Event,
) -> None:
    gate.begin()  # readiness 503 and new requests 503 + Retry-After, while load balancers catch up
    log.info("draining: %d request(s) running; waiting up to %g s for them", gate.running, timeout_s)
    server.pre_shutdown()  # idle kept-alive connections close now, busy ones after their answer
    await stop_queueing()  # queued requests are answered 503 + Retry-After; running ones keep their slots
    idle = asyncio.create_task(gate.wait_idle(timeout_s))
    hurried = asyncio.create_task(hurry.wait())
    await asyncio.wait((idle, hurried), return_when=asyncio.FIRST_COMPLETED)
    hurried.cancel()
    if not idle.done() or not idle.result():
        idle.cancel()
        log.warning("drain ended with %d request(s) still running: they are cut", gate.running)
    await server.close_listener()
