"""The in-process dispatcher: one fair priority queue per model, slots handed out as replicas free up.

Right for one gateway process. Several gateway processes each running it would each fill every
replica to maxConcurrency and order only their own waiters: use the RabbitMQ dispatcher then.
"""

from __future__ import annotations

import asyncio
import logging
import time

from flotilla.gateway.dispatch.base import Lease, ModelUnavailable, QueueTimeout, Ticket
from flotilla.gateway.dispatch.model_queue import LineRules, ModelQueue
from flotilla.gateway.replicas import ReplicaPool
from flotilla.gateway.tasks import cancel_and_wait

log = logging.getLogger("flotilla.gateway.dispatch")


class _Waiter:
    __slots__ = ("ticket", "future", "timer")

    def __init__(self, ticket: Ticket, future: asyncio.Future[Lease]) -> None:
        self.ticket = ticket
        self.future = future
        self.timer: asyncio.TimerHandle | None = None


def _still_waiting(waiter: _Waiter) -> bool:
    return not waiter.future.done()


class LocalDispatcher:
    """Implements `flotilla.gateway.dispatch.base.Dispatcher` within one process."""

    def __init__(
        self,
        pools: dict[str, ReplicaPool],
        *,
        max_queue_wait_s: float | None = None,
        unavailable_wait_s: float = 30.0,
        rules: dict[str, LineRules] | None = None,
    ) -> None:
        rules = rules or {}
        self._queues = {
            model: ModelQueue[_Waiter](pool, unavailable_wait_s, rules.get(model, LineRules()))
            for model, pool in pools.items()
        }
        self._max_wait = max_queue_wait_s
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_unavailable(), name="dispatch-sweeper")

    async def stop_queueing(self) -> None:
        self._closed = True
        for queue in self._queues.values():
            self._fail(queue.drain(), ModelUnavailable("the gateway is shutting down"))

    async def close(self) -> None:
        await self.stop_queueing()
        await cancel_and_wait(self._sweeper)

    def status(self) -> tuple[bool, dict]:
        return True, {"kind": "local", "scheduling": sorted(self._queues)}

    def try_acquire(self, ticket: Ticket) -> Lease | None:
        if self._closed:
            return None
        replica = self._queues[ticket.model].take_free_slot(ticket)
        return None if replica is None else Lease(ticket, replica, time.monotonic() - ticket.created_at)

    async def acquire(self, ticket: Ticket, *, retry: bool = False) -> Lease:
        queue = self._queues[ticket.model]
        if self._closed:
            raise ModelUnavailable("the gateway is shutting down")
        replica = queue.take_free_slot(ticket)
        if replica is not None:
            return Lease(ticket, replica, time.monotonic() - ticket.created_at)
        queue.admit(ticket, retry)

        loop = asyncio.get_running_loop()
        waiter = _Waiter(ticket, loop.create_future())
        queue.push(waiter, retry)
        if self._max_wait is not None:
            remaining = self._max_wait - (time.monotonic() - ticket.created_at)
            waiter.timer = loop.call_later(max(remaining, 0.0), self._expire, queue, waiter)
        try:
            return await waiter.future
        except asyncio.CancelledError:
            # The client went away. If a slot was granted in the meantime, give it back.
            if waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
                self.release(waiter.future.result())
            else:
                queue.withdraw(waiter)
            raise
        finally:
            if waiter.timer is not None:
                waiter.timer.cancel()

    def release(self, lease: Lease, *, replica_failed: bool = False) -> None:
        queue = self._queues[lease.ticket.model]
        replica = lease.replica
        if queue.release(replica, replica_failed):
            log.warning("replica %s of %s unreachable; routing around it", replica.label, replica.model)
        self._hand_out(queue)

    def replicas_changed(self, model: str) -> None:
        self._hand_out(self._queues[model])

    def queue_depths(self) -> dict[tuple[str, int], int]:
        return {
            (model, priority): count
            for model, queue in self._queues.items()
            for priority, count in queue.depth_by_priority().items()
        }

    def _hand_out(self, queue: ModelQueue[_Waiter]) -> None:
        now = time.monotonic()
        for waiter, replica in queue.grants(_still_waiting):
            waiter.future.set_result(Lease(waiter.ticket, replica, now - waiter.ticket.created_at))

    def _expire(self, queue: ModelQueue[_Waiter], waiter: _Waiter) -> None:
        if waiter.future.done():
            return
        queue.withdraw(waiter)
        waiter.future.set_exception(QueueTimeout(time.monotonic() - waiter.ticket.created_at))

    @staticmethod
    def _fail(waiters: list[_Waiter], error: Exception) -> None:
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_exception(error)

    async def _sweep_unavailable(self) -> None:
        """Requests must not wait forever for a model whose replicas are all down."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for queue in self._queues.values():
                if len(queue) and queue.unavailable_for_too_long(now):
                    self._fail(queue.drain(), ModelUnavailable(queue.unavailable_detail()))
