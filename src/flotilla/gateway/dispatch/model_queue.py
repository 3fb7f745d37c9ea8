"""One model's waiting line and slot accounting: the scheduling rules every dispatcher shares.

A waiter is anything with a `ticket`; the dispatcher decides what a grant means for it (resolve a
future in this process, or send a grant message to another gateway). The rules:

- a request that finds a free slot and an empty line never waits, whatever its threshold;
- otherwise it waits, unless the model has had no healthy replica for longer than the grace
  period (ModelUnavailable) or its token already has `threshold` requests waiting (QueueFull);
- requests that lost their replica before any byte was sent (retries) go first;
- then the order of the queue policy (fair_queue.py: strict or weighted priorities, aging), tokens
  of equal priority taking turns, FIFO within a token;
- a replica takes a request while it has room: maxConcurrency, less what the engine reports busy,
  less while its requests decode slower than minTokensPerSecond; requests at or above a priority
  burst's `min_priority` may also use its extra slots;
- which replica: the routing policy (routing.py), given the prompt's prefix blocks.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

from flotilla.gateway.dispatch.base import ModelUnavailable, QueueFull, Ticket
from flotilla.gateway.dispatch.fair_queue import STRICT, FairPriorityQueue, QueuePolicy
from flotilla.gateway.replicas import Replica, ReplicaPool


class HasTicket(Protocol):
    ticket: Ticket


W = TypeVar("W", bound=HasTicket)


class Burst(Protocol):
    min_priority: int
    slots: int


@dataclass(frozen=True)
class LineRules:
    """A model's queue policy and priority burst (from the spec; defaults: strict, none)."""

    policy: QueuePolicy = STRICT
    burst: Burst | None = None


class ModelQueue(Generic[W]):
    def __init__(self, pool: ReplicaPool, unavailable_wait_s: float, rules: LineRules = LineRules()) -> None:
        self.pool = pool
        self.unavailable_wait_s = unavailable_wait_s
        self.burst = rules.burst
        self.waiting: FairPriorityQueue[W] = FairPriorityQueue(rules.policy)
        self.retries: deque[W] = deque()

    def __len__(self) -> int:
        return len(self.waiting) + len(self.retries)

    def take_free_slot(self, ticket: Ticket) -> Replica | None:
        """A slot at once (then taken), if the line is empty and a replica has room; or a burst slot,
        if the request may use one and nobody in line could."""
        replica = None
        if not len(self):
            replica = self.pool.pick(ticket.blocks)
        if replica is None and self._may_burst(ticket) and not self._burst_waiter_in_line():
            replica = self.pool.pick(ticket.blocks, self.burst.slots)
        if replica is not None:
            replica.in_flight += 1
        return replica

    def _may_burst(self, ticket: Ticket) -> bool:
        return self.burst is not None and ticket.priority >= self.burst.min_priority

    def _burst_waiter_in_line(self) -> bool:
        floor = self.burst.min_priority
        return self.waiting.highest_priority() >= floor or any(w.ticket.priority >= floor for w in self.retries)

    def unavailable_for_too_long(self, now: float | None = None) -> bool:
        since = self.pool.down_since()
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
            if pool.has_room():
                waiter = self.retries.popleft() if self.retries else self.waiting.pop()[2]
                extra = 0
            else:
                waiter = self._next_for_burst()
                if waiter is None:
                    return
                extra = self.burst.slots
            if not still_waiting(waiter):
                continue
            replica = pool.pick(waiter.ticket.blocks, extra)
            if replica is None:  # cannot happen: room was checked; keep the waiter first in line
                self.retries.appendleft(waiter)
                return
            replica.in_flight += 1
            yield waiter, replica

    def _next_for_burst(self) -> W | None:
        """The first waiter allowed on a burst slot, if a replica has one free."""
        burst = self.burst
        if burst is None or not self.pool.has_room(burst.slots):
            return None
        if self.retries:
            first = self.retries[0]
            return self.retries.popleft() if first.ticket.priority >= burst.min_priority else None
        taken = self.waiting.pop_at_least(burst.min_priority)
        return taken[2] if taken is not None else None

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
