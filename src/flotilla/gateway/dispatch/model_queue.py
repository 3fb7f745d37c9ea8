"""One model's waiting line and slot accounting: the scheduling rules every dispatcher shares.

A waiter is anything with a `ticket`; the dispatcher decides what a grant means for it (resolve a
future in this process, or send a grant message to another gateway). The rules:

- a request that finds a free slot and an empty line never waits, whatever its threshold;
- otherwise it waits, unless the model has had no healthy replica for longer than the grace
  period (ModelUnavailable) or its token already has `threshold` requests waiting (QueueFull);
- requests that lost their replica before any byte was sent (retries) go first;
- then the highest priority, tokens of equal priority taking turns, FIFO within a token.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

from flotilla.gateway.dispatch.base import ModelUnavailable, QueueFull, Ticket
from flotilla.gateway.dispatch.fair_queue import FairPriorityQueue
from flotilla.gateway.replicas import Replica, ReplicaPool


class HasTicket(Protocol):
    ticket: Ticket


W = TypeVar("W", bound=HasTicket)


class ModelQueue(Generic[W]):
    def __init__(self, pool: ReplicaPool, unavailable_wait_s: float) -> None:
        self.pool = pool
        self.unavailable_wait_s = unavailable_wait_s
        self.waiting: FairPriorityQueue[W] = FairPriorityQueue()
        self.retries: deque[W] = deque()

    def __len__(self) -> int:
        return len(self.waiting) + len(self.retries)

    def take_free_slot(self) -> Replica | None:
        """A slot at once, if the line is empty and a replica has room (the slot is then taken)."""
        if len(self):
            return None
        replica = self.pool.pick()
        if replica is not None:
            replica.in_flight += 1
        return replica

    def unavailable_for_too_long(self, now: float | None = None) -> bool:
        since = self.pool.unhealthy_since
        return since is not None and (now if now is not None else time.monotonic()) - since > self.unavailable_wait_s

    def admit(self, ticket: Ticket, retry: bool) -> None:
        """Raise if the request may not wait in line (call after take_free_slot found nothing)."""
        if self.unavailable_for_too_long():
            raise ModelUnavailable(self.unavailable_detail())
        if not retry and self.waiting.waiting_for_token(ticket.token_name) >= ticket.threshold:
            raise QueueFull(ticket.token_name)

    def push(self, waiter: W, retry: bool) -> None:
        if retry:
            self.retries.append(waiter)
        else:
            t = waiter.ticket
            self.waiting.push(t.priority, t.token_name, waiter)

    def withdraw(self, waiter: W) -> bool:
        """Take out a waiter that gave up; False if it was not in line."""
        t = waiter.ticket
        if self.waiting.remove(t.priority, t.token_name, waiter):
            return True
        try:
            self.retries.remove(waiter)
        except ValueError:
            return False
        return True

    def grants(self, still_waiting: Callable[[W], bool] = lambda _w: True) -> Iterator[tuple[W, Replica]]:
        """Hand out free slots in line order; each yielded pair has its slot taken already.
        Waiters for which `still_waiting` is False (gave up meanwhile) are dropped on the way."""
        pool = self.pool
        while len(self):
            replica = pool.pick()
            if replica is None:
                return
            waiter = self.retries.popleft() if self.retries else self.waiting.pop()[2]
            if not still_waiting(waiter):
                continue
            replica.in_flight += 1
            yield waiter, replica

    def release(self, replica: Replica, failed: bool) -> bool:
        """Give a slot back; True when `failed` newly marked the replica unreachable."""
        replica.in_flight -= 1
        return failed and self.pool.mark(replica, False, "connection failed")

    def drain(self) -> list[W]:
        """Everyone in line, removed from it (to be failed)."""
        out = list(self.retries)
        self.retries.clear()
        while len(self.waiting):
            out.append(self.waiting.pop()[2])
        return out

    def depth_by_priority(self) -> dict[int, int]:
        depths = self.waiting.depth_by_priority()
        for waiter in self.retries:
            p = waiter.ticket.priority
            depths[p] = depths.get(p, 0) + 1
        return depths

    def unavailable_detail(self) -> str:
        errors = sorted({r.last_error for r in self.pool.replicas if r.last_error})
        down = f"none of its {len(self.pool.replicas)} replica(s) is healthy"
        return down + (f" ({'; '.join(errors)})" if errors else "")
