"""vLLM's priority scheduling, preemption and automatic prefix caching, through the sim's HTTP API."""

import asyncio

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flotilla.sim.testing import start_sim
from flotilla.spec.engines import SimOptions
from flotilla.spec.root import FlotillaSpec

from .helpers import MODEL, client_for


async def scrape(sim) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, session.get(sim.base_url + "/metrics") as reply:
        text = await reply.text()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


async def wait_for(condition, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.005)


def ask(client, content, done, tag, priority=None, max_tokens=4):
    extra = {"priority": priority} if priority is not None else {}

    async def go():
        reply = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": content}], max_tokens=max_tokens, extra_body=extra
        )
        done.append((tag, reply.usage.completion_tokens))

    return asyncio.create_task(go())


async def test_fcfs_refuses_a_priority_as_vllm_does():
    async with start_sim(SimOptions(ttft_ms=0, itl_ms=0), MODEL) as sim, client_for(sim) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "x"}], extra_body={"priority": 3}
            )
        assert "Got priority 3 but Priority scheduling is not enabled." in info.value.message
        reply = await client.chat.completions.create(  # 0 is everyone's default, fine without the policy
            model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=1, extra_body={"priority": 0}
        )
        assert reply.usage.completion_tokens == 1


async def test_a_priority_that_is_not_an_integer_is_refused():
    options = SimOptions(ttft_ms=0, itl_ms=0, scheduling_policy="priority")
    async with start_sim(options, MODEL) as sim, client_for(sim) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "x"}], extra_body={"priority": "high"}
            )
        assert "`priority` must be an integer" in info.value.message


async def test_waiting_requests_run_by_priority_lower_first():
    options = SimOptions(ttft_ms=100, itl_ms=1, max_num_seqs=1, scheduling_policy="priority", deterministic=True)
    async with start_sim(options, MODEL) as sim, client_for(sim) as client:
        scheduler = sim.engine.scheduler
        done: list = []
        first = ask(client, "hold", done, "hold")
        await wait_for(lambda: scheduler.running == 1)
        tasks = []
        for tag, priority in (("p5", 5), ("p-1", -1), ("p3", 3)):
            tasks.append(ask(client, tag, done, tag, priority))
            await wait_for(lambda n=len(tasks): scheduler.waiting == n)
        await asyncio.gather(first, *tasks)
        assert [tag for tag, _ in done] == ["hold", "p-1", "p3", "p5"]


async def test_fcfs_keeps_arrival_order_in_the_engine():
    options = SimOptions(ttft_ms=100, itl_ms=1, max_num_seqs=1, deterministic=True)
    async with start_sim(options, MODEL) as sim, client_for(sim) as client:
        scheduler = sim.engine.scheduler
        done: list = []
        first = ask(client, "hold", done, "hold")
        await wait_for(lambda: scheduler.running == 1)
        tasks = []
        for tag in ("a", "b", "c"):
            tasks.append(ask(client, tag, done, tag))
            await wait_for(lambda n=len(tasks): scheduler.waiting == n)
        await asyncio.gather(first, *tasks)
        assert [tag for tag, _ in done] == ["hold", "a", "b", "c"]


async def test_short_kv_cache_preempts_the_lower_priority_which_recomputes_and_finishes():
    # 4 blocks = 64 tokens: two 16-token prompts growing to 56 tokens each cannot both fit.
    options = SimOptions(ttft_ms=5, itl_ms=2, max_num_seqs=4, max_model_len=64, num_gpu_blocks=4,
                         scheduling_policy="priority", deterministic=True)
    async with start_sim(options, MODEL) as sim, client_for(sim) as client:
        done: list = []
        low = ask(client, "l" * 64, done, "low", priority=5, max_tokens=40)
        await wait_for(lambda: sim.engine.scheduler.running == 1)
        high = ask(client, "h" * 64, done, "high", priority=0, max_tokens=40)
        await asyncio.gather(low, high)
        assert done == [("high", 40), ("low", 40)]  # every token delivered, the urgent one first
        assert sim.engine.scheduler.preemptions >= 1
        metrics = await scrape(sim)
        assert metrics["vllm:num_preemptions_total"] == sim.engine.scheduler.preemptions
        assert sim.engine.metrics.request_success["length"] == 2
        assert sim.engine.pool.free == 4  # every block came back


SYSTEM = "You answer questions about the cluster's shared GPUs, politely and briefly. " * 10  # 760 chars


@pytest.mark.parametrize("timed", [False, True], ids=["instant", "timed"])
async def test_prefix_cache_hits_are_counted_in_tokens_under_vllm_names(timed):
    ttft, itl, prefill = (1, 1, 0.001) if timed else (0, 0, 0)
    options = SimOptions(ttft_ms=ttft, itl_ms=itl, enable_prefix_caching=True, prefill_ms_per_token=prefill,
                         deterministic=True)
    async with start_sim(options, MODEL) as sim, client_for(sim) as client:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "How many GPUs?"}]
        first = await client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8)
        again = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Who may use them?"}]
        second = await client.chat.completions.create(model=MODEL, messages=again, max_tokens=8)
        metrics = await scrape(sim)
        queried = first.usage.prompt_tokens + second.usage.prompt_tokens
        assert metrics["vllm:prefix_cache_queries_total"] == queried
        assert metrics["vllm:prefix_cache_hits_total"] == (len(SYSTEM) // 64) * 16  # the system prompt's full blocks


async def test_a_conversation_turn_finds_the_previous_turn_and_its_answer():
    options = SimOptions(ttft_ms=1, itl_ms=0, enable_prefix_caching=True, deterministic=True)
    async with start_sim(options, MODEL) as sim, client_for(sim) as client:
        messages = [{"role": "user", "content": "q" * 200}]
        reply = await client.chat.completions.create(model=MODEL, messages=messages, max_tokens=60)
        answer = reply.choices[0].message.content
        messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": "and then?"}]
        before = sim.engine.scheduler.prefix_hits
        await client.chat.completions.create(model=MODEL, messages=messages, max_tokens=4)
        hits = sim.engine.scheduler.prefix_hits - before
        assert hits > (200 // 64) * 16  # more than the question alone: the answer's blocks were kept too


async def test_prefix_cache_metrics_are_exported_as_zero_when_off():
    async with start_sim(SimOptions(ttft_ms=0, itl_ms=0), MODEL) as sim, client_for(sim) as client:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": SYSTEM}], max_tokens=1)
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": SYSTEM}], max_tokens=1)
        metrics = await scrape(sim)
        assert metrics["vllm:prefix_cache_queries_total"] == 0
        assert metrics["vllm:prefix_cache_hits_total"] == 0
        assert metrics["vllm:num_preemptions_total"] == 0


def test_the_gateway_forwards_priority_to_a_sim_with_priority_scheduling():
    def model(sim):
        spec = FlotillaSpec.model_validate({"models": [{"name": "chat", "engine": "sim", **sim}]})
        return spec.models[0]

    assert model({"sim": {"schedulingPolicy": "priority"}}).forwards_vllm_priority
    assert not model({}).forwards_vllm_priority
    assert not model({"sim": {"schedulingPolicy": "fcfs"}}).forwards_vllm_priority
