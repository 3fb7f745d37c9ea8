"""The simulated KV cache: vLLM's block pool with automatic prefix caching (vllm/v1/core/block_pool.py,
kv_cache_manager.py), reduced to counts and hashes.

- The cache holds `num_blocks` blocks of BLOCK_SIZE (16) tokens. A running sequence holds
  ceil(tokens / 16) of them; when it needs one more and none is free, the scheduler preempts.
- Prefix caching: a full block is named by the chained hash of its content (block i's hash covers
  blocks 0..i). A sequence's full blocks are registered under their hashes; when it ends, they stay
  in the cache as evictable blocks, least recently freed evicted first (vLLM's free-block queue; like
  vLLM, a sequence's last blocks are freed first, so they go first). A new sequence's longest run of
  leading hashes found in the cache is shared instead of computed: those tokens skip prefill. At most
  tokens - 1 are taken from the cache (the last prompt token is always computed, for its logits).
- Without prefix caching nothing is registered: freed blocks are plain free blocks.

The sim counts text, not tokens (4 characters per token, protocol.py), so a block of a text prompt is
64 characters. Block hashes are Python's hash() of (previous hash, block), vLLM's `builtin` hash:
they never leave the process.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence as Seq

from flotilla.sim.responses import VOCAB

BLOCK_SIZE = 16  # tokens per block (vLLM's default block size on GPUs)
CHARS_PER_TOKEN = 4  # the sim's tokenizer (protocol.count_text_tokens)
BLOCK_CHARS = BLOCK_SIZE * CHARS_PER_TOKEN


def blocks_for(tokens: int) -> int:
    return -(-tokens // BLOCK_SIZE)


def text_block_hashes(text: str, previous: int = 0) -> tuple[list[int], str]:
    """Chained hashes of the full 64-character blocks of `text`, and the partial block left over."""
    hashes = []
    full = len(text) - len(text) % BLOCK_CHARS
    for start in range(0, full, BLOCK_CHARS):
        previous = hash((previous, text[start : start + BLOCK_CHARS]))
        hashes.append(previous)
    return hashes, text[full:]


def token_block_hashes(ids: Seq[int]) -> list[int]:
    """Chained hashes of the full 16-token blocks of a prompt given as token ids."""
    hashes = []
    previous = 0
    for start in range(0, len(ids) - len(ids) % BLOCK_SIZE, BLOCK_SIZE):
        previous = hash((previous, tuple(ids[start : start + BLOCK_SIZE])))
        hashes.append(previous)
    return hashes


class BlockHashes:
    """A sequence's block hashes: its prompt's, extended as generated text completes blocks.

    Generated tokens are the sim's vocabulary words (responses.VOCAB), appended to the prompt's text,
    so a next turn that sends the answer back finds the blocks the answer filled (as vLLM caches
    generated blocks too). Token-id prompts get no generated blocks (no text to continue)."""

    __slots__ = ("hashes", "_tail", "_text")

    def __init__(self, hashes: list[int], tail: str | None) -> None:
        self.hashes = hashes
        self._tail = tail or ""
        self._text = tail is not None

    @classmethod
    def of_text(cls, text: str) -> BlockHashes:
        return cls(*text_block_hashes(text))

    @classmethod
    def of_tokens(cls, ids: Seq[int]) -> BlockHashes:
        return cls(token_block_hashes(ids), None)

    def add_generated(self, index: int) -> None:
        """Generated token number `index` (0-based) was appended."""
        if not self._text:
            return
        tail = self._tail + VOCAB[index % len(VOCAB)]
        if len(tail) >= BLOCK_CHARS:
            previous = self.hashes[-1] if self.hashes else 0
            self.hashes.append(hash((previous, tail[:BLOCK_CHARS])))
            tail = tail[BLOCK_CHARS:]
        self._tail = tail


class BlockPool:
    """Counts of free blocks, and the hashes of cached ones (in use by sequences, or evictable)."""

    def __init__(self, num_blocks: int, prefix_caching: bool) -> None:
        self.num_blocks = num_blocks
        self.prefix_caching = prefix_caching
        self._plain_free = num_blocks  # free blocks without a hash
        self._in_use: dict[int, int] = {}  # hash -> sequences holding the block
        self._evictable: OrderedDict[int, None] = OrderedDict()  # hash -> (cached, free); next to evict first

    @property
    def free(self) -> int:
        return self._plain_free + len(self._evictable)

    @property
    def usage(self) -> float:
        """vLLM's kv_cache_usage_perc: blocks held by sequences over all blocks (cached free ones are free)."""
        return 1.0 - self.free / self.num_blocks

    @property
    def cached(self) -> int:
        return len(self._in_use) + len(self._evictable)

    def cached_prefix(self, hashes: Seq[int], tokens: int) -> int:
        """How many leading blocks of `hashes` are in the cache, leaving at least the last token to compute."""
        if not self.prefix_caching:
            return 0
        limit = min(len(hashes), (tokens - 1) // BLOCK_SIZE)
        n = 0
        while n < limit and (hashes[n] in self._in_use or hashes[n] in self._evictable):
            n += 1
        return n

    def allocate(self, held: list[int], hashes: Seq[int], tokens: int) -> int | None:
        """Blocks for a sequence of `tokens` starting to run: shared cached blocks for its leading
        hashes, new ones for the rest. `held` receives the hashes it now holds. Returns the tokens
        found in the cache, or None (and changes nothing) when too few blocks are free."""
        hit = self.cached_prefix(hashes, tokens)
        needed = blocks_for(tokens) - hit
        evictable = self._evictable
        touched_free = sum(1 for h in hashes[:hit] if h in evictable)
        if needed > self.free - touched_free:
            return None
        in_use = self._in_use
        for h in hashes[:hit]:
            if h in evictable:
                del evictable[h]
                in_use[h] = 1
            else:
                in_use[h] += 1
            held.append(h)
        self._take(needed)
        self.register(held, hashes, tokens)
        return hit * BLOCK_SIZE

    def register(self, held: list[int], hashes: Seq[int], tokens: int) -> None:
        """Name the sequence's computed full blocks by their hashes (prefix caching), so later
        sequences find them. A block already cached under that hash (computed twice at once) stays unnamed."""
        if not self.prefix_caching:
            return
        limit = min(len(hashes), tokens // BLOCK_SIZE)
        in_use, evictable = self._in_use, self._evictable
        for i in range(len(held), limit):
            h = hashes[i]
            if h in in_use or h in evictable:
                return  # the chain continues elsewhere; this sequence's later blocks stay unnamed
            in_use[h] = 1
            held.append(h)

    def grow(self) -> bool:
        """One more block for a running sequence; False when none is free."""
        if not self.free:
            return False
        self._take(1)
        return True

    def free_blocks(self, held: list[int], blocks: int) -> None:
        """A sequence ends (or is preempted): its named blocks stay cached as evictable, last block
        first in line for eviction; the rest become plain free blocks."""
        in_use, evictable = self._in_use, self._evictable
        for h in reversed(held):
            left = in_use[h] - 1
            if left:
                in_use[h] = left
            else:
                del in_use[h]
                evictable[h] = None
        self._plain_free += blocks - len(held)
        held.clear()

    def _take(self, n: int) -> None:
        plain = min(n, self._plain_free)
        self._plain_free -= plain
        for _ in range(n - plain):
            self._evictable.popitem(last=False)  # the least recently freed cached block
