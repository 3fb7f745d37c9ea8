"""Three gateway processes, one RabbitMQ, two sim replicas with maxConcurrency 4: priorities, engine
capacity and thresholds hold across gateways (issue: many gateways, one queue)."""

import asyncio
import time

import openai
import pytest
from gwstack import STAFF, STUDENTS
from procs import sim_engine
from rabbitmq import require_shared_broker
from scaleout import Client, cleanup, gateways, peak_in_engine, scale_out_spec, unique_prefix

SIM = {"ttft_ms": 20, "itl_ms": 10, "max_num_seqs": 4, "batch_slowdown": 0, "deterministic": True}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    url = require_shared_broker()
    prefix = unique_prefix()
    tmp = tmp_path_factory.mktemp("scaleout")
    spec = scale_out_spec(url, prefix, {"maxConcurrency": 4})
    with cleanup(url, prefix), sim_engine(tmp, **SIM) as sim_a, sim_engine(tmp, **SIM) as sim_b:
        with gateways(tmp, spec, [sim_a, sim_b], 3) as gws:
            yield {"gateways": gws, "sims": [sim_a, sim_b]}


async def test_engines_never_receive_more_than_max_concurrency(stack):
    gws, sims = stack["gateways"], stack["sims"]
    clients = [Client(g, STUDENTS) for g in gws]
    try:
        # 48 requests at once, 16 at each gateway: 8 slots in all. Local queues would let each
        # gateway put 4 on each replica (12 per replica).
        answers = await asyncio.gather(*(clients[i % 3].stream(f"r{i}", 10) for i in range(48)))
    finally:
        for c in clients:
            await c.close()
    assert all(a for a in answers)
    assert [peak_in_engine(s) for s in sims] == [4, 4]


async def test_high_priority_at_one_gateway_starts_before_low_queued_earlier_at_another(stack):
    gws = stack["gateways"]
    students, staff = Client(gws[0], STUDENTS), Client(gws[1], STAFF)
    started: dict[str, float] = {}
    try:
        # All 8 slots busy for about a second, ending 100 ms apart so they free one at a time.
        ended: dict[str, float] = {}

        async def filler(i):
            await students.stream(f"fill{i}", 100 + 10 * i)
            ended[f"fill{i}"] = time.monotonic()

        fill = [asyncio.create_task(filler(i)) for i in range(8)]
        await asyncio.sleep(0.2)
        lows = [asyncio.create_task(students.stream(f"low{i}", 20, started)) for i in range(6)]
        await asyncio.sleep(0.3)  # the lows wait at gateway 0 ...
        highs = [asyncio.create_task(staff.stream(f"high{i}", 5, started)) for i in range(3)]  # ... highs at 1
        await asyncio.gather(*fill, *lows, *highs)
    finally:
        await students.close()
        await staff.close()
    order = sorted(started, key=started.get)
    assert set(order[:3]) == {"high0", "high1", "high2"}, order
    assert min(started[f"high{i}"] for i in range(3)) > min(ended.values())  # they waited for a free slot
    assert set(order[3:]) == {f"low{i}" for i in range(6)}, order  # every low after every high


async def test_threshold_counts_a_tokens_waiting_requests_at_every_gateway(stack):
    gws = stack["gateways"]
    staff = [Client(g, STAFF) for g in gws]  # staff's threshold is 50
    try:
        fill = [asyncio.create_task(staff[0].stream(f"fill{i}", 300)) for i in range(8)]  # ~3 s
        await asyncio.sleep(0.2)
        # 51 wait for a slot, spread over the three gateways: exactly one is over the threshold.
        waiting = await asyncio.gather(
            *(staff[i % 3].stream(f"w{i}", 2) for i in range(51)), return_exceptions=True
        )
        await asyncio.gather(*fill)
    finally:
        for c in staff:
            await c.close()
    refused = [r for r in waiting if isinstance(r, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], openai.RateLimitError), refused
    assert refused[0].code == "queue_threshold_exceeded" and "at most 50 may wait" in refused[0].message


def test_each_gateway_reports_its_own_waiting_and_one_decides(stack):
    from scaleout import metric

    gws = stack["gateways"]
    deciding = [metric(g, 'flotilla_dispatcher_scheduling{model="chat"}') for g in gws]
    assert sorted(deciding) == [0, 0, 1]  # one scheduler among three
    assert all(metric(g, "flotilla_dispatcher_connected") == 1 for g in gws)
    assert all(metric(g, 'flotilla_queue_depth{model="chat",priority="all"}') == 0 for g in gws)
