"""The state of one simulated engine: its batch, latency model, counters and generators."""

from __future__ import annotations

import asyncio
import time

from flotilla.sim.faults import FaultInjector
from flotilla.sim.latency import LatencyModel, OutputLength
from flotilla.sim.metrics import SimMetrics
from flotilla.sim.responses import ResponseFactory
from flotilla.sim.scheduler import BatchScheduler
from flotilla.spec.engines import SimOptions


class SimEngine:
    def __init__(self, options: SimOptions, model_name: str) -> None:
        self.options = options
        self.model_name = model_name
        self.latency = LatencyModel.from_options(options)
        self.scheduler = BatchScheduler(options.max_num_seqs)
        self.metrics = SimMetrics(model_name)
        self.responses = ResponseFactory(model_name)
        self.output_length = OutputLength(options.output_tokens_mean, options.deterministic, options.seed)
        self.faults = FaultInjector(options.error_rate, options.die_mid_stream_rate, options.seed)
        self.started_at = int(time.time())
        # Tokens held by running sequences (prompt + generated so far): the simulated KV cache.
        self.kv_tokens = 0
        self._kv_capacity = options.max_num_seqs * options.max_model_len

    @property
    def kv_cache_usage(self) -> float:
        return min(1.0, self.kv_tokens / self._kv_capacity)

    def render_metrics(self) -> str:
        return self.metrics.render(
            self.scheduler.running, self.scheduler.waiting, self.kv_cache_usage, self.scheduler.peak
        )


async def sleep_until(deadline: float) -> None:
    """Sleep until time.perf_counter() reaches `deadline`.

    uvloop's timers have millisecond resolution and may fire early against the wall clock, so
    re-check and sleep again; callers keep absolute deadlines, so errors never accumulate.
    """
    while (delay := deadline - time.perf_counter()) > 0:
        await asyncio.sleep(delay)
