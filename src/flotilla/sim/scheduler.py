"""Admission into the running batch: at most `max_num_seqs` sequences run; the rest wait FIFO.

Like vLLM's scheduler, a finished sequence hands its slot straight to the oldest waiting one, so
the waiting queue is strictly first-come-first-served.
"""

from __future__ import annotations

import asyncio
from collections import deque


class BatchScheduler:
    def __init__(self, max_num_seqs: int) -> None:
        if max_num_seqs < 1:
            raise ValueError(f"max_num_seqs must be >= 1, got {max_num_seqs}")
        self.max_num_seqs = max_num_seqs
        self.running = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self.peak = 0  # most requests ever inside at once (running + waiting): shows a caller's over-admission

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def try_admit(self) -> bool:
        """Take a slot now if one is free and nobody is queued before us (no await: the hot path)."""
        if self.running < self.max_num_seqs and not self._waiting:
            self.running += 1
            self.peak = max(self.peak, self.running)
            return True
        return False

    async def admit(self) -> None:
        """Take a slot, waiting FIFO behind earlier requests. Pair with `release()`."""
        if self.try_admit():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        self.peak = max(self.peak, self.running + len(self._waiting))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed to us just as we were cancelled: pass it on.
                self.release()
            else:
                try:
                    self._waiting.remove(waiter)
                except ValueError:
                    pass  # release() already dropped it as done
            raise

    def release(self) -> None:
        """Free a slot: the oldest live waiter inherits it, else the batch shrinks."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)  # `running` is unchanged: the slot changes hands
                return
        self.running -= 1
