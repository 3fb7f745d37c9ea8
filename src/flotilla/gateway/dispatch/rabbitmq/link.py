"""One gateway's AMQP connection: declarations, an ordered outbox with publisher confirms, acks.

Everything a gateway sends goes through one outbox, written by one task, on one channel, in the
order it was queued: a release is never overtaken by the census answer that follows it, and an
acknowledgement of a ticket never reaches the broker before the grant it waited for. Consecutive
messages of one kind to one queue travel as one AMQP message, so a busy event-loop turn costs one
publish per destination, and an idle one sends at once (no timer, no polling).

A second channel watches other gateways' tombstones: declaring or consuming a queue that no
longer exists closes the channel it was tried on, and that must not take the main channel down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aio_pika
import aiormq
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec
from yarl import URL

from flotilla.gateway.dispatch.rabbitmq import wire

log = logging.getLogger("flotilla.gateway.dispatch.rabbitmq")

Consumer = Callable[[DeliveredMessage], Awaitable[None]]


def redacted(url: str) -> str:
    """The broker URL without credentials, for logs and readiness details."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path or '/'}"


def with_heartbeat(url: str, heartbeat_s: int) -> str:
    """Heartbeats let both sides notice a dead peer on a silent network; keep the URL's own value."""
    parsed = URL(url)
    return url if "heartbeat" in parsed.query else str(parsed.update_query(heartbeat=heartbeat_s))


@dataclass(slots=True)
class _Entry:
    exchange: str
    routing_key: str
    kind: str
    head: object  # a fixed first element of the body (a model name, a census id), or _NO_HEAD
    items: list = field(default_factory=list)
    mandatory: bool = False
    reply_to: str | None = None
    coalesce: bool = True


_NO_HEAD = object()

# Called with an entry the broker could not route (mandatory) or refused: (kind, routing_key, head, items).
Returned = Callable[[str, str, object, list], None]


