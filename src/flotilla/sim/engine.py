"""The state of one simulated engine: its batch, latency model, counters and generators."""

from __future__ import annotations

import asyncio
import os
import time

from flotilla.sim.dialects import DIALECTS
from flotilla.sim.faults import FaultInjector
from flotilla.sim.kv_cache import BlockPool
from flotilla.sim.latency import LatencyModel, OutputLength
from flotilla.sim.metrics import SimMetrics, peak_gauge
from flotilla.sim.responses import ResponseFactory
from flotilla.sim.scheduler import BatchScheduler
from flotilla.spec.engines import SimOptions


class SimEngine:
    def __init__(
        self, options: SimOptions, model_name: str, adapters: tuple[str, ...] = (), role: str | None = None
    ) -> None:
        self.options = options
        self.model_name = model_name
        self.adapters = adapters  # LoRA adapter names served besides the model (vLLM --lora-modules)
        self.role = role  # "prefill" | "decode" of a disaggregated model, else None
        self.latency = LatencyModel.from_options(options)
        self.pool = BlockPool(options.kv_cache_blocks, options.enable_prefix_caching)
        self.scheduler = BatchScheduler(options.max_num_seqs, options.scheduling_policy, self.pool)
        self.metrics = SimMetrics(model_name)
        self.responses = ResponseFactory(model_name)
        self.responses_by_name = {model_name: self.responses, **{a: ResponseFactory(a, parent=model_name) for a in adapters}}
        self.requests_by_name = dict.fromkeys(self.responses_by_name, 0)  # bounded: known names only
        self.engine_id = f"sim-{os.urandom(4).hex()}"  # names this engine in KV-transfer parameters
        self.prefills = 0  # prefill role: requests prefilled for a remote decode
        self.kv_transfers = 0  # decode role: requests that arrived with a prefill's transfer parameters
        self.output_length = OutputLength(options.output_tokens_mean, options.deterministic, options.seed)
        self.faults = FaultInjector(options.error_rate, options.die_mid_stream_rate, options.seed)
        self.started_at = int(time.time())

    @property
    def kv_cache_usage(self) -> float:
        return self.pool.usage

    def render_metrics(self) -> str:
        render = DIALECTS[self.options.metrics_dialect]
        scheduler, metrics = self.scheduler, self.metrics
        metrics.preemptions = scheduler.preemptions
        metrics.prefix_cache_queries = scheduler.prefix_queries
        metrics.prefix_cache_hits = scheduler.prefix_hits
        text = render(metrics, self.model_name, scheduler.running, scheduler.waiting, self.kv_cache_usage)
        return text + peak_gauge(scheduler.peak, self.model_name)


async def sleep_until(deadline: float) -> None:
    """Sleep until time.perf_counter() reaches `deadline`.

    uvloop's timers have millisecond resolution and may fire early against the wall clock, so
    re-check and sleep again; callers keep absolute deadlines, so errors never accumulate.
    """
    while (delay := deadline - time.perf_counter()) > 0:
        await asyncio.sleep(delay)
