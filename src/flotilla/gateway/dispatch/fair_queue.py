"""A priority queue that is fair across tokens of equal priority, with a choice of policy.

Within one priority, tokens take turns (round robin), so one busy token cannot starve its peers;
within one token, first in first out. Between priorities, the policy decides:

- `strict`: the highest priority first, always. Under sustained high-priority load, lower
  priorities wait for ever.
- `weighted`: priorities are shares. Each priority level has a virtual time that advances by
  1/priority each time it is served, and the level with the smallest virtual time goes next (start-
  time fair queueing), so under contention priority 10 gets ten grants for each one of priority 1,
  interleaved. A level that was idle rejoins at the current virtual time (no credit for absence).
  Priority 0 is background: served only when no other level waits.
- `aging_s` (either policy): a request that has waited longer than this goes before every request
  that has not, oldest first: nobody waits much beyond the bound, whatever the load above it.

Every operation is O(log levels) but for the removal of a waiter that gave up (O(items of that
token)); heaps drop stale entries lazily and are rebuilt when stale ones pile up.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class QueuePolicy:
    kind: Literal["strict", "weighted"] = "strict"
    aging_s: float | None = None


STRICT = QueuePolicy()


class _Entry(Generic[T]):
    __slots__ = ("priority", "token", "item", "since", "alive")

    def __init__(self, priority: int, token: str, item: T, since: float) -> None:
        self.priority = priority
        self.token = token
        self.item = item
        self.since = since
        self.alive = True


class _Level(Generic[T]):
    __slots__ = ("priority", "by_token", "turns", "size", "vtime", "version")

    def __init__(self, priority: int, vtime: float) -> None:
        self.priority = priority
        self.by_token: dict[str, deque[_Entry[T]]] = {}
        self.turns: OrderedDict[str, None] = OrderedDict()  # tokens in round-robin order
        self.size = 0
        self.vtime = vtime
        self.version = 0  # renewed whenever the level's place in the weighted heap changes


class FairPriorityQueue(Generic[T]):
    def __init__(self, policy: QueuePolicy = STRICT, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._levels: dict[int, _Level[T]] = {}
        self._by_priority: list[int] = []  # max-heap via negation, each active priority once
        self._in_by_priority: set[int] = set()
        self._by_vtime: list[tuple[float, int, int, int]] = []  # (vtime, -priority, priority, version)
        self._vclock = 0.0  # virtual time of the last level served (weighted)
        self._versions = itertools.count(1)  # unique across level objects, so no stale entry looks current
        self._arrivals: deque[_Entry[T]] = deque()  # oldest first (aging); entries die when taken
        self._size = 0
        self._per_token: dict[str, int] = {}
        self._per_priority: dict[int, int] = {}

    def __len__(self) -> int:
        return self._size

    def waiting_for_token(self, token: str) -> int:
        return self._per_token.get(token, 0)

    def waiting_at_priority(self, priority: int) -> int:
        return self._per_priority.get(priority, 0)

    def depth_by_priority(self) -> dict[int, int]:
        return dict(self._per_priority)

    def highest_priority(self) -> int:
        """The highest priority waiting (-1 when empty)."""
        return self._highest_level().priority if self._size else -1

    def oldest_wait(self, now: float | None = None) -> float:
        """How long the longest-waiting item has waited (0 when empty)."""
        self._drop_dead_arrivals()
        if not self._arrivals:
            return 0.0
        return (now if now is not None else self._clock()) - self._arrivals[0].since

    # --- in -----------------------------------------------------------------------------------

    def push(self, priority: int, token: str, item: T) -> None:
        level = self._levels.get(priority)
        if level is None:
            level = self._levels[priority] = _Level(priority, self._vclock)
            if priority not in self._in_by_priority:
                self._in_by_priority.add(priority)
                heapq.heappush(self._by_priority, -priority)
            self._schedule_weighted(level)
        entries = level.by_token.get(token)
        if entries is None:
            entries = level.by_token[token] = deque()
            level.turns[token] = None
        entry = _Entry(priority, token, item, self._clock())
        entries.append(entry)
        if self.policy.aging_s is not None:
            self._arrivals.append(entry)
        level.size += 1
        self._size += 1
        self._per_token[token] = self._per_token.get(token, 0) + 1
        self._per_priority[priority] = self._per_priority.get(priority, 0) + 1

    # --- out ----------------------------------------------------------------------------------

    def pop(self) -> tuple[int, str, T]:
        """The next item by the policy: (priority, token, item)."""
        if not self._size:
            raise IndexError("pop from an empty FairPriorityQueue")
        aged = self._aged_entry()
        if aged is not None:
            return self._take(aged)
        level = self._weighted_level() if self.policy.kind == "weighted" else self._highest_level()
        return self._take_turn(level)

    def pop_at_least(self, min_priority: int) -> tuple[int, str, T] | None:
        """The highest-priority item if its priority is at least `min_priority` (for slots kept
        for high priorities), else None."""
        if not self._size:
            return None
        level = self._highest_level()
        if level.priority < min_priority:
            return None
        return self._take_turn(level)

    def remove(self, priority: int, token: str, item: T) -> bool:
        """Take out an item that gave up waiting (timeout, client gone). O(items of that token)."""
        level = self._levels.get(priority)
        entries = level.by_token.get(token) if level else None
        if not entries:
            return False
        for entry in entries:
            if entry.item is item or entry.item == item:
                entries.remove(entry)
                entry.alive = False
                if not entries:
                    del level.by_token[token]
                    del level.turns[token]
                self._account_removal(level, token)
                return True
        return False

    # --- internals ----------------------------------------------------------------------------

    def _take_turn(self, level: _Level[T]) -> tuple[int, str, T]:
        """The oldest item of the token whose turn it is at `level`; that token goes to the back."""
        token, _ = level.turns.popitem(last=False)
        entries = level.by_token[token]
        entry = entries.popleft()
        if entries:
            level.turns[token] = None
        else:
            del level.by_token[token]
        return self._finish_take(level, entry)

    def _take(self, entry: _Entry[T]) -> tuple[int, str, T]:
        """Take a given entry; it is the oldest of its token (FIFO within a token), so it is first."""
        level = self._levels[entry.priority]
        entries = level.by_token[entry.token]
        assert entries[0] is entry
        entries.popleft()
        if not entries:
            del level.by_token[entry.token]
            del level.turns[entry.token]
        return self._finish_take(level, entry)

    def _finish_take(self, level: _Level[T], entry: _Entry[T]) -> tuple[int, str, T]:
        entry.alive = False
        if self.policy.kind == "weighted" and level.priority > 0:
            self._vclock = max(self._vclock, level.vtime)
            level.vtime += 1.0 / level.priority
        self._account_removal(level, entry.token)
        if level.size:
            self._schedule_weighted(level)
        return entry.priority, entry.token, entry.item

    def _account_removal(self, level: _Level[T], token: str) -> None:
        level.size -= 1
        self._size -= 1
        left = self._per_token[token] - 1
        if left:
            self._per_token[token] = left
        else:
            del self._per_token[token]
        priority = level.priority
        left = self._per_priority[priority] - 1
        if left:
            self._per_priority[priority] = left
        else:
            del self._per_priority[priority]
        if not level.size:
            del self._levels[priority]
            level.version = 0  # its weighted heap entry is stale now

    def _highest_level(self) -> _Level[T]:
        heap = self._by_priority
        while True:
            priority = -heap[0]
            level = self._levels.get(priority)
            if level is not None:
                return level
            heapq.heappop(heap)
            self._in_by_priority.discard(priority)

    def _schedule_weighted(self, level: _Level[T]) -> None:
        if self.policy.kind != "weighted" or level.priority <= 0:
            return
        level.version = next(self._versions)
        heapq.heappush(self._by_vtime, (level.vtime, -level.priority, level.priority, level.version))
        if len(self._by_vtime) > 4 * len(self._levels) + 16:  # stale entries piled up: rebuild
            self._by_vtime = [
                (lv.vtime, -lv.priority, lv.priority, lv.version) for lv in self._levels.values() if lv.priority > 0
            ]
            heapq.heapify(self._by_vtime)

    def _weighted_level(self) -> _Level[T]:
        heap = self._by_vtime
        while heap:
            _vtime, _neg, priority, version = heap[0]
            level = self._levels.get(priority)
            if level is not None and level.version == version:
                heapq.heappop(heap)  # re-pushed by _finish_take with its new virtual time
                return level
            heapq.heappop(heap)
        return self._levels[0]  # only background (priority 0) waits

    def _drop_dead_arrivals(self) -> None:
        arrivals = self._arrivals
        while arrivals and not arrivals[0].alive:
            arrivals.popleft()

    def _aged_entry(self) -> _Entry[T] | None:
        aging = self.policy.aging_s
        if aging is None:
            return None
        self._drop_dead_arrivals()
        if self._arrivals and self._clock() - self._arrivals[0].since > aging:
            return self._arrivals.popleft()
        return None
