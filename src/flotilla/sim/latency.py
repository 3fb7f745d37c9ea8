"""The continuous-batching latency model of the simulated engine (pure functions, no I/O).

A lone request sees `ttft_ms` (plus `prefill_ms_per_token` for each prompt token it computes, i.e.
does not find in the prefix cache) before its first token and `itl_ms` between tokens. Like a real
engine step, every extra sequence running in the same batch slows each step down linearly:

    factor(running) = 1 + batch_slowdown * (running - 1)
    ttft = (ttft_ms + prefill_ms_per_token * computed_tokens) * factor,  itl = itl_ms * factor

`running` is read at each step, so a request speeds up again as its batch drains.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from flotilla.spec.engines import SimOptions


@dataclass(frozen=True, slots=True)
class LatencyModel:
    ttft_s: float
    itl_s: float
    batch_slowdown: float
    prefill_s_per_token: float = 0.0

    @classmethod
    def from_options(cls, options: SimOptions) -> LatencyModel:
        return cls(options.ttft_ms / 1000.0, options.itl_ms / 1000.0, options.batch_slowdown,
                   options.prefill_ms_per_token / 1000.0)

    @property
    def instant(self) -> bool:
        """No simulated time at all: the server may answer in one write."""
        return self.ttft_s == 0.0 and self.itl_s == 0.0 and self.prefill_s_per_token == 0.0

    def factor(self, running: int) -> float:
        return 1.0 + self.batch_slowdown * (max(running, 1) - 1)

    def time_to_first_token(self, running: int, computed_tokens: int = 0) -> float:
        """Seconds from a sequence's admission to its first token, with `running` sequences in the batch
        and `computed_tokens` prompt tokens to compute (not found in the prefix cache). Also the time a
        preempted sequence takes to recompute its prompt and generated tokens."""
        return (self.ttft_s + self.prefill_s_per_token * computed_tokens) * self.factor(running)

    def inter_token(self, running: int) -> float:
        """Seconds between two tokens of a sequence, with `running` sequences in the batch."""
        return self.itl_s * self.factor(running)


class OutputLength:
    """How many tokens a request generates.

    `max_tokens` given: exactly that (a simulated model never stops early, so `ignore_eos` changes
    nothing). Otherwise a seeded draw from a normal distribution around `mean` (sd = mean/4), or
    exactly `mean` in deterministic mode. Always clamped to what the context window leaves.
    """

    def __init__(self, mean: int, deterministic: bool, seed: int) -> None:
        self._mean = mean
        self._deterministic = deterministic
        self._rng = random.Random(seed)

    def draw(self, max_tokens: int | None, room: int) -> int:
        if max_tokens is not None:
            return min(max_tokens, room)
        if self._deterministic:
            n = self._mean
        else:
            n = round(self._rng.gauss(self._mean, self._mean / 4))
        return max(1, min(n, room))
