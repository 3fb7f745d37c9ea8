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

from flotilla.gateway.dispatch.fair_queue import QueuePolicy
from flotilla.gateway.dispatch.model_queue import LineRules

if TYPE_CHECKING:
    from flotilla.gateway.replicas import ReplicaPool
    from flotilla.spec.root import FlotillaSpec

__all__ = [
    "Dispatcher", "Lease", "LocalDispatcher", "ModelUnavailable", "QueueFull", "QueueTimeout", "Ticket",
    "make_dispatcher",
]


def line_rules(spec: "FlotillaSpec") -> dict[str, LineRules]:
    """Each model's queue policy (its own `scheduling`, else the gateway's) and priority burst."""
    rules = {}
    for model in spec.models:
        scheduling = model.scheduling or spec.gateway.scheduling
        rules[model.name] = LineRules(QueuePolicy(scheduling.policy, scheduling.aging_s), model.priority_burst)
    return rules


def make_dispatcher(spec: "FlotillaSpec", pools: dict[str, "ReplicaPool"]) -> Dispatcher:
    """The dispatcher the spec asks for (`gateway.dispatcher.kind`)."""
    gateway = spec.gateway
    rules = line_rules(spec)
    if gateway.dispatcher.kind == "rabbitmq":
        from flotilla.gateway.dispatch.rabbitmq import RabbitMqDispatcher  # aio-pika loads only when used

        return RabbitMqDispatcher(
            pools, url=gateway.dispatcher.url, prefix=gateway.dispatcher.prefix,
            queue_type=gateway.dispatcher.queue_type,
            max_queue_wait_s=gateway.max_queue_wait_s, unavailable_wait_s=gateway.unavailable_wait_s, rules=rules,
        )
    return LocalDispatcher(
        pools, max_queue_wait_s=gateway.max_queue_wait_s, unavailable_wait_s=gateway.unavailable_wait_s, rules=rules
    )
