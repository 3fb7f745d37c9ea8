"""Exponential restart delays, capped, that forgive a process once it has run well for a while."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial_s: float = 1.0
    factor: float = 2.0
    cap_s: float = 30.0
    stable_after_s: float = 60.0  # a process that ran this long is healthy again: start over
    _failures: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.factor < 1 or self.cap_s < self.initial_s:
            raise ValueError("backoff needs initial_s >= 0, factor >= 1 and cap_s >= initial_s")

    @property
    def failures(self) -> int:
        return self._failures

    def next_delay(self, ran_for_s: float) -> float:
        """Delay before restarting a process that exited after running `ran_for_s` seconds."""
        if ran_for_s >= self.stable_after_s:
            self._failures = 0
        delay = min(self.cap_s, self.initial_s * self.factor ** min(self._failures, 64))  # no float overflow
        self._failures += 1
        return delay
