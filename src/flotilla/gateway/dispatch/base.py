"""The dispatcher interface: acquire a slot on a replica for a request, release it afterwards.

Two implementations keep one contract (tests/gateway/test_dispatch_contract.py runs against both):
local.py keeps one queue per model in this process; rabbitmq/ shares the queues of many gateway
processes through RabbitMQ. Both apply the same rules (model_queue.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from flotilla.gateway.replicas import Replica


@dataclass(slots=True)
class Ticket:
    """One request's claim to a slot."""

    request_id: str
    model: str
    token_name: str
    priority: int  # effective priority (higher first)
    threshold: int  # how many of this token's requests may wait in this model's queue
    created_at: float = field(default_factory=time.monotonic)
    blocks: tuple[int, ...] = ()  # the prompt's prefix block hashes, for prefix-aware routing


@dataclass(slots=True)
class Lease:
    """A granted slot: the request may now be sent to `replica`."""

    ticket: Ticket
    replica: Replica
    queue_wait_s: float
    dispatch_key: str | None = None  # how a shared dispatcher names this slot (request ids come from clients)


class DispatchError(Exception):
    pass


class QueueFull(DispatchError):
    """The token already has `threshold` requests waiting for this model."""


class QueueTimeout(DispatchError):
    def __init__(self, waited_s: float) -> None:
        super().__init__(f"waited {waited_s:.1f} s")
        self.waited_s = waited_s


class ModelUnavailable(DispatchError):
    """No replica of the model is healthy (and none came up in time)."""


class Dispatcher(Protocol):
    async def start(self) -> None: ...

    async def stop_queueing(self) -> None:
        """First step of a drain: requests still waiting, and any new one, fail with
        ModelUnavailable("...shutting down"); slots held by running requests stay counted until
        they are released."""
        ...

    async def close(self) -> None:
        """Stop (after stop_queueing, or directly); idempotent."""
        ...

    def try_acquire(self, ticket: Ticket) -> Lease | None:
        """A slot at once, without suspending, when one is free and nobody waits ahead of `ticket`
        (the common case under light load); None means: call `acquire`, which decides (and may
        wait or refuse). A dispatcher that cannot decide in-process always returns None."""
        ...

    async def acquire(self, ticket: Ticket, *, retry: bool = False) -> Lease:
        """Wait for a slot. `retry`: the request already lost its replica before any byte was sent,
        so it goes ahead of the queue. Raises QueueFull, QueueTimeout or ModelUnavailable."""
        ...

    def release(self, lease: Lease, *, replica_failed: bool = False) -> None:
        """Give the slot back; `replica_failed` marks the replica unreachable until its health recovers."""
        ...

    def replicas_changed(self, model: str) -> None:
        """Health, capacity or membership of a model's replicas changed: hand out freed slots."""
        ...

    def queue_depths(self) -> dict[tuple[str, int], int]:
        """Requests waiting at this gateway, by (model, priority). Summed over gateways, no double count."""
        ...

    def status(self) -> tuple[bool, dict]:
        """Whether the dispatcher can hand out slots (readiness), and details for /health/ready;
        `scheduling` lists the models whose slots this gateway decides."""
        ...
