"""Continuous batching seen from outside: /metrics under load, FIFO admission, slowdown, aborts.

Timing assertions are lower bounds only (the sim sleeps at least until each deadline), so a
loaded machine cannot make them fail; waits poll for conditions with generous timeouts.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flotilla.sim.testing import RunningSim, start_sim
from flotilla.spec.engines import SimOptions

from .helpers import MODEL, client_for

MESSAGES = [{"role": "user", "content": "hi"}]


async def scrape(session: aiohttp.ClientSession, sim: RunningSim) -> dict[str, float]:
    """Unlabelled view of the sim's metrics: sample name (+ finished_reason / le) -> value."""
    async with session.get(sim.base_url + "/metrics") as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = await reply.text()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert sample.labels["model_name"] == MODEL
            extra = sample.labels.get("finished_reason") or sample.labels.get("le")
            values[f"{sample.name}[{extra}]" if extra else sample.name] = sample.value
    return values


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_metrics_move_under_load():
    options = SimOptions(ttft_ms=50, itl_ms=20, max_num_seqs=2, deterministic=True, batch_slowdown=0.0)
    async with start_sim(options, MODEL) as sim, client_for(sim) as client, aiohttp.ClientSession() as session:
        idle = await scrape(session, sim)
        for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"):
            assert idle[name] == 0
        requests = [
            asyncio.create_task(client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10))
            for _ in range(6)
        ]
        seen: dict[str, float] = {}

        async def saturated() -> bool:
            seen.update(await scrape(session, sim))
            return seen["vllm:num_requests_waiting"] == 4

        await eventually(saturated)
        assert seen["vllm:num_requests_running"] == 2
        assert seen["vllm:kv_cache_usage_perc"] > 0
        replies = await asyncio.wait_for(asyncio.gather(*requests), 60)
        assert [r.usage.completion_tokens for r in replies] == [10] * 6

        done = await scrape(session, sim)
        assert done["vllm:num_requests_running"] == done["vllm:num_requests_waiting"] == 0
        assert done["vllm:kv_cache_usage_perc"] == 0
        assert done["vllm:request_success_total[length]"] == 6
        assert done["vllm:generation_tokens_total"] == 60
        assert done["vllm:prompt_tokens_total"] == 6 * replies[0].usage.prompt_tokens
        assert done["vllm:time_to_first_token_seconds_count"] == 6
        assert done["vllm:inter_token_latency_seconds_count"] == 6 * 9
        # Every TTFT was at least the configured 50 ms.
        assert done["vllm:time_to_first_token_seconds_bucket[0.04]"] == 0
        # Four requests queued behind a batch of two.
        assert done["vllm:request_queue_time_seconds_sum"] > 0


async def test_waiting_requests_start_in_arrival_order():
    options = SimOptions(ttft_ms=1, itl_ms=2, max_num_seqs=1, deterministic=True)
    async with start_sim(options, MODEL) as sim, client_for(sim) as client:
        assert sim.engine is not None
        scheduler = sim.engine.scheduler
        finished: list[int] = []

        async def request(i: int, max_tokens: int) -> None:
            await client.completions.create(model=MODEL, prompt="x", max_tokens=max_tokens)
            finished.append(i)

        # A long request holds the only slot while the others queue up one after the other.
        blocker = asyncio.create_task(request(0, 4000))

        async def running() -> bool:
            return scheduler.running == 1

        await eventually(running)
        tasks = []
        for i in range(1, 5):
            tasks.append(asyncio.create_task(request(i, 3)))

            async def queued(n: int = i) -> bool:
                return scheduler.waiting == n

            await eventually(queued)
        blocker.cancel()  # the client hangs up: its slot goes to the oldest waiter
        await asyncio.gather(blocker, return_exceptions=True)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        assert finished == [1, 2, 3, 4]


async def test_time_to_first_token_grows_with_the_batch():
    # A lone request takes >= 50 ms to its first token; with 3 others decoding and a slowdown of
    # 1.0 per extra sequence, a fourth takes >= 50 * (1 + 3) = 200 ms.
    options = SimOptions(ttft_ms=50, itl_ms=5, max_num_seqs=8, batch_slowdown=1.0, deterministic=True)
    async with start_sim(options, MODEL) as sim, client_for(sim) as client:
        assert sim.engine is not None
        scheduler = sim.engine.scheduler

        async def first_token_seconds() -> float:
            start = time.perf_counter()
            stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2, stream=True)
            first = None
            async for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - start
            assert first is not None
            return first

        assert await first_token_seconds() >= 0.050
        background = [
            asyncio.create_task(client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=400))
            for _ in range(3)
        ]

        async def three_running() -> bool:
            return scheduler.running == 3

        await eventually(three_running)
        assert await first_token_seconds() >= 0.200
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)


async def test_a_client_hanging_up_frees_its_slot():
    options = SimOptions(ttft_ms=1, itl_ms=50, max_num_seqs=1, deterministic=True)
    async with start_sim(options, MODEL) as sim, client_for(sim) as client:
        assert sim.engine is not None
        engine = sim.engine
        stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=1000, stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        await stream.close()

        async def slot_freed() -> bool:
            return engine.scheduler.running == 0 and engine.metrics.request_success["abort"] == 1

        await eventually(slot_freed)
        assert engine.pool.free == engine.pool.num_blocks  # its KV blocks came back
        reply = await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=1)
        assert reply.usage.completion_tokens == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_non_timed_requests_also_pass_through_the_batch(stream):
    options = SimOptions(ttft_ms=0, itl_ms=0, deterministic=True)
    async with start_sim(options, MODEL) as sim, client_for(sim) as client, aiohttp.ClientSession() as session:
        replies = await asyncio.gather(*[
            client.completions.create(model=MODEL, prompt="x", max_tokens=3, stream=stream) for _ in range(20)
        ])
        if stream:
            for r in replies:
                assert len([c async for c in r]) == 3
        values = await scrape(session, sim)
        assert values["vllm:request_success_total[length]"] == 20
        assert values["vllm:generation_tokens_total"] == 60
        assert values["vllm:num_requests_running"] == 0
