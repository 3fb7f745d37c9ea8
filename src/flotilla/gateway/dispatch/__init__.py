"""Dispatchers: who gets the next free replica slot."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flotilla.gateway.dispatch.base import (
    Dispatcher,
    Lease,
    ModelUnavailable,
    QueueFull,
    QueueTimeout,
    Ticket,
)
from flotilla.gateway.dispatch.local import LocalDispatcher

if TYPE_CHECKING:
    from flotilla.gateway.replicas import ReplicaPool
    from flotilla.spec.gateway import GatewaySpec

__all__ = [
    "Dispatcher", "Lease", "LocalDispatcher", "ModelUnavailable", "QueueFull", "QueueTimeout", "Ticket",
    "make_dispatcher",
]


def make_dispatcher(gateway: "GatewaySpec", pools: dict[str, "ReplicaPool"]) -> Dispatcher:
    """The dispatcher the spec asks for (`gateway.dispatcher.kind`)."""
    if gateway.dispatcher.kind == "rabbitmq":
        from flotilla.gateway.dispatch.rabbitmq import RabbitMqDispatcher  # aio-pika loads only when used

        return RabbitMqDispatcher(
            pools, url=gateway.dispatcher.url, prefix=gateway.dispatcher.prefix,
            queue_type=gateway.dispatcher.queue_type,
            max_queue_wait_s=gateway.max_queue_wait_s, unavailable_wait_s=gateway.unavailable_wait_s,
        )
    return LocalDispatcher(pools, max_queue_wait_s=gateway.max_queue_wait_s, unavailable_wait_s=gateway.unavailable_wait_s)
