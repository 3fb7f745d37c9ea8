"""Admission by delivered speed (`minTokensPerSecond`): how many requests a replica takes adapts to
how fast it really decodes, with maxConcurrency as the ceiling.

Each health round reads the engine's own inter-token-latency histogram (its sum and count since
the last round): the mean time between two tokens of one request, so 1 / that is the speed each
user got. Below the floor, the replica's limit drops to one under what is running now (so the
batch shrinks as requests finish); comfortably above it (15 %) while the limit is what holds the
replica back, the limit rises by one. Small steps on fresh measurements, like TCP's congestion
window: no model of the engine is assumed, so it follows whatever the hardware does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flotilla.gateway.replicas import Replica

# Histograms of the time between output tokens, by engine dialect (Prometheus names, no suffix).
ITL_HISTOGRAMS = (
    b"vllm:inter_token_latency_seconds",  # vLLM >= 0.10 (and the sim)
    b"vllm:time_per_output_token_seconds",  # older vLLM
    b"sglang:inter_token_latency_seconds",
)
MIN_TOKENS_TO_JUDGE = 20  # fewer tokens in a round than this: no verdict, the limit stays
HEADROOM = 1.15


def histogram_sum_count(text: bytes, names: tuple[bytes, ...] = ITL_HISTOGRAMS) -> tuple[float, float] | None:
    """(sum, count) of the first histogram of `names` in a Prometheus exposition, over all label sets."""
    for name in names:
        total = count = 0.0
        seen = False
        sum_prefix, count_prefix = name + b"_sum", name + b"_count"
        for line in text.splitlines():
            if line.startswith(sum_prefix):
                total += _value(line)
                seen = True
            elif line.startswith(count_prefix):
                count += _value(line)
        if seen:
            return total, count
    return None


def _value(line: bytes) -> float:
    try:
        return float(line.rsplit(b" ", 1)[1])
    except (IndexError, ValueError):
        return 0.0


@dataclass
class SpeedGovernor:
    min_tokens_per_second: float
    _last: dict[str, tuple[float, float]] = field(default_factory=dict)  # replica url -> (sum, count)
    last_speed: dict[str, float] = field(default_factory=dict)  # replica url -> tokens/s per request

    def observe(self, replica: Replica, metrics: bytes, running: int) -> bool:
        """Fold one /metrics reading in; True when the replica's limit changed."""
        reading = histogram_sum_count(metrics)
        if reading is None:
            return False
        previous = self._last.get(replica.url)
        self._last[replica.url] = reading
        if previous is None:
            return False
        d_sum, d_count = reading[0] - previous[0], reading[1] - previous[1]
        if d_count < MIN_TOKENS_TO_JUDGE or d_sum <= 0:
            return False
        speed = d_count / d_sum
        self.last_speed[replica.url] = speed
        limit = replica.speed_limit if replica.speed_limit is not None else replica.capacity
        if speed < self.min_tokens_per_second:
            new = max(1, min(limit, running) - 1)
        elif speed > self.min_tokens_per_second * HEADROOM and running >= limit:
            new = limit + 1
        else:
            new = limit
        new_limit = None if new >= replica.capacity else new
        if new_limit == replica.speed_limit:
            return False
        replica.speed_limit = new_limit
        return True
