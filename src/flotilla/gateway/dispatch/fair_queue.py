"""A priority queue that is fair across tokens of equal priority.

Highest priority first. Within one priority, tokens take turns (round robin), so one busy token
cannot starve its peers; within one token, first in first out. Every operation is O(1) but for
a new or emptied priority level (O(log levels)), and removal of a waiter that gave up is lazy.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from typing import Generic, TypeVar

T = TypeVar("T")


class _Level(Generic[T]):
    __slots__ = ("by_token", "turns")

    def __init__(self) -> None:
        self.by_token: dict[str, deque[T]] = {}
        self.turns: OrderedDict[str, None] = OrderedDict()  # tokens in round-robin order


class FairPriorityQueue(Generic[T]):
    def __init__(self) -> None:
        self._levels: dict[int, _Level[T]] = {}
        self._priorities: list[int] = []  # max-heap via negation
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

    def push(self, priority: int, token: str, item: T) -> None:
        level = self._levels.get(priority)
        if level is None:
            level = self._levels[priority] = _Level()
            heapq.heappush(self._priorities, -priority)
        items = level.by_token.get(token)
        if items is None:
            items = level.by_token[token] = deque()
            level.turns[token] = None
        items.append(item)
        self._size += 1
        self._per_token[token] = self._per_token.get(token, 0) + 1
        self._per_priority[priority] = self._per_priority.get(priority, 0) + 1

    def pop(self) -> tuple[int, str, T]:
        """The next item: highest priority, the token whose turn it is, its oldest item."""
        if not self._size:
            raise IndexError("pop from an empty FairPriorityQueue")
        priority = -self._priorities[0]
        level = self._levels[priority]
        token, _ = level.turns.popitem(last=False)
        items = level.by_token[token]
        item = items.popleft()
        if items:
            level.turns[token] = None  # back of the line for this priority
        else:
            del level.by_token[token]
            if not level.by_token:
                del self._levels[priority]
                heapq.heappop(self._priorities)
        self._account_removal(priority, token)
        return priority, token, item

    def remove(self, priority: int, token: str, item: T) -> bool:
        """Take out an item that gave up waiting (timeout, client gone). O(items of that token)."""
        level = self._levels.get(priority)
        items = level.by_token.get(token) if level else None
        if not items:
            return False
        try:
            items.remove(item)
        except ValueError:
            return False
        if not items:
            del level.by_token[token]
            del level.turns[token]
            if not level.by_token:
                del self._levels[priority]
                self._priorities.remove(-priority)
                heapq.heapify(self._priorities)
        self._account_removal(priority, token)
        return True

    def _account_removal(self, priority: int, token: str) -> None:
        self._size -= 1
        left = self._per_token[token] - 1
        if left:
            self._per_token[token] = left
        else:
            del self._per_token[token]
        left = self._per_priority[priority] - 1
        if left:
            self._per_priority[priority] = left
        else:
            del self._per_priority[priority]
