"""A model's scheduler: the one gateway process, of all of them, that decides who gets a slot.

Every gateway consumes the model's scheduler queue; RabbitMQ's single-active-consumer makes one of
them the scheduler. It holds the waiting tickets of all gateways (unacknowledged, so they survive
its death), orders them with the same rules as the local dispatcher (model_queue.py), counts the
slots taken on each replica by every gateway, and sends each grant straight to the gateway that
asked. A ticket is acknowledged once it is granted, refused or withdrawn.

Taking over: a scheduler knows it became active when the first message reaches it. The tickets its
predecessor held come back (redelivered), but not which slots were taken: it asks every gateway
(a census on the control exchange) and grants nothing until every consumer of the queue answered,
or `census_timeout_s` passed. A gateway answers after every grant already queued for it (same
queue, FIFO), and on the channel of its releases, so its list is exact.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import os
import time
from collections import OrderedDict

from aiormq.abc import DeliveredMessage

from flotilla.gateway.dispatch.base import ModelUnavailable, QueueFull, Ticket
from flotilla.gateway.dispatch.model_queue import LineRules, ModelQueue
from flotilla.gateway.dispatch.rabbitmq import wire
from flotilla.gateway.dispatch.rabbitmq.link import BrokerLink
from flotilla.gateway.replicas import Replica, ReplicaPool

log = logging.getLogger("flotilla.gateway.dispatch.rabbitmq")

_census_ids = itertools.count(1)
_CENSUS_PREFIX = os.urandom(4).hex()


class State(enum.Enum):
    STANDBY = "standby"  # another gateway schedules this model (or none has needed to yet)
    RECOVERING = "recovering"  # active, waiting for the census before granting
    ACTIVE = "active"


class _Delivery:
    """A ticket message: acknowledged when every ticket in it is resolved."""

    __slots__ = ("tag", "left")

    def __init__(self, tag: int, left: int) -> None:
        self.tag = tag
        self.left = left


class _Remote:
    """A ticket waiting here for a slot, on behalf of `gateway` (delivery None: our own gateway's,
    handed over in-process, which never crossed the broker)."""

    __slots__ = ("ticket", "gateway", "delivery")

    def __init__(self, ticket: Ticket, gateway: str, delivery: _Delivery | None) -> None:
        self.ticket = ticket
        self.gateway = gateway
        self.delivery = delivery


class ModelScheduler:
    def __init__(
        self,
        model: str,
        pool: ReplicaPool,
        names: wire.Names,
        *,
        unavailable_wait_s: float,
        census_timeout_s: float,
        watch_gateway,
        dead_gateways: "OrderedDict[str, None]",
        local_grant,
        local_reject,
        rules: LineRules = LineRules(),
    ) -> None:
        self.model = model
        self.pool = pool
        self.names = names
        self.queue_name = names.scheduler(model)
        self.census_timeout_s = census_timeout_s
        self._watch_gateway = watch_gateway
        self._dead = dead_gateways
        self._local_grant = local_grant  # (model, key, replica url): a grant for our own gateway
        self._local_reject = local_reject  # (model, key, reason, detail)
        self.gateway_id: str | None = None  # our own gateway's id on the current connection
        self.queue: ModelQueue[_Remote] = ModelQueue(pool, unavailable_wait_s, rules)
        self.state = State.STANDBY
        self.link: BrokerLink | None = None
        self._by_key: dict[str, _Remote] = {}
        self._leases: dict[str, tuple[str, Replica]] = {}  # ticket key -> (gateway, replica)
        self._census_id: str | None = None
        self._census_expected: int | None = None
        self._census_heard: set[str] = set()
        self._census_timer: asyncio.TimerHandle | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def attach(self, link: BrokerLink, gateway_id: str) -> None:
        self.link = link
        self.gateway_id = gateway_id

    def reset(self) -> None:
        """Our connection ended: whatever we held went back to the broker; forget it all."""
        self.state = State.STANDBY
        self.link = None
        self.gateway_id = None
        self.queue.drain()  # our own gateway re-sends its waiting tickets after reconnecting
        self._by_key.clear()
        self._leases.clear()
        for replica in self.pool.replicas:
            replica.in_flight = 0
        if self._census_timer is not None:
            self._census_timer.cancel()
        self._census_id = None

    @property
    def holds(self) -> int:
        """Slots this scheduler counts as taken (all gateways)."""
        return len(self._leases)

    # --- messages on the model's scheduler queue ----------------------------------------------

    async def on_message(self, message: DeliveredMessage) -> None:
        props = message.header.properties
        tag = message.delivery.delivery_tag
        link = self.link
        if link is None:
            return
        if self.state is State.STANDBY:
            self._take_over()
        gateway = self.names.gateway_of(props.reply_to or "")
        try:
            body = wire.decode(message.body)
        except ValueError as exc:
            log.warning("dropping a malformed %s message on %s: %s", props.message_type, self.queue_name, exc)
            link.ack(tag)
            return
        if gateway is None:
            log.warning("dropping a %s message without a gateway on %s", props.message_type, self.queue_name)
            link.ack(tag)
            return
        if gateway not in self._dead:
            self._watch_gateway(gateway)
        kind = props.message_type
        if kind == wire.TICKETS and wire.valid_tickets(body):
            self._on_tickets(gateway, tag, body)
        else:
            try:
                if kind == wire.RELEASES:
                    self._on_releases(body)
                elif kind == wire.CANCELS:
                    self._on_cancels(body)
                elif kind == wire.LEASES:
                    self._on_leases(gateway, body)
                else:
                    log.warning("dropping a %s message on %s (unknown or malformed)", kind, self.queue_name)
            except (ValueError, TypeError) as exc:  # a peer of another version, say: keep serving
                log.warning("dropping a malformed %s message on %s: %s", kind, self.queue_name, exc)
            link.ack(tag)
        self.hand_out()

    def _on_tickets(self, gateway: str, tag: int, items: list) -> None:
        if not items:
            self.link.ack(tag)
            return
        delivery = _Delivery(tag, len(items))  # acknowledged by the last _resolve
        dead = gateway in self._dead
        now = time.monotonic()
        for key, token, priority, threshold, retry, blocks in items:
            remote = _Remote(Ticket(key, self.model, token, priority, threshold, now, tuple(blocks)), gateway, delivery)
            if dead or key in self._leases or key in self._by_key:
                self._resolve(remote)  # from a gateway that is gone, or a copy of one we know
                continue
            self._admit(remote, bool(retry))

    def offer_local(self, key: str, ticket: Ticket, retry: bool) -> bool:
        """Our own gateway's request, while we schedule: no broker round trip. False if we do not."""
        if self.state is State.STANDBY or self.link is None:
            return False
        remote = _Remote(Ticket(key, self.model, ticket.token_name, ticket.priority, ticket.threshold,
                                ticket.created_at, ticket.blocks), self.gateway_id, None)
        self._admit(remote, retry)
        return True

    def _admit(self, remote: _Remote, retry: bool) -> None:
        active = self.state is State.ACTIVE
        if active:
            replica = self.queue.take_free_slot(remote.ticket)
            if replica is not None:
                self._grant(remote, replica)
                return
        try:
            # While the census runs, whether a slot is free is unknown: line up without the
            # threshold (a request that finds a free slot never waits, whatever its threshold).
            self.queue.admit(remote.ticket, retry or not active)
        except QueueFull:
            self._reject(remote, wire.REJECT_FULL, "")
            return
        except ModelUnavailable as exc:
            self._reject(remote, wire.REJECT_UNAVAILABLE, str(exc))
            return
        self.queue.push(remote, retry)
        self._by_key[remote.ticket.request_id] = remote

    def release_local(self, key: str, failed: bool) -> bool:
        """Our own gateway gives back a slot we count: False if we do not count it (another
        scheduler does, or we lost the role), and the release must cross the broker."""
        held = self._leases.get(key)
        if self.link is None or held is None or held[0] != self.gateway_id:
            return False
        del self._leases[key]
        if self.queue.release(held[1], failed):
            log.warning("replica %s of %s unreachable; routing around it", held[1].label, self.model)
        self.hand_out()
        return True

    def withdraw_local(self, key: str) -> bool:
        """Our own gateway's waiting request gave up: False if it is not waiting here."""
        remote = self._by_key.get(key)
        if remote is None or remote.delivery is not None:
            return False
        del self._by_key[key]
        self.queue.withdraw(remote)
        return True

    def _on_releases(self, items: list) -> None:
        for key, failed in items:
            held = self._leases.pop(key, None)
            if held is None:
                continue  # granted before our time and not in the census: nothing counted
            replica = held[1]
            if self.queue.release(replica, bool(failed)):
                log.warning("replica %s of %s unreachable; routing around it", replica.label, self.model)

    def _on_cancels(self, keys: list) -> None:
        for key in keys:
            remote = self._by_key.pop(key, None)
            if remote is not None and self.queue.withdraw(remote):
                self._resolve(remote)

    def _on_leases(self, gateway: str, body: list) -> None:
        census_id, items = body
        for key, url in items:
            self._adopt(key, gateway, url)
        if census_id is not None and census_id == self._census_id:
            self._census_heard.add(gateway)
            self._check_census()

    def _adopt(self, key: str, gateway: str, url: str) -> None:
        """A gateway holds this slot (granted by an earlier scheduler, or before a reconnect)."""
        held = self._leases.get(key)
        if held is not None:
            self._leases[key] = (gateway, held[1])
            return
        replica = self._replica_at(url)
        replica.in_flight += 1
        self._leases[key] = (gateway, replica)
        remote = self._by_key.pop(key, None)  # its ticket came back too: it is not waiting
        if remote is not None and self.queue.withdraw(remote):
            self._resolve(remote)

    def _replica_at(self, url: str) -> Replica:
        for replica in self.pool.replicas:
            if replica.url == url:
                return replica
        # Not (yet) discovered here: count it apart, so its release balances.
        return Replica(self.model, url, self.pool.capacity)

    # --- gateways that are gone ---------------------------------------------------------------

    def on_dead(self, gateway: str) -> None:
        if self.link is None:
            return
        for key, (holder, replica) in list(self._leases.items()):
            if holder == gateway:
                del self._leases[key]
                self.queue.release(replica, False)
        for key, remote in list(self._by_key.items()):
            if remote.gateway == gateway:
                del self._by_key[key]
                if self.queue.withdraw(remote):
                    self._resolve(remote)
        if self._census_id is not None and self.state is State.RECOVERING:
            self._census_heard.add(gateway)  # it will never answer
            self._check_census()
        self.hand_out()

    def on_grants_returned(self, gateway: str, items: list) -> None:
        """Grants the broker could not deliver: that gateway's reply queue is gone, so is it."""
        for key, _url in items:
            held = self._leases.pop(key, None)
            if held is not None:
                self.queue.release(held[1], False)
        self.on_dead(gateway)

    # --- granting -----------------------------------------------------------------------------

    def hand_out(self) -> None:
        if self.state is not State.ACTIVE or self.link is None:
            return
        by_key = self._by_key
        for remote, replica in self.queue.grants():
            by_key.pop(remote.ticket.request_id, None)
            self._grant(remote, replica)

    def sweep(self, now: float) -> None:
        """Requests must not wait forever for a model whose replicas are all down."""
        if self.state is State.ACTIVE and len(self.queue) and self.queue.unavailable_for_too_long(now):
            detail = self.queue.unavailable_detail()
            for remote in self.queue.drain():
                self._by_key.pop(remote.ticket.request_id, None)
                self._reject(remote, wire.REJECT_UNAVAILABLE, detail)

    def _grant(self, remote: _Remote, replica: Replica) -> None:
        key = remote.ticket.request_id
        self._leases[key] = (remote.gateway, replica)
        if remote.delivery is None:
            self._local_grant(self.model, key, replica.url)
            return
        self.link.send(
            self.names.reply(remote.gateway), wire.GRANTS, [key, replica.url], head=self.model, mandatory=True
        )
        self._resolve(remote)

    def _reject(self, remote: _Remote, reason: str, detail: str) -> None:
        if remote.delivery is None:
            self._local_reject(self.model, remote.ticket.request_id, reason, detail)
            return
        self.link.send(
            self.names.reply(remote.gateway), wire.REJECTS, [remote.ticket.request_id, reason, detail],
            head=self.model, mandatory=True,
        )
        self._resolve(remote)

    def _resolve(self, remote: _Remote) -> None:
        delivery = remote.delivery
        if delivery is None:
            return
        delivery.left -= 1
        if delivery.left == 0 and self.link is not None:
            self.link.ack(delivery.tag)

    # --- census -------------------------------------------------------------------------------

    def _take_over(self) -> None:
        self.state = State.RECOVERING
        self._census_id = f"{_CENSUS_PREFIX}-{next(_census_ids)}"
        self._census_expected = None
        self._census_heard = set()
        log.info("this gateway now schedules model %s; asking every gateway which slots it holds", self.model)
        asyncio.get_running_loop().create_task(self._start_census(self._census_id))

    async def _start_census(self, census_id: str) -> None:
        link = self.link
        if link is None:
            return
        try:
            expected = await link.consumer_count(self.queue_name)
        except Exception as exc:  # the connection is failing; reset() follows
            log.debug("census of %s: counting gateways failed: %s", self.model, exc)
            return
        if census_id != self._census_id:
            return
        self._census_expected = expected
        link.send_whole("", wire.CENSUS, [self.model, census_id], exchange=self.names.control)
        self._census_timer = asyncio.get_running_loop().call_later(
            self.census_timeout_s, self._census_overdue, census_id
        )
        self._check_census()

    def _check_census(self) -> None:
        if (
            self.state is State.RECOVERING
            and self._census_expected is not None
            and len(self._census_heard) >= self._census_expected
        ):
            self._census_done()

    def _census_overdue(self, census_id: str) -> None:
        if self.state is State.RECOVERING and census_id == self._census_id:
            log.warning(
                "census of %s: %d of %s gateways answered within %.1f s; granting with what is known",
                self.model, len(self._census_heard), self._census_expected, self.census_timeout_s,
            )
            self._census_done()

    def _census_done(self) -> None:
        if self._census_timer is not None:
            self._census_timer.cancel()
            self._census_timer = None
        self.state = State.ACTIVE
        log.info("scheduling model %s: %d slot(s) held, %d waiting", self.model, len(self._leases), len(self.queue))
        self.hand_out()
