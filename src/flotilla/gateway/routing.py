"""Which replica, of those with room, gets a request: one small policy object per `routing` value.

- least-loaded: the lowest share of capacity in use; ties take turns so load spreads.
- round-robin: take turns.
- prefix-aware: the replica that most recently served the longest leading part of this prompt,
  so the engine's prefix cache (vLLM automatic prefix caching, SGLang's radix cache, llama.cpp's
  slots) can skip recomputing it, unless that replica is busier than the least-loaded one by more
  than `max_imbalance` of its capacity: then least-loaded, and the prompt's blocks move there.
  Prompts are seen as chained hashes of fixed-size text blocks (prefix_blocks.py), remembered per
  block in a bounded LRU table (block -> replica last given it), which mirrors how engines evict.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from flotilla.gateway.replicas import Replica


def load_of(replica: Replica) -> float:
    return (replica.in_flight + replica.external_load) / replica.capacity


class Router(Protocol):
    def choose(self, candidates: Sequence[Replica], blocks: Sequence[int] = ()) -> Replica:
        """One of `candidates` (non-empty, all with room) for a request whose prompt has `blocks`."""
        ...


class RoundRobin:
    def __init__(self) -> None:
        self._turn = itertools.count()

    def choose(self, candidates: Sequence[Replica], blocks: Sequence[int] = ()) -> Replica:
        return candidates[next(self._turn) % len(candidates)]


class LeastLoaded:
    def __init__(self) -> None:
        self._turn = itertools.count()

    def choose(self, candidates: Sequence[Replica], blocks: Sequence[int] = ()) -> Replica:
        if len(candidates) == 1:
            return candidates[0]
        best = min(candidates, key=load_of)
        load = load_of(best)
        ties = [r for r in candidates if load_of(r) == load]
        return ties[next(self._turn) % len(ties)] if len(ties) > 1 else best


class PrefixAware:
    def __init__(self, max_imbalance: float = 0.25, max_blocks: int = 100_000) -> None:
        self.max_imbalance = max_imbalance
        self.max_blocks = max_blocks
        self._holders: OrderedDict[int, set[str]] = OrderedDict()  # block -> replicas given it; LRU first
        self._least = LeastLoaded()

    def choose(self, candidates: Sequence[Replica], blocks: Sequence[int] = ()) -> Replica:
        least = self._least.choose(candidates)
        if not blocks:
            return least
        best, best_match = least, self.affinity(blocks, least.url)
        for replica in candidates:
            match = self.affinity(blocks, replica.url)
            if match > best_match or (match == best_match and match and load_of(replica) < load_of(best)):
                best, best_match = replica, match
        chosen = best if best_match and load_of(best) - load_of(least) <= self.max_imbalance else least
        self._remember(blocks, chosen.url)
        return chosen

    def affinity(self, blocks: Sequence[int], url: str) -> int:
        """How many leading blocks of a prompt `url` was given recently."""
        holders = self._holders
        n = 0
        for block in blocks:
            held = holders.get(block)
            if held is None or url not in held:
                break
            n += 1
        return n

    def _remember(self, blocks: Sequence[int], url: str) -> None:
        holders = self._holders
        for block in blocks:
            held = holders.get(block)
            if held is None:
                holders[block] = {url}
            else:
                held.add(url)
                holders.move_to_end(block)
        while len(holders) > self.max_blocks:
            holders.popitem(last=False)


def make_router(policy: str) -> Router:
    if policy == "round-robin":
        return RoundRobin()
    if policy == "prefix-aware":
        return PrefixAware()
    return LeastLoaded()