class BrokerLink:
    def __init__(self, url: str, *, on_lost: Callable[[str], None], on_returned: Returned) -> None:
        self._url = url
        self._on_lost = on_lost
        self._on_returned = on_returned
        self.connection: aio_pika.abc.AbstractConnection | None = None
        self.channel: aio_pika.abc.AbstractChannel | None = None
        self._raw: aiormq.abc.AbstractChannel | None = None
        self.watch_channel: aio_pika.abc.AbstractChannel | None = None
        self._entries: list[_Entry] = []
        self._acks: list[int] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._confirming = 0  # batches whose confirms are awaited
        self._writer: asyncio.Task[None] | None = None
        self._lost = False

    # --- lifecycle ----------------------------------------------------------------------------

    async def open(self, timeout_s: float) -> None:
        self.connection = await aio_pika.connect(self._url, timeout=timeout_s)
        self.connection.close_callbacks.add(self._connection_closed)
        self.channel = await self.connection.channel(publisher_confirms=True, on_return_raises=False)
        self.channel.close_callbacks.add(self._main_channel_closed)
        self._raw = await self.channel.get_underlay_channel()
        self._writer = asyncio.create_task(self._write_loop(), name="dispatch-outbox")

    async def close(self) -> None:
        self._lost = True
        if self._writer is not None:
            self._writer.cancel()
        if self.connection is not None and not self.connection.is_closed:
            try:
                await asyncio.wait_for(self.connection.close(), 5)
            except (Exception, asyncio.TimeoutError):
                pass

    def _connection_closed(self, _conn: object, exc: BaseException | None) -> None:
        self._lose(f"connection closed: {exc or 'by request'}")

    def _main_channel_closed(self, _ch: object, exc: BaseException | None) -> None:
        self._lose(f"channel closed: {exc or 'by request'}")
        if self.connection is not None and not self.connection.is_closed:
            asyncio.get_running_loop().create_task(self.connection.close())

    def _lose(self, why: str) -> None:
        if self._lost:
            return
        self._lost = True
        if self._writer is not None:
            self._writer.cancel()
        self._on_lost(why)

    @property
    def alive(self) -> bool:
        return not self._lost

    # --- declarations -------------------------------------------------------------------------

    async def declare_control(self, name: str) -> aio_pika.abc.AbstractExchange:
        return await self.channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT, durable=True)

    async def declare_reply_queue(self, name: str, control: aio_pika.abc.AbstractExchange) -> None:
        # Exclusive: it dies with this connection, so a grant for a gateway that is gone is returned.
        queue = await self.channel.declare_queue(name, exclusive=True, auto_delete=True)
        await queue.bind(control)

    async def declare_scheduler_queue(self, name: str, queue_type: str) -> None:
        # Single active consumer: of all gateways consuming it, one at a time is the model's scheduler;
        # when its connection ends, RabbitMQ hands its unacknowledged tickets to the next one.
        await self.channel.declare_queue(
            name, durable=True, arguments={"x-single-active-consumer": True, "x-queue-type": queue_type}
        )

    async def declare_alive_queue(self, name: str, expires_ms: int) -> None:
        await self.channel.declare_queue(
            name, arguments={"x-single-active-consumer": True, "x-expires": expires_ms}
        )

    async def consumer_count(self, queue: str) -> int:
        result = await self._raw.queue_declare(queue, passive=True)
        return result.consumer_count

    async def consume(self, queue: str, callback: Consumer, *, no_ack: bool) -> None:
        await self._raw.basic_consume(queue, callback, no_ack=no_ack)

    async def open_watch_channel(self) -> aio_pika.abc.AbstractChannel:
        self.watch_channel = await self.connection.channel(publisher_confirms=False)
        return self.watch_channel

    # --- outbox -------------------------------------------------------------------------------

    def send(
        self, routing_key: str, kind: str, item: object, *, head: object = _NO_HEAD, exchange: str = "",
        mandatory: bool = False, reply_to: str | None = None,
    ) -> None:
        """Queue one item; it joins the previous message if that one has the same destination and kind."""
        if self._lost:
            return  # the dispatcher rebuilds what matters after reconnecting
        entries = self._entries
        if entries:
            last = entries[-1]
            if (
                last.coalesce and last.routing_key == routing_key and last.kind == kind and last.head == head
                and last.exchange == exchange and last.reply_to == reply_to
            ):
                last.items.append(item)
                return
        entries.append(_Entry(exchange, routing_key, kind, head, [item], mandatory, reply_to))
        self._wakeup()

    def send_whole(
        self, routing_key: str, kind: str, items: list, *, head: object = _NO_HEAD, exchange: str = "",
        reply_to: str | None = None,
    ) -> None:
        """Queue a message that must stay one unit (a census answer: the whole list at one instant)."""
        if self._lost:
            return
        self._entries.append(_Entry(exchange, routing_key, kind, head, items, False, reply_to, coalesce=False))
        self._wakeup()

    def ack(self, delivery_tag: int) -> None:
        """Acknowledge a delivery of the main channel once everything queued before it is published."""
        if self._lost:
            return
        self._acks.append(delivery_tag)
        self._wakeup()

    def _wakeup(self) -> None:
        self._idle.clear()
        self._wake.set()

    def _wakeup_idle_check(self) -> None:
        if not (self._entries or self._acks):
            self._idle.set()

    async def publish_now(self, exchange: str, routing_key: str, kind: str, items: list) -> None:
        """Publish outside the outbox and wait for the broker's confirm (rare control messages)."""
        await self._raw.basic_publish(
            wire.encode(items), exchange=exchange, routing_key=routing_key,
            properties=spec.Basic.Properties(message_type=kind, delivery_mode=1),
        )

    async def drained(self, timeout_s: float) -> None:
        """Wait (bounded) until everything queued so far is published and confirmed."""
        if self._lost:
            return
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass

    async def _write_loop(self) -> None:
        """Publish each turn's batch at once; its confirms are awaited aside, so the next batch
        never waits for the previous one's round trip. Publishes enter aiormq's channel lock in
        creation order, so the broker sees them in outbox order."""
        raw = self._raw
        while True:
            if not (self._entries or self._acks or self._confirming):
                self._idle.set()
            await self._wake.wait()
            self._wake.clear()
            entries, self._entries = self._entries, []
            acks, self._acks = self._acks, []
            if not (entries or acks):
                continue
            publishes = [asyncio.ensure_future(self._publish(raw, e)) for e in entries]
            self._confirming += 1
            asyncio.ensure_future(self._confirm(raw, entries, publishes, acks))

    async def _confirm(self, raw, entries: list[_Entry], publishes: list[asyncio.Future], acks: list[int]) -> None:
        try:
            results = await asyncio.gather(*publishes)
            for entry, result in zip(entries, results):
                if not isinstance(result, spec.Basic.Ack):
                    self._returned(entry, result)
            # Acknowledgements only after the publishes they wait for (grants before their tickets' acks).
            for tag in acks:
                await raw.basic_ack(tag, wait=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the channel or connection failed: the close callback follows
            log.warning("dispatch outbox: publishing failed (%s: %s)", type(exc).__name__, exc)
            self._lose(f"publish failed: {exc}")
        finally:
            self._confirming -= 1
            if not self._confirming:
                self._wakeup_idle_check()

    @staticmethod
    async def _publish(raw: aiormq.abc.AbstractChannel, entry: _Entry) -> object:
        body = entry.items if entry.head is _NO_HEAD else [entry.head, entry.items]
        return await raw.basic_publish(
            wire.encode(body), exchange=entry.exchange, routing_key=entry.routing_key, mandatory=entry.mandatory,
            properties=spec.Basic.Properties(message_type=entry.kind, reply_to=entry.reply_to, delivery_mode=1),
        )

    def _returned(self, entry: _Entry, result: object) -> None:
        if isinstance(result, DeliveredMessage):
            why = "no such queue"
        else:
            why = f"refused by the broker ({type(result).__name__})"
        log.debug("dispatch message %s to %s not delivered: %s", entry.kind, entry.routing_key, why)
        head = None if entry.head is _NO_HEAD else entry.head
        try:
            self._on_returned(entry.kind, entry.routing_key, head, entry.items)
        except Exception:
            log.exception("handling a returned %s message failed", entry.kind)
