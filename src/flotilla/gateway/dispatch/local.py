"""The in-process dispatcher: one fair priority queue per model, slots handed out as replicas free up."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from flotilla.gateway.dispatch.base import Lease, ModelUnavailable, QueueFull, QueueTimeout, Ticket
from flotilla.gateway.dispatch.fair_queue import FairPriorityQueue
from flotilla.gateway.replicas import ReplicaPool

log = logging.getLogger("flotilla.gateway.dispatch")


class _Waiter:
    __slots__ = ("ticket", "future", "timer")

    def __init__(self, ticket: Ticket, future: asyncio.Future[Lease]) -> None:
        self.ticket = ticket
        self.future = future
        self.timer: asyncio.TimerHandle | None = None


class _ModelQueue:
    def __init__(self, pool: ReplicaPool) -> None:
        self.pool = pool
        self.waiting: FairPriorityQueue[_Waiter] = FairPriorityQueue()
        self.retries: deque[_Waiter] = deque()  # requests that lost their replica go first

    def __len__(self) -> int:
        return len(self.waiting) + len(self.retries)


class LocalDispatcher:
    """Implements `flotilla.gateway.dispatch.base.Dispatcher` within one process."""

    def __init__(
        self,
        pools: dict[str, ReplicaPool],
        *,
        max_queue_wait_s: float | None = None,
        unavailable_wait_s: float = 30.0,
    ) -> None:
        self._queues = {model: _ModelQueue(pool) for model, pool in pools.items()}
        self._max_wait = max_queue_wait_s
        self._unavailable_wait = unavailable_wait_s
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_unavailable(), name="dispatch-sweeper")

    async def close(self) -> None:
        self._closed = True
        if self._sweeper:
            self._sweeper.cancel()
        for queue in self._queues.values():
            self._fail_all(queue, ModelUnavailable("the gateway is shutting down"))

    async def acquire(self, ticket: Ticket, *, retry: bool = False) -> Lease:
        queue = self._queues[ticket.model]
        pool = queue.pool
        if self._closed:
            raise ModelUnavailable("the gateway is shutting down")
        if not len(queue):
            replica = pool.pick()
            if replica is not None:
                replica.in_flight += 1
                return Lease(ticket, replica, time.monotonic() - ticket.created_at)
        if pool.unhealthy_since is not None and time.monotonic() - pool.unhealthy_since > self._unavailable_wait:
            raise ModelUnavailable(self._unavailable_detail(pool))
        if not retry and queue.waiting.waiting_for_token(ticket.token_name) >= ticket.threshold:
            raise QueueFull(ticket.token_name)

        loop = asyncio.get_running_loop()
        waiter = _Waiter(ticket, loop.create_future())
        if retry:
            queue.retries.append(waiter)
        else:
            queue.waiting.push(ticket.priority, ticket.token_name, waiter)
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
                self._withdraw(queue, waiter)
            raise
        finally:
            if waiter.timer is not None:
                waiter.timer.cancel()

    def release(self, lease: Lease, *, replica_failed: bool = False) -> None:
        replica = lease.replica
        replica.in_flight -= 1
        queue = self._queues[lease.ticket.model]
        if replica_failed:
            if queue.pool.mark(replica, False, "connection failed"):
                log.warning("replica %s of %s unreachable; routing around it", replica.label, replica.model)
        self._hand_out(queue)

    def replicas_changed(self, model: str) -> None:
        self._hand_out(self._queues[model])

    def queue_depths(self) -> dict[tuple[str, int], int]:
        depths: dict[tuple[str, int], int] = {}
        for model, queue in self._queues.items():
            for waiter in queue.retries:
                key = (model, waiter.ticket.priority)
                depths[key] = depths.get(key, 0) + 1
            for priority, count in queue.waiting.depth_by_priority().items():
                key = (model, priority)
                depths[key] = depths.get(key, 0) + count
        return depths

    def _hand_out(self, queue: _ModelQueue) -> None:
        pool = queue.pool
        now = time.monotonic()
        while len(queue):
            replica = pool.pick()
            if replica is None:
                return
            waiter = queue.retries.popleft() if queue.retries else queue.waiting.pop()[2]
            if waiter.future.done():
                continue
            replica.in_flight += 1
            waiter.future.set_result(Lease(waiter.ticket, replica, now - waiter.ticket.created_at))

    def _withdraw(self, queue: _ModelQueue, waiter: _Waiter) -> None:
        t = waiter.ticket
        if not queue.waiting.remove(t.priority, t.token_name, waiter):
            try:
                queue.retries.remove(waiter)
            except ValueError:
                pass

    def _expire(self, queue: _ModelQueue, waiter: _Waiter) -> None:
        if waiter.future.done():
            return
        self._withdraw(queue, waiter)
        waiter.future.set_exception(QueueTimeout(time.monotonic() - waiter.ticket.created_at))

    def _fail_all(self, queue: _ModelQueue, error: Exception) -> None:
        while queue.retries:
            waiter = queue.retries.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(error)
        while len(queue.waiting):
            waiter = queue.waiting.pop()[2]
            if not waiter.future.done():
                waiter.future.set_exception(error)

    def _unavailable_detail(self, pool: ReplicaPool) -> str:
        errors = sorted({r.last_error for r in pool.replicas if r.last_error})
        down = f"none of its {len(pool.replicas)} replica(s) is healthy"
        return down + (f" ({'; '.join(errors)})" if errors else "")

    async def _sweep_unavailable(self) -> None:
        """Requests must not wait forever for a model whose replicas are all down."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for queue in self._queues.values():
                since = queue.pool.unhealthy_since
                if len(queue) and since is not None and now - since > self._unavailable_wait:
                    self._fail_all(queue, ModelUnavailable(self._unavailable_detail(queue.pool)))
