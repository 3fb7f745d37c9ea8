"""Admission into the running batch, after vLLM V1's scheduler (vllm/v1/core/sched/scheduler.py).

- At most `max_num_seqs` sequences run; the others wait. The waiting queue is first-come-first-served
  (`fcfs`), or with `priority` ordered by (priority, arrival): lower values first, as vLLM's
  `--scheduling-policy priority` orders it.
- A sequence starts when it is first in line, the batch has room, and the KV cache has blocks for its
  prompt (less what the prefix cache already holds). Waiting sequences never preempt anything: the
  first one that does not fit holds the line (vLLM stops scheduling waiting requests there).
- A running sequence that needs a new KV block when none is free preempts: under `priority` the
  running sequence with the largest (priority, arrival), under `fcfs` the one that started last, which
  may be itself. The victim frees its blocks and goes back to the waiting queue (at its place by
  priority; at the front under fcfs); when it runs again it recomputes its prompt and the tokens it
  had generated (vLLM's recompute preemption), less what the prefix cache still holds.

A finished sequence hands its slot to the next waiting one at once, so a newcomer cannot overtake
the line. `try_admit`/`release` is the allocation-free path of the zero-latency server (no KV use).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from typing import Literal

from flotilla.sim.kv_cache import BLOCK_SIZE, BlockHashes, BlockPool, blocks_for

SchedulingPolicy = Literal["fcfs", "priority"]

WAITING, RUNNING, DONE = 0, 1, 2
_NO_HASHES = BlockHashes([], None)


class Sequence:
    """One request inside the engine."""

    __slots__ = (
        "priority", "arrival", "order", "tokens", "generated", "hashes", "held", "blocks", "state",
        "future", "computed", "preempted", "num_preemptions",
    )

    def __init__(self, priority: int, arrival: float, order: int, tokens: int, hashes: BlockHashes) -> None:
        self.priority = priority
        self.arrival = arrival
        self.order = order  # ties of (priority, arrival) keep submission order
        self.tokens = tokens  # prompt + generated so far: what its KV cache holds
        self.generated = 0
        self.hashes = hashes
        self.held: list[int] = []  # hashes of the cached blocks it holds
        self.blocks = 0  # KV blocks it holds
        self.state = WAITING
        self.future: asyncio.Future[None] | None = None
        self.computed = 0  # tokens found in the prefix cache when it last started
        self.preempted = False  # lost its blocks; must wait in line again and recompute
        self.num_preemptions = 0

    def __lt__(self, other: Sequence) -> bool:  # heap order under the priority policy
        return (self.priority, self.arrival, self.order) < (other.priority, other.arrival, other.order)


class BatchScheduler:
    def __init__(
        self, max_num_seqs: int, policy: SchedulingPolicy = "fcfs", pool: BlockPool | None = None
    ) -> None:
        if max_num_seqs < 1:
            raise ValueError(f"max_num_seqs must be >= 1, got {max_num_seqs}")
        self.max_num_seqs = max_num_seqs
        self.policy = policy
        self.pool = pool if pool is not None else BlockPool(max_num_seqs * 1024, prefix_caching=False)
        self.running = 0  # sequences in the batch (with those of the zero-latency path)
        self._running: dict[Sequence, None] = {}  # the timed ones, in the order they started
        self._queue: deque[Sequence] | list[Sequence] = [] if policy == "priority" else deque()
        self._waiting = 0  # live entries of _queue (left ones are dropped lazily)
        self._orders = itertools.count()
        self.peak = 0  # most requests ever inside at once (running + waiting): shows a caller's over-admission
        self.preemptions = 0
        self.prefix_queries = 0  # tokens looked up in the prefix cache by new sequences (vLLM's counter)
        self.prefix_hits = 0  # of those, tokens found

    @property
    def waiting(self) -> int:
        return self._waiting

    # --- the zero-latency path -----------------------------------------------------------------

    def try_admit(self) -> bool:
        """Take a slot now if one is free and nobody is queued before us (no await: the hot path)."""
        if self.running < self.max_num_seqs and not self._waiting:
            self.running += 1
            if self.running > self.peak:
                self.peak = self.running
            return True
        return False

    def release(self) -> None:
        """Give back a slot taken with try_admit."""
        self.running -= 1
        if self._waiting:
            self._admit_waiting()

    # --- sequences ------------------------------------------------------------------------------

    def sequence(self, priority: int, arrival: float, prompt_tokens: int, hashes: BlockHashes | None = None) -> Sequence:
        return Sequence(priority, arrival, next(self._orders), prompt_tokens, hashes or _NO_HASHES)

    async def start(self, seq: Sequence) -> int:
        """Wait for `seq` to run; returns its tokens found in the prefix cache. Pair with `leave`."""
        self._enqueue(seq, front=False)
        self._admit_waiting()
        if seq.state != RUNNING:
            await self._wait(seq)
        self._record_lookup(seq)
        return seq.computed

    async def resume(self, seq: Sequence) -> int:
        """After a preemption: wait to run again; returns the tokens found in the prefix cache (the
        rest of prompt + generated must be recomputed)."""
        while seq.state != RUNNING:  # (preempted again before it ran: wait again)
            await self._wait(seq)
        seq.preempted = False
        return seq.computed

    def grow(self, seq: Sequence) -> bool:
        """Room for the next token of running `seq`: a new block when its last one is full,
        preempting when none is free. False when `seq` itself was preempted (call `resume`)."""
        if seq.preempted:
            return False
        if seq.tokens % BLOCK_SIZE == 0:
            pool = self.pool
            while not pool.grow():
                victim = self._victim()
                self._preempt(victim)
                if victim is seq:
                    return False
            seq.blocks += 1
        seq.tokens += 1
        if self.pool.prefix_caching:
            seq.hashes.add_generated(seq.generated)
            self.pool.register(seq.held, seq.hashes.hashes, seq.tokens)
        seq.generated += 1
        return True

    def leave(self, seq: Sequence) -> None:
        """`seq` is finished or abandoned (client gone), wherever it is."""
        state = seq.state
        seq.state = DONE
        if state == RUNNING:
            self._stop_running(seq)
            self._admit_waiting()
        elif state == WAITING:
            self._waiting -= 1  # its entry is dropped when it reaches the head
            if seq.future is not None and not seq.future.done():
                seq.future.cancel()
            if self._waiting:
                self._admit_waiting()  # it may have been the head holding the line

    # --- internals ------------------------------------------------------------------------------

    async def _wait(self, seq: Sequence) -> None:
        seq.future = asyncio.get_running_loop().create_future()
        await seq.future  # a cancelled waiter is handled by leave()

    def _enqueue(self, seq: Sequence, front: bool) -> None:
        seq.state = WAITING
        seq.future = None
        queue = self._queue
        if isinstance(queue, list):
            heapq.heappush(queue, seq)
        elif front:
            queue.appendleft(seq)
        else:
            queue.append(seq)
        self._waiting += 1
        inside = self.running + self._waiting
        if inside > self.peak:
            self.peak = inside

    def _head(self) -> Sequence | None:
        queue = self._queue
        while queue:
            seq = queue[0]
            if seq.state == WAITING:
                return seq
            self._pop()  # left the line while waiting
        return None

    def _pop(self) -> Sequence:
        queue = self._queue
        return heapq.heappop(queue) if isinstance(queue, list) else queue.popleft()

    def _admit_waiting(self) -> None:
        while self.running < self.max_num_seqs:
            seq = self._head()
            if seq is None:
                return
            computed = self.pool.allocate(seq.held, seq.hashes.hashes, seq.tokens)
            if computed is None:
                return  # waiting sequences never preempt: the line waits for blocks
            seq.blocks = blocks_for(seq.tokens)
            seq.computed = computed
            self._pop()
            self._waiting -= 1
            seq.state = RUNNING
            self.running += 1
            self._running[seq] = None
            if seq.future is not None and not seq.future.done():
                seq.future.set_result(None)

    def _record_lookup(self, seq: Sequence) -> None:
        # vLLM's prefix_cache_queries/hits count new requests only, in tokens.
        if self.pool.prefix_caching:
            self.prefix_queries += seq.tokens
            self.prefix_hits += seq.computed

    def _victim(self) -> Sequence:
        if self.policy == "priority":
            return max(self._running, key=lambda s: (s.priority, s.arrival, s.order))
        return next(reversed(self._running))  # the last to start

    def _stop_running(self, seq: Sequence) -> None:
        del self._running[seq]
        self.running -= 1
        self.pool.free_blocks(seq.held, seq.blocks)
        seq.blocks = 0

    def _preempt(self, victim: Sequence) -> None:
        self._stop_running(victim)
        victim.preempted = True
        victim.num_preemptions += 1
        self.preemptions += 1
        self._enqueue(victim, front=True)
        # vLLM schedules no waiting request in the step that preempted; the next step may.
        asyncio.get_running_loop().call_soon(self._admit_waiting)
