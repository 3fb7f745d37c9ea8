"""Knowing, without polling, when another gateway is gone.

Each gateway keeps a queue `<prefix>.alive.<id>` with single-active-consumer, puts one message in
it (its tombstone) and holds that message unacknowledged for as long as its connection lives.
A scheduler that deals with the gateway consumes the same queue as a standby consumer. When the
gateway's connection ends (exit, crash, SIGKILL, a network cut noticed by heartbeats), RabbitMQ
requeues the tombstone and hands it to a standby: that one announces DEAD on the control exchange
so every scheduler frees the gateway's slots and drops its tickets. If the queue is already gone
(it expires a while after its last consumer left), the gateway is long dead: same announcement.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiormq
from aiormq.abc import DeliveredMessage

from flotilla.gateway.dispatch.rabbitmq import wire
from flotilla.gateway.dispatch.rabbitmq.link import BrokerLink

log = logging.getLogger("flotilla.gateway.dispatch.rabbitmq")


class GatewayWatch:
    def __init__(self, link: BrokerLink, names: wire.Names, own_id: str, announce_dead: Callable[[str], None]) -> None:
        self._link = link
        self._names = names
        self._own = own_id
        self._announce_dead = announce_dead
        self._watched: set[str] = set()
        self._lock = asyncio.Lock()  # one set-up at a time on the watch channel
        self._channel: aiormq.abc.AbstractChannel | None = None

    def watch(self, gateway: str) -> None:
        if gateway == self._own or gateway in self._watched or not self._link.alive:
            return
        self._watched.add(gateway)
        asyncio.get_running_loop().create_task(self._start(gateway))

    def forget(self, gateway: str) -> None:
        self._watched.discard(gateway)

    async def _start(self, gateway: str) -> None:
        queue = self._names.alive(gateway)
        async with self._lock:
            if not self._link.alive:
                return
            try:
                channel = await self._watch_channel()
                await channel.queue_declare(queue, passive=True)
                await channel.basic_consume(queue, self._on_tombstone, no_ack=False)
            except aiormq.exceptions.ChannelNotFoundEntity:
                self._channel = None  # the failed declare closed it
                log.info("gateway %s is gone (its alive queue no longer exists)", gateway)
                self._announce_dead(gateway)
            except Exception as exc:
                self._channel = None
                self._watched.discard(gateway)  # watched again on its next message
                log.debug("watching gateway %s failed: %s", gateway, exc)

    async def _watch_channel(self) -> aiormq.abc.AbstractChannel:
        if self._channel is None or self._channel.is_closed:
            channel = await self._link.open_watch_channel()
            self._channel = await channel.get_underlay_channel()
        return self._channel

    async def _on_tombstone(self, message: DeliveredMessage) -> None:
        if message.header.properties.message_type != wire.TOMBSTONE:
            return
        gateway = wire.decode(message.body)[0]
        log.info("gateway %s is gone (its connection ended); freeing its slots", gateway)
        try:
            # Announce first, acknowledge after: if we die in between, the next standby announces.
            await self._link.publish_now(self._names.control, "", wire.DEAD, [gateway])
            await message.channel.basic_ack(message.delivery.delivery_tag)
            await message.channel.queue_delete(self._names.alive(gateway))
        except Exception as exc:
            log.debug("announcing the end of gateway %s failed: %s", gateway, exc)
