"""The gateway forwards priorities to a sim with vLLM's priority scheduling, which orders its own waiting line by them."""

import asyncio
import re
import urllib.request

import openai
from gwstack import STAFF, STUDENTS, spec_for
from procs import gateway, sim_engine


def engine_waiting(sim: str) -> int:
    text = urllib.request.urlopen(sim + "/metrics").read().decode()
    return int(float(re.search(r"vllm:num_requests_waiting\{[^}]*\} (\S+)", text).group(1)))


async def test_the_engine_runs_staff_before_students_waiting_inside_it(tmp_path):
    # The gateway lets 4 in; the engine runs 1 at a time, so 3 wait inside the engine, ordered by it.
    sim_options = {"ttft_ms": 150, "itl_ms": 1, "max_num_seqs": 1, "deterministic": True, "scheduling_policy": "priority"}
    spec = spec_for({"maxConcurrency": 4, "sim": {"schedulingPolicy": "priority", "maxNumSeqs": 1}})
    with sim_engine(tmp_path, **sim_options) as sim, gateway(tmp_path, spec, {"chat": [sim]}) as gw:
        done: list[str] = []
        clients = {key: openai.AsyncOpenAI(base_url=gw + "/v1", api_key=key, max_retries=0) for key in (STAFF, STUDENTS)}

        async def ask(key: str, tag: str) -> None:
            await clients[key].chat.completions.create(
                model="chat", messages=[{"role": "user", "content": tag}], max_tokens=2
            )
            done.append(tag)

        tasks = [asyncio.create_task(ask(STUDENTS, "holder"))]
        await asyncio.sleep(0.05)
        for i in range(2):
            tasks.append(asyncio.create_task(ask(STUDENTS, f"student{i}")))
        while engine_waiting(sim) < 2:
            await asyncio.sleep(0.01)
        tasks.append(asyncio.create_task(ask(STAFF, "staff")))
        while engine_waiting(sim) < 3:
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)
        for client in clients.values():
            await client.close()
    assert done[:2] == ["holder", "staff"], done  # sent last, run first: the engine saw its priority
