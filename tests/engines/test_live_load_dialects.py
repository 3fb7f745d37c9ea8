"""Live load from every engine kind: the gateway reads each engine's own gauge names (from its
descriptor), tested against the sim speaking that engine's metric dialect (sim/dialects.py, a
separate transcription of the engines' documentation)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from flotilla.engines import get_engine
from flotilla.gateway.health import engine_load_from_metrics
from flotilla.sim.dialects import DIALECTS
from flotilla.sim.metrics import SimMetrics
from flotilla.sim.testing import start_sim
from flotilla.spec.engines import SimOptions

from .gateway_in_process import running_gateway, spec_with

ENGINE_DIALECTS = ("vllm", "sglang", "tgi", "llamacpp")


@pytest.mark.parametrize("dialect", ENGINE_DIALECTS)
def test_each_engine_reads_its_own_dialect_and_no_other(dialect):
    text = DIALECTS[dialect](SimMetrics("m"), "m", 3, 2, 0.5).encode()
    assert engine_load_from_metrics(text, get_engine(dialect).load_gauges) == 5
    for other in ENGINE_DIALECTS:
        if other != dialect:
            assert engine_load_from_metrics(text, get_engine(other).load_gauges) is None, other


def test_sglang_gauges_of_several_ranks_add_up():
    text = (b'sglang:num_running_reqs{model_name="m",tp_rank="0"} 2.0\n'
            b'sglang:num_running_reqs{model_name="m",tp_rank="1"} 1.0\n'
            b'sglang:num_queue_reqs{model_name="m",tp_rank="0"} 4.0\n')
    assert engine_load_from_metrics(text, get_engine("sglang").load_gauges) == 7


def test_the_sims_load_gauges_are_those_of_the_dialect_it_speaks():
    from flotilla.spec.models import ModelSpec

    for dialect in ENGINE_DIALECTS:
        model = ModelSpec.model_validate({"name": "m", "engine": "sim", "sim": {"metricsDialect": dialect}})
        assert get_engine("sim").gauges_for(model) == get_engine(dialect).load_gauges


async def _free_slots(session: aiohttp.ClientSession, gw: str) -> float | None:
    async with session.get(gw + "/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith("flotilla_replica_free_slots{") and 'model="chat"' in line:
                return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.parametrize("dialect", ENGINE_DIALECTS)
async def test_gateway_sees_load_sent_around_it_in_every_dialect(dialect, tmp_path):
    # Two requests reach the engine without the gateway (another gateway, a client bypassing it);
    # the gateway learns of them from the engine's gauges and leaves their slots alone.
    options = SimOptions(ttft_ms=30_000, itl_ms=0, max_num_seqs=8, metrics_dialect=dialect)
    spec = spec_with([{"name": "chat", "engine": "sim", "maxConcurrency": 4, "sim": {"metricsDialect": dialect}}], tmp_path)
    async with start_sim(options, "chat") as sim, running_gateway(spec, {"chat": [sim.base_url]}) as gw:
        async with aiohttp.ClientSession() as session:
            assert await _free_slots(session, gw) == 4
            body = {"model": "chat", "prompt": "hi", "max_tokens": 1}
            bypass = [asyncio.create_task(session.post(sim.base_url + "/v1/completions", json=body)) for _ in range(2)]
            try:
                for _ in range(200):  # health rounds every 0.2 s
                    if await _free_slots(session, gw) == 2:
                        break
                    await asyncio.sleep(0.05)
                assert await _free_slots(session, gw) == 2
            finally:
                for task in bypass:
                    task.cancel()
                await asyncio.gather(*bypass, return_exceptions=True)
