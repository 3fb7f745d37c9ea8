"""`routingPolicy: prefix-aware` against `least-loaded`, end to end: a multi-turn workload from `flotilla bench`
through a real gateway onto four real sim replicas with prefix caching; the engines' own counters
(vllm:prefix_cache_hits / queries) say how much prompt was found cached. Counts, not timings."""

from __future__ import annotations

import contextlib
import urllib.request

from gwstack import STUDENTS, spec_for
from procs import gateway, sim_engine

from flotilla.bench.config import merge_settings, resolve_plan
from flotilla.bench.runner import StepRunner

SIM = {"ttft_ms": 1, "itl_ms": 0, "max_num_seqs": 8, "deterministic": True, "enable_prefix_caching": True,
       "num_gpu_blocks": 384, "max_model_len": 4096}


def counters(url: str) -> tuple[float, float]:
    text = urllib.request.urlopen(url + "/metrics").read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith(("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total")):
            values[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
    return values["vllm:prefix_cache_hits_total"], values["vllm:prefix_cache_queries_total"]


async def hit_rate(tmp, routing: str) -> tuple[float, int]:
    with contextlib.ExitStack() as stack:
        sims = [stack.enter_context(sim_engine(tmp, **SIM)) for _ in range(4)]
        gw = stack.enter_context(gateway(tmp, spec_for({"maxConcurrency": 8, "routingPolicy": routing,
                                                        "sim": {"enablePrefixCaching": True}}), {"chat": sims}))
        plan = resolve_plan(merge_settings(None, {
            "url": gw, "model": "chat", "token": STUDENTS, "concurrency": 8, "num_requests": 96,
            "dataset": "conversations", "turns": 6, "system_prompts": 4, "system_prompt_len": 256,
            "input_len": 64, "output_len": 24,
        }))
        result = await StepRunner(plan, plan.classes, None, "prefix routing").run()
        hits, queries = map(sum, zip(*(counters(s) for s in sims)))
    return hits / queries, result.overall["completed"]


async def test_prefix_aware_routing_finds_more_of_each_prompt_cached_than_least_loaded(tmp_path):
    least_rate, least_done = await hit_rate(tmp_path, "least-loaded")
    prefix_rate, prefix_done = await hit_rate(tmp_path, "prefix-aware")
    assert least_done == prefix_done == 96
    # Each turn's prompt is the previous turn's plus its answer and a question: on the replica that
    # served the previous turn, nearly all of it is cached.
    assert prefix_rate > least_rate + 0.1, (prefix_rate, least_rate)  # measured: 0.83 against 0.60-0.63
    assert prefix_rate > 0.75
