"""Benchmark metrics, defined as vLLM's serving benchmark defines them (vllm/benchmarks/serve.py).

- TTFT: first chunk carrying a non-empty `choices` minus the send time.
- ITL: the gaps between successive chunks carrying `choices` (all requests pooled).
- E2EL: the last chunk carrying `choices` minus the send time (the usage-only chunk does not count).
- TPOT: (e2el - ttft) / (output_tokens - 1), only for requests with more than one output token;
  for goodput such a request's TPOT counts as 0.
- Throughputs divide by the benchmark duration; input tokens count successful requests only.
- Empty samples give 0, as numpy's mean/median/percentile of `[] or 0` do in vLLM; std is the
  population standard deviation (numpy's default).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

LATENCY_METRICS = ("ttft", "tpot", "itl", "e2el")


@dataclass(slots=True)
class RequestRecord:
    """What one request did; times in seconds, relative to the run's start."""

    class_name: str
    scheduled: float
    sent: float = 0.0
    finished: float = 0.0
    measured: bool = True  # False during warm-up
    success: bool = False
    status: str = ""  # HTTP status code, or connection / stream / timeout
    ttft: float = 0.0
    itl: list[float] = field(default_factory=list)
    latency: float = 0.0
    prompt_tokens: int = 0
    output_tokens: int = 0
    error: str = ""

    @property
    def send_lag(self) -> float:
        return self.sent - self.scheduled


def percentile(values: Sequence[float], p: float) -> float:
    """numpy.percentile's default (linear interpolation between closest ranks) on sorted input."""
    if not values:
        return 0.0
    rank = (len(values) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def describe(values: Iterable[float], percentiles: Sequence[float]) -> dict[str, float]:
    """mean, median, std and the asked percentiles of `values`, unscaled."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        stats = {"mean": 0.0, "median": 0.0, "std": 0.0}
    else:
        mean = math.fsum(ordered) / n
        stats = {
            "mean": mean,
            "median": percentile(ordered, 50.0),
            "std": math.sqrt(math.fsum((v - mean) ** 2 for v in ordered) / n),
        }
    for p in percentiles:
        stats[f"p{percentile_label(p)}"] = percentile(ordered, p)
    return stats


def percentile_label(p: float) -> str:
    """vLLM's key spelling: p99, p99.9."""
    return str(int(p)) if int(p) == p else str(p)


def tpot_of(record: RequestRecord) -> float | None:
    if record.output_tokens > 1:
        return (record.latency - record.ttft) / (record.output_tokens - 1)
    return None


def is_good(record: RequestRecord, goodput_ms: dict[str, float]) -> bool:
    """vLLM's goodput test: every SLO (ms) at or above the request's value."""
    observed = {"ttft": record.ttft, "tpot": tpot_of(record) or 0.0, "e2el": record.latency}
    return all(slo / 1000.0 >= observed[name] for name, slo in goodput_ms.items())


def compute_metrics(
    records: Sequence[RequestRecord],
    duration_s: float,
    percentiles: Sequence[float] = (90.0, 95.0, 99.0),
    goodput_ms: dict[str, float] | None = None,
) -> dict[str, Any]:
    """vLLM's result keys for `records` (measured ones only) over `duration_s` seconds."""
    if duration_s <= 0:
        raise ValueError(f"benchmark duration must be positive (got {duration_s})")
    done = [r for r in records if r.measured and r.success]
    failed = [r for r in records if r.measured and not r.success]
    samples: dict[str, list[float]] = {
        "ttft": [r.ttft for r in done],
        "tpot": [t for t in (tpot_of(r) for r in done) if t is not None],
        "itl": [gap for r in done for gap in r.itl],
        "e2el": [r.latency for r in done],
    }
    total_input = sum(r.prompt_tokens for r in done)
    total_output = sum(r.output_tokens for r in done)
    result: dict[str, Any] = {
        "duration": duration_s,
        "completed": len(done),
        "failed": len(failed),
        "total_input_tokens": total_input,
        "total_output_tokens": total_output,
        "request_throughput": len(done) / duration_s,
        "request_goodput": (sum(1 for r in done if is_good(r, goodput_ms)) / duration_s if goodput_ms else None),
        "output_throughput": total_output / duration_s,
        "total_token_throughput": (total_input + total_output) / duration_s,
    }
    for name in LATENCY_METRICS:
        for stat, value in describe(samples[name], percentiles).items():
            result[f"{stat}_{name}_ms"] = value * 1000.0
    result["errors_by_status"] = dict(sorted(Counter(r.status for r in failed).items()))
    return result


def send_lag_stats(records: Sequence[RequestRecord]) -> dict[str, float]:
    """How late sends were against the schedule (ms): coordinated omission shows here."""
    lags = sorted(max(0.0, r.send_lag) for r in records if r.measured)
    if not lags:
        return {"mean_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    return {
        "mean_ms": math.fsum(lags) / len(lags) * 1000.0,
        "p99_ms": percentile(lags, 99.0) * 1000.0,
        "max_ms": lags[-1] * 1000.0,
    }
