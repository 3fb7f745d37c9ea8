"""How many streaming requests/s this client sustains here, against an instant sim.

    python -m flotilla.bench.capacity --rates 500,1000,1500,2000 --duration 10

The sim (by default ttft = itl = 0: instant) runs in its own process pinned to one CPU, this client to another, so
what limits the rate is one side or the other, never the two sharing a core. For each offered
rate it prints what was achieved, how late sends were, the client's own CPU use, and latency
percentiles: against an instant engine these are pure client + server overhead. `--client aiohttp`
runs the same schedule over aiohttp for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
from typing import Any

import aiohttp
import uvloop

from flotilla.bench.config import BenchPlan, merge_settings, resolve_plan
from flotilla.bench.metrics import RequestRecord
from flotilla.bench.request import CONNECTION, StreamingExchange, Transport
from flotilla.bench.runner import StepRunner
from flotilla.sim.testing import SimProcess
from flotilla.spec.engines import SimOptions
from flotilla.transport import TransportError


class AiohttpTransport:
    """The same exchange over aiohttp, for comparison only."""

    def __init__(self, base_url: str, path: str, timeout_s: float) -> None:
        self.url = base_url + path
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.session: aiohttp.ClientSession | None = None
        self.connections_opened = 0

    async def send(
        self, headers: dict[str, str], body: bytes, record: RequestRecord, clock_zero: float,
        answer: list[str] | None = None,
    ) -> bool:
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=0)
            self.session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        record.sent = start - clock_zero
        exchange = StreamingExchange(record, start, loop.create_future(), answer)
        try:
            async with self.session.post(self.url, data=body, headers=headers) as response:
                exchange.on_head(response.status, dict(response.headers), time.perf_counter())
                async for chunk in response.content.iter_any():
                    exchange.on_body(chunk, time.perf_counter())
            exchange.on_complete(time.perf_counter())
        except (TimeoutError, aiohttp.ClientError) as exc:
            exchange.on_failure(TransportError(f"{type(exc).__name__}: {exc}"), time.perf_counter())
            if not record.status:
                record.status = CONNECTION
        record.finished = time.perf_counter() - clock_zero
        return exchange.usage_reported

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


def _plan(base_url: str, rate: float, duration_s: float, output_len: int) -> BenchPlan:
    settings = merge_settings(
        None,
        {
            "url": base_url,
            "model": "sim",
            "rate": rate,
            "duration_s": duration_s,
            "warmup_s": 1.0,
            "input_len": 32,
            "output_len": output_len,
            "percentiles": [50.0, 99.0],
        },
    )
    return resolve_plan(settings)


async def _measure(plan: BenchPlan, client: str) -> dict[str, Any]:
    transport: Transport | None = None
    if client == "aiohttp":
        transport = AiohttpTransport(plan.base_url, plan.path, plan.timeout_s)
    runner = StepRunner(plan, plan.classes, None, "capacity", transport)
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    wall_before = time.perf_counter()
    step = await runner.run()
    wall = time.perf_counter() - wall_before
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    m = step.overall
    return {
        "client": client,
        "offered": plan.classes[0].rate,
        "achieved": m["request_throughput"],
        "failed": m["failed"],
        "lag_p99_ms": step.send_lag["p99_ms"],
        "lag_max_ms": step.send_lag["max_ms"],
        "client_cpu": cpu / wall,
        "ttft_p50_ms": m["p50_ttft_ms"],
        "ttft_p99_ms": m["p99_ttft_ms"],
        "e2el_p50_ms": m["p50_e2el_ms"],
        "e2el_p99_ms": m["p99_e2el_ms"],
        "itl_p99_ms": m["p99_itl_ms"],
        "connections": step.connections_opened,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="500,1000,1500,2000")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--output-len", type=int, default=16, help="Streamed chunks per request.")
    parser.add_argument("--client", choices=("lean", "aiohttp", "both"), default="both")
    parser.add_argument("--sim-ttft-ms", type=float, default=0.0)
    parser.add_argument("--sim-itl-ms", type=float, default=0.0, help="> 0: every chunk arrives in its own read.")
    parser.add_argument("--client-cpu", type=int, default=0)
    parser.add_argument("--sim-cpu", type=int, default=1)
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.client_cpu})
    clients = ("lean", "aiohttp") if args.client == "both" else (args.client,)
    options = SimOptions(
        ttft_ms=args.sim_ttft_ms,
        itl_ms=args.sim_itl_ms,
        batch_slowdown=0.0,
        max_num_seqs=4096,
        deterministic=True,
        max_model_len=100_000,
    )
    with SimProcess(options, model="sim", cpus=[args.sim_cpu]) as sim:
        header = (
            f"{'client':8} {'offered':>8} {'achieved':>9} {'failed':>6} {'lag p99':>8} {'lag max':>8} "
            f"{'cpu':>5} {'TTFT p50':>9} {'TTFT p99':>9} {'E2E p50':>8} {'E2E p99':>8} {'ITL p99':>8}"
        )
        print(
            f"sim (ttft {args.sim_ttft_ms:g} ms, itl {args.sim_itl_ms:g} ms) pinned to CPU {args.sim_cpu}, "
            f"client to CPU {args.client_cpu}; {args.output_len} chunks per stream; "
            f"{args.duration:g}s per rate (+1s warm-up); times in ms"
        )
        print(header)
        for rate in (float(r) for r in args.rates.split(",")):
            for client in clients:
                plan = _plan(sim.base_url, rate, args.duration, args.output_len)
                r = uvloop.run(_measure(plan, client))
                print(
                    f"{r['client']:8} {r['offered']:8.0f} {r['achieved']:9.1f} {r['failed']:6d} "
                    f"{r['lag_p99_ms']:8.2f} {r['lag_max_ms']:8.1f} {r['client_cpu']:5.0%} "
                    f"{r['ttft_p50_ms']:9.2f} {r['ttft_p99_ms']:9.2f} {r['e2el_p50_ms']:8.2f} "
                    f"{r['e2el_p99_ms']:8.2f} {r['itl_p99_ms']:8.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
