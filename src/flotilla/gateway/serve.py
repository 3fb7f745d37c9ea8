"""Running the gateway app: listen, serve until SIGTERM/SIGINT, then drain and stop in order.

The stop sequence, on the first signal:
1. readiness answers 503 and new requests get 503 + Retry-After + Connection: close (DrainGate);
   idle kept-alive connections are closed;
2. the dispatcher stops queueing: requests still waiting are answered 503 + Retry-After at once
   (slots of running requests stay counted: with RabbitMQ, other gateways keep seeing them);
3. running requests and streams get up to `drain_timeout_s` to finish (a second signal cuts this short);
4. the listening socket closes; requests still running are cancelled after CANCEL_GRACE_S;
5. the app's cleanup closes the rest (health checks, upstream pool, usage recorder, token cache, store).
The exit status is 1 when usage records could be neither written nor spooled.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from flotilla.gateway.drain import DrainGate
from flotilla.gateway.protocol import GatewayAppRunner

log = logging.getLogger("flotilla.gateway")

# Idle kept-alive connections close after this; it also bounds a client that opens a connection
# and never finishes its request headers (aiohttp starts this timer when the connection opens).
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


async def serve(
    app: web.Application,
    gate: DrainGate,
    stop_queueing: Callable[[], Awaitable[None]],
    records_lost: Callable[[], int],
    *,
    host: str,
    port: int,
    backlog: int,
    drain_timeout_s: float,
) -> int:
    """Serve `app` until a stop signal; returns the process exit status."""
    signals = _Signals()
    signals.install()
    runner = GatewayAppRunner(
        app, access_log=None, keepalive_timeout=KEEPALIVE_TIMEOUT_S, shutdown_timeout=CANCEL_GRACE_S,
        handler_cancellation=True,  # a client that hangs up leaves the queue instead of holding a slot
    )
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=effective_backlog(backlog))
        try:
            await site.start()
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
            return 1
        log.info("listening on http://%s:%d", host, port)
        await signals.stop.wait()
        await _drain(runner, gate, stop_queueing, drain_timeout_s, signals.hurry)
    finally:
        await runner.cleanup()  # closes what is left and runs the app's cleanup (usage, store)
        signals.remove()
    lost = records_lost()
    if lost:
        log.error("stopped with %d usage record(s) neither written nor spooled", lost)
        return 1
    log.info("stopped")
    return 0


async def _drain(
    runner: web.AppRunner,
    gate: DrainGate,
    stop_queueing: Callable[[], Awaitable[None]],
    timeout_s: float,
    hurry: asyncio.Event,
) -> None:
    gate.begin()  # readiness 503 and new requests 503 + Retry-After, while load balancers catch up
    log.info("draining: %d request(s) running; waiting up to %g s for them", gate.running, timeout_s)
    if runner.server is not None:
        runner.server.pre_shutdown()  # idle kept-alive connections close now, busy ones after their answer
    await stop_queueing()  # queued requests are answered 503 + Retry-After; running ones keep their slots
    idle = asyncio.create_task(gate.wait_idle(timeout_s))
    hurried = asyncio.create_task(hurry.wait())
    await asyncio.wait((idle, hurried), return_when=asyncio.FIRST_COMPLETED)
    hurried.cancel()
    if not idle.done() or not idle.result():
        idle.cancel()
        log.warning("drain ended with %d request(s) still running: they are cut", gate.running)
    for site in list(runner.sites):
        await site.stop()
