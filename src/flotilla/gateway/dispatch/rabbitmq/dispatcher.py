"""The gateway's side of the RabbitMQ dispatcher: tickets out, grants in, slots given back.

Each gateway process is, at once, a client (its requests send tickets and wait for grants) and a
candidate scheduler for every model (scheduler.py). Its identity is per connection: after a
reconnect it is a new gateway to the others, re-sends the tickets of requests still waiting and
reports the slots its running requests hold, while the old identity is declared dead (watch.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import time
from collections import OrderedDict

from aiormq.abc import DeliveredMessage

from flotilla.gateway.dispatch.base import Lease, ModelUnavailable, QueueFull, QueueTimeout, Ticket
from flotilla.gateway.dispatch.model_queue import LineRules
from flotilla.gateway.dispatch.rabbitmq import wire
from flotilla.gateway.dispatch.rabbitmq.link import BrokerLink, redacted, with_heartbeat
from flotilla.gateway.dispatch.rabbitmq.scheduler import ModelScheduler, State
from flotilla.gateway.dispatch.rabbitmq.watch import GatewayWatch
from flotilla.gateway.replicas import Replica, ReplicaPool
from flotilla.gateway.tasks import cancel_and_wait

log = logging.getLogger("flotilla.gateway.dispatch.rabbitmq")

_DEAD_REMEMBERED = 4096  # gateway ids whose late messages are ignored


class _Pending:
    """A request of this gateway waiting for a grant."""

    __slots__ = ("key", "ticket", "retry", "future", "timer")

    def __init__(self, key: str, ticket: Ticket, retry: bool, future: asyncio.Future[Lease]) -> None:
        self.key = key
        self.ticket = ticket
        self.retry = retry
        self.future = future
        self.timer: asyncio.TimerHandle | None = None


class RabbitMqDispatcher:
    """Implements `flotilla.gateway.dispatch.base.Dispatcher` across gateway processes."""

    def __init__(
        self,
        pools: dict[str, ReplicaPool],
        *,
        url: str,
        prefix: str = "flotilla",
        queue_type: str = "classic",
        max_queue_wait_s: float | None = None,
        unavailable_wait_s: float = 30.0,
        census_timeout_s: float = 1.0,
        connect_timeout_s: float = 5.0,
        heartbeat_s: int = 10,
        alive_expires_s: float = 120.0,
        rules: dict[str, LineRules] | None = None,
    ) -> None:
        self._pools = pools
        self._url = with_heartbeat(url, heartbeat_s)
        self._where = redacted(url)
        self.names = wire.Names(prefix)
        self._queue_type = queue_type
        self._max_wait = max_queue_wait_s
        self._unavailable_wait = unavailable_wait_s
        self._connect_timeout = connect_timeout_s
        self._alive_expires_ms = int(alive_expires_s * 1000)
        self._dead: OrderedDict[str, None] = OrderedDict()
        self.schedulers = {
            model: ModelScheduler(
                model, pool, self.names, unavailable_wait_s=unavailable_wait_s, census_timeout_s=census_timeout_s,
                watch_gateway=self._watch_gateway, dead_gateways=self._dead,
                local_grant=self._on_local_grant, local_reject=self._on_local_reject,
                rules=(rules or {}).get(model, LineRules()),
            )
            for model, pool in pools.items()
        }
        # Ticket keys are unique across gateways and reconnects: request ids come from clients.
        self._key_head = os.urandom(6).hex()
        self._key_counter = itertools.count(1)
        self._pending: dict[str, _Pending] = {}  # insertion order = ticket order, kept across reconnects
        self._leases: dict[str, tuple[str, str]] = {}  # key -> (model, replica url) of slots held here
        self._link: BrokerLink | None = None
        self._link_candidate: BrokerLink | None = None  # the one being connected
        self._watch: GatewayWatch | None = None
        self.gateway_id: str | None = None
        self._reply_queue = ""
        self._down_since: float | None = time.monotonic()
        self._last_error = "not connected yet"
        self._lost = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (or keep trying in the background: readiness stays false until connected)."""
        first = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._run(first), name="dispatch-broker")
        self._sweeper = asyncio.create_task(self._sweep(), name="dispatch-sweeper")
        await first
        if self._link is None:
            log.warning(
                "dispatch broker %s unreachable (%s); not ready, retrying in the background",
                self._where, self._last_error,
            )

    async def stop_queueing(self) -> None:
        """Answer our waiting requests; stay connected, so the slots our running requests hold stay
        counted (their releases still reach the scheduler) and, if we schedule a model, other
        gateways are still served until we close."""
        self._closed = True
        error = ModelUnavailable("the gateway is shutting down")
        for pending in list(self._pending.values()):
            self._withdraw(pending)
            if not pending.future.done():
                pending.future.set_exception(error)

    async def close(self) -> None:
        await self.stop_queueing()
        await cancel_and_wait(self._sweeper)
        await cancel_and_wait(self._runner)
        link, self._link = self._link, None
        if link is not None:
            await link.drained(2.0)  # the cancels and releases, so schedulers stop holding them
            await link.close()

    def status(self) -> tuple[bool, dict]:
        detail = {"kind": "rabbitmq", "broker": self._where, "connected": self._link is not None}
        if self._link is None:
            detail["error"] = self._last_error
        else:
            detail["gateway_id"] = self.gateway_id
            detail["scheduling"] = sorted(m for m, s in self.schedulers.items() if s.state is not State.STANDBY)
        return self._link is not None, detail

    async def _run(self, first: asyncio.Future[None]) -> None:
        delay = 0.2
        while not self._closed:
            self._lost.clear()
            try:
                await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._last_error = f"{type(exc).__name__}: {exc}".rstrip(": ")
                await self._teardown()
                if not first.done():
                    first.set_result(None)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            if not first.done():
                first.set_result(None)
            await self._lost.wait()
            log.warning("dispatch broker %s lost (%s); reconnecting", self._where, self._last_error)
            await self._teardown()

    async def _connect(self) -> None:
        gateway_id = os.urandom(6).hex()
        link = self._link_candidate = BrokerLink(self._url, on_lost=self._on_lost, on_returned=self._on_returned)
        await link.open(self._connect_timeout)
        names = self.names
        reply_queue = names.reply(gateway_id)
        control = await link.declare_control(names.control)
        await link.declare_reply_queue(reply_queue, control)
        await link.consume(reply_queue, self._on_reply, no_ack=True)
        await self._hold_tombstone(link, gateway_id)
        for model in self._pools:
            await link.declare_scheduler_queue(names.scheduler(model), self._queue_type)
        self.gateway_id, self._reply_queue = gateway_id, reply_queue
        self._watch = GatewayWatch(link, names, gateway_id, self._announce_dead)
        for scheduler in self.schedulers.values():
            scheduler.attach(link, gateway_id)
        self._link = link
        # Consume last: a scheduler role can only start once everything above is in place.
        for model, scheduler in self.schedulers.items():
            await link.consume(names.scheduler(model), scheduler.on_message, no_ack=False)
        self._down_since = None
        self._resend_state()
        log.info("dispatch broker %s connected as gateway %s", self._where, gateway_id)

    async def _hold_tombstone(self, link: BrokerLink, gateway_id: str) -> None:
        """Our tombstone, held unacknowledged by this connection: when it ends, others are told."""
        queue = self.names.alive(gateway_id)
        await link.declare_alive_queue(queue, self._alive_expires_ms)
        held = asyncio.get_running_loop().create_future()

        async def hold(message: DeliveredMessage) -> None:
            if not held.done():
                held.set_result(None)

        await link.consume(queue, hold, no_ack=False)
        await link.publish_now("", queue, wire.TOMBSTONE, [gateway_id])
        await asyncio.wait_for(held, self._connect_timeout)

    def _resend_state(self) -> None:
        """After (re)connecting: tickets of requests still waiting, slots still held."""
        link = self._link
        for pending in self._pending.values():
            self._send_ticket(link, pending)
        for model in self._pools:
            held = [[key, url] for key, (m, url) in self._leases.items() if m == model]
            if held:
                link.send_whole(self.names.scheduler(model), wire.LEASES, held, head=None, reply_to=self._reply_queue)

    def _on_lost(self, why: str) -> None:
        self._last_error = why
        self._lost.set()

    async def _teardown(self) -> None:
        link, self._link = self._link, None
        candidate, self._link_candidate = self._link_candidate, None
        if self._down_since is None:
            self._down_since = time.monotonic()
        for scheduler in self.schedulers.values():
            scheduler.reset()
        self._watch = None
        for target in {link, candidate} - {None}:
            await target.close()

    # --- Dispatcher ---------------------------------------------------------------------------

    def try_acquire(self, ticket: Ticket) -> Lease | None:
        return None  # slots are the model's scheduler's to give, even when it runs in this process

    async def acquire(self, ticket: Ticket, *, retry: bool = False) -> Lease:
        if self._closed:
            raise ModelUnavailable("the gateway is shutting down")
        self._fail_fast(ticket.model)
        loop = asyncio.get_running_loop()
        key = f"{self._key_head}{next(self._key_counter):x}"
        pending = _Pending(key, ticket, retry, loop.create_future())
        self._pending[key] = pending
        if self._link is not None and not self.schedulers[ticket.model].offer_local(key, ticket, retry):
            self._send_ticket(self._link, pending)
        if self._max_wait is not None:
            remaining = self._max_wait - (time.monotonic() - ticket.created_at)
            pending.timer = loop.call_later(max(remaining, 0.0), self._expire, pending)
        try:
            return await pending.future
        except asyncio.CancelledError:
            future = pending.future
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release(future.result())  # granted as the client left
            else:
                self._withdraw(pending)
            raise
        finally:
            if pending.timer is not None:
                pending.timer.cancel()

    def release(self, lease: Lease, *, replica_failed: bool = False) -> None:
        model = lease.ticket.model
        if replica_failed and self._pools[model].mark(lease.replica, False, "connection failed"):
            log.warning("replica %s of %s unreachable; routing around it", lease.replica.label, model)
        self._give_back(lease.dispatch_key, replica_failed)

    def _give_back(self, key: str, replica_failed: bool) -> None:
        held = self._leases.pop(key, None)
        if held is None or self.schedulers[held[0]].release_local(key, replica_failed):
            return  # unknown, or counted by our own scheduler: done in-process
        if self._link is not None:
            self._link.send(
                self.names.scheduler(held[0]), wire.RELEASES, [key, replica_failed], reply_to=self._reply_queue
            )

    def replicas_changed(self, model: str) -> None:
        self.schedulers[model].hand_out()

    def queue_depths(self) -> dict[tuple[str, int], int]:
        depths: dict[tuple[str, int], int] = {}
        for pending in self._pending.values():
            k = (pending.ticket.model, pending.ticket.priority)
            depths[k] = depths.get(k, 0) + 1
        return depths

    # --- internals ----------------------------------------------------------------------------

    def _fail_fast(self, model: str) -> None:
        queue = self.schedulers[model].queue  # this gateway's own view of the replicas
        now = time.monotonic()
        if queue.unavailable_for_too_long(now):
            raise ModelUnavailable(queue.unavailable_detail())
        if self._down_since is not None and now - self._down_since > self._unavailable_wait:
            raise ModelUnavailable(self._broker_down_detail())

    def _broker_down_detail(self) -> str:
        return f"the dispatch broker {self._where} is unreachable ({self._last_error})"

    def _send_ticket(self, link: BrokerLink, pending: _Pending) -> None:
        t = pending.ticket
        link.send(
            self.names.scheduler(t.model), wire.TICKETS,
            [pending.key, t.token_name, t.priority, t.threshold, pending.retry, t.blocks], reply_to=self._reply_queue,
        )

    def _withdraw(self, pending: _Pending) -> None:
        if self._pending.pop(pending.key, None) is None:
            return
        if self.schedulers[pending.ticket.model].withdraw_local(pending.key):
            return
        if self._link is not None:
            self._link.send(
                self.names.scheduler(pending.ticket.model), wire.CANCELS, pending.key, reply_to=self._reply_queue
            )

    def _expire(self, pending: _Pending) -> None:
        if pending.future.done():
            return
        self._withdraw(pending)
        pending.future.set_exception(QueueTimeout(time.monotonic() - pending.ticket.created_at))

    def _replica(self, model: str, url: str) -> Replica:
        pool = self._pools[model]
        for replica in pool.replicas:
            if replica.url == url:
                return replica
        return Replica(model, url, pool.capacity)  # granted from a scheduler's fresher view

    async def _on_reply(self, message: DeliveredMessage) -> None:
        kind = message.header.properties.message_type
        try:
            body = wire.decode(message.body)
        except ValueError as exc:
            log.warning("dropping a malformed %s message: %s", kind, exc)
            return
        if kind == wire.GRANTS:
            self._on_grants(*body)
        elif kind == wire.REJECTS:
            self._on_rejects(*body)
        elif kind == wire.CENSUS:
            self._on_census(*body)
        elif kind == wire.DEAD:
            for gateway in body:
                self._on_dead(gateway)

    def _on_grants(self, model: str, items: list) -> None:
        now = time.monotonic()
        for key, url in items:
            pending = self._pending.pop(key, None)
            self._leases[key] = (model, url)
            if pending is None or pending.future.done():
                # Gave up meanwhile, or a copy after a scheduler change: give the slot straight back.
                self._give_back(key, False)
                continue
            lease = Lease(pending.ticket, self._replica(model, url), now - pending.ticket.created_at, key)
            pending.future.set_result(lease)

    def _on_local_grant(self, model: str, key: str, url: str) -> None:
        pending = self._pending.get(key)
        if pending is None or pending.future.done():
            # Not while our scheduler is handing out slots: give it back on the next turn.
            self._leases[key] = (model, url)
            asyncio.get_running_loop().call_soon(self._give_back, key, False)
            return
        self._on_grants(model, [[key, url]])

    def _on_local_reject(self, model: str, key: str, reason: str, detail: str) -> None:
        self._on_rejects(model, [[key, reason, detail]])

    def _on_rejects(self, model: str, items: list) -> None:
        for key, reason, detail in items:
            pending = self._pending.pop(key, None)
            if pending is None or pending.future.done():
                continue
            if reason == wire.REJECT_FULL:
                error: Exception = QueueFull(pending.ticket.token_name)
            else:
                error = ModelUnavailable(detail or "no healthy replica")
            pending.future.set_exception(error)

    def _on_census(self, model: str, census_id: str) -> None:
        if model not in self._pools or self._link is None:
            return
        held = [[key, url] for key, (m, url) in self._leases.items() if m == model]
        self._link.send_whole(self.names.scheduler(model), wire.LEASES, held, head=census_id, reply_to=self._reply_queue)

    def _on_dead(self, gateway: str) -> None:
        if gateway == self.gateway_id:
            return  # our own old identity is announced after a reconnect; we already moved on
        self._dead[gateway] = None
        while len(self._dead) > _DEAD_REMEMBERED:
            self._dead.popitem(last=False)
        if self._watch is not None:
            self._watch.forget(gateway)
        for scheduler in self.schedulers.values():
            scheduler.on_dead(gateway)

    def _announce_dead(self, gateway: str) -> None:
        if self._link is not None:
            self._link.send("", wire.DEAD, gateway, exchange=self.names.control)

    def _watch_gateway(self, gateway: str) -> None:
        if self._watch is not None:
            self._watch.watch(gateway)

    def _on_returned(self, kind: str, routing_key: str, head: object, items: list) -> None:
        if kind in (wire.GRANTS, wire.REJECTS):
            gateway = self.names.gateway_of(routing_key)
            scheduler = self.schedulers.get(head)  # type: ignore[arg-type]
            if gateway is not None and scheduler is not None:
                if kind == wire.GRANTS:
                    scheduler.on_grants_returned(gateway, items)
                else:
                    scheduler.on_dead(gateway)
        elif kind == wire.TICKETS:
            for item in items:
                pending = self._pending.pop(item[0], None)
                if pending is not None and not pending.future.done():
                    pending.future.set_exception(ModelUnavailable("the dispatch broker refused the ticket"))

    async def _sweep(self) -> None:
        """Once a second: give up on models that stay down, and on a broker that stays away."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for scheduler in self.schedulers.values():
                scheduler.sweep(now)
            if self._down_since is not None and now - self._down_since > self._unavailable_wait:
                error = ModelUnavailable(self._broker_down_detail())
                for pending in list(self._pending.values()):
                    self._pending.pop(pending.key, None)
                    if not pending.future.done():
                        pending.future.set_exception(error)
