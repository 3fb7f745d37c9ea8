"""Arrival schedules, computed up front so sends follow the clock, not the completions.

Inter-arrival gaps are gamma-distributed with shape `burstiness` and mean 1/rate (vLLM's model:
shape 1 is a Poisson process, < 1 burstier, > 1 more even); `None` means constant spacing.
The first arrival is at the schedule's start.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Arrivals:
    """How one class's requests arrive: `rate` per second, gamma `burstiness` or None for constant."""

    rate: float
    burstiness: float | None = 1.0

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"request rate must be > 0 (got {self.rate})")
        if self.burstiness is not None and not self.burstiness > 0:
            raise ValueError(f"burstiness must be > 0 (got {self.burstiness})")

    def gap(self, rng: random.Random) -> float:
        if self.burstiness is None:
            return 1.0 / self.rate
        return rng.gammavariate(self.burstiness, 1.0 / (self.rate * self.burstiness))

    def for_count(self, count: int, rng: random.Random, start: float = 0.0) -> list[float]:
        """`count` arrival times; rescaled so the last lands at start + (count-1)/rate.

        As in vLLM, rescaling removes the few-percent drift a random sum has, so the
        offered rate is exactly `rate` whatever the seed.
        """
        if count < 1:
            raise ValueError(f"number of requests must be >= 1 (got {count})")
        offsets = [0.0]
        for _ in range(count - 1):
            offsets.append(offsets[-1] + self.gap(rng))
        target = (count - 1) / self.rate
        if offsets[-1] > 0:
            scale = target / offsets[-1]
            offsets = [o * scale for o in offsets]
        return [start + o for o in offsets]

    def for_window(self, start: float, end: float, rng: random.Random) -> list[float]:
        """Arrival times in [start, end)."""
        if end <= start:
            return []
        if self.burstiness is None:  # multiply, not add: no drift across a long window
            count = math.ceil((end - start) * self.rate - 1e-9)
            return [start + i / self.rate for i in range(count)]
        times: list[float] = []
        t = start
        while t < end:
            times.append(t)
            t += self.gap(rng)
        return times
