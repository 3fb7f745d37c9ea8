"""/metrics cannot be grown by clients: a client may lower its priority to any integer, but the
`priority` label only takes the priorities of tokens (others count as "other") (issue 9: item 3)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from gwstack import STAFF
from prometheus_client.parser import text_string_to_metric_families

from flotilla.gateway.auth import TokenCache
from flotilla.gateway.metrics import GatewayMetrics
from flotilla.gateway.replicas import ReplicaPool
from flotilla.spec.gateway import TokenSpec
from flotilla.store import Store

DISTINCT = 4000


def series(text: str) -> set[tuple[str, tuple]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(session: aiohttp.ClientSession, gw: str) -> str:
    async with session.get(gw + "/metrics") as resp:
        return await resp.text()


async def lowered_requests(gw: str, priorities: range) -> None:
    headers = {"Authorization": f"Bearer {STAFF}"}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for p in priorities:
        queue.put_nowait(p)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = {"model": "chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1,
                    "priority": queue.get_nowait()}
            async with session.post(gw + "/v1/chat/completions", json=body, headers=headers) as resp:
                assert resp.status == 200, await resp.text()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(8)))


async def test_4000_distinct_client_priorities_do_not_grow_the_series(fast_stack):
    gw = fast_stack["gateway"]
    await lowered_requests(gw, range(-1, 0))  # one lowered request: the "other" series exist now
    async with aiohttp.ClientSession() as session:
        before = await scrape(session, gw)
    await lowered_requests(gw, range(-DISTINCT - 1, -1))
    async with aiohttp.ClientSession() as session:
        after = await scrape(session, gw)
    assert series(after) == series(before), sorted(series(after) - series(before))[:5]
    assert 'flotilla_requests_total{model="chat",priority="other",status="200"} 4001.0' in after
    assert len(after) < 2 * len(before)


async def test_labels_are_token_priorities_or_other_in_every_metric(tmp_path: Path):
    store = await Store.open(f"sqlite:///{tmp_path}/m.db")
    try:
        await store.bootstrap_tokens([TokenSpec(name="staff", token="s" * 12, priority=10),
                                      TokenSpec(name="students", token="t" * 12, priority=1)])
        tokens = TokenCache(store, refresh_s=3600)
        await tokens.refresh()
        depths = {("chat", p): 1 for p in range(-DISTINCT, 11)}
        metrics = GatewayMetrics(tokens.priority_label)
        metrics.watch({"chat": ReplicaPool("chat", 4)}, lambda: depths)
        for p in range(-DISTINCT, 11):
            metrics.observe_request("chat", 200, p)
            metrics.observe_queue_wait("chat", p, 0.001)
            metrics.observe_ttft("chat", p, 0.01)
        labels = {
            sample.labels["priority"]
            for family in metrics.registry.collect()
            for sample in family.samples
            if "priority" in sample.labels
        }
        assert labels == {"10", "1", "other", "all"}
        queue = {s.labels["priority"]: s.value for f in metrics.registry.collect() if f.name == "flotilla_queue_depth"
                 for s in f.samples}
        assert queue == {"10": 1, "1": 1, "other": DISTINCT + 11 - 2, "all": DISTINCT + 11}
    finally:
        await store.close()
