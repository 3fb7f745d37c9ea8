import asyncio

import pytest

from flotilla.gateway.dispatch import LocalDispatcher, ModelUnavailable, QueueFull, QueueTimeout, Ticket
from flotilla.gateway.replicas import ReplicaPool


def pool_with(n_replicas=1, capacity=1, healthy=True, policy="least-loaded"):
    pool = ReplicaPool("m", capacity, policy)
    pool.set_urls([f"http://127.0.0.1:{9000 + i}" for i in range(n_replicas)])
    for r in pool.replicas:
        pool.mark(r, healthy)
    return pool


def ticket(token="t", priority=1, threshold=100, rid=None):
    return Ticket(rid or f"{token}-{priority}", "m", token, priority, threshold)


async def test_grants_immediately_when_a_slot_is_free():
    pool = pool_with(capacity=2)
    d = LocalDispatcher({"m": pool})
    lease = await d.acquire(ticket())
    assert lease.replica is pool.replicas[0] and pool.replicas[0].in_flight == 1
    d.release(lease)
    assert pool.replicas[0].in_flight == 0


async def test_waiting_requests_are_served_by_priority_not_arrival():
    pool = pool_with(capacity=1)
    d = LocalDispatcher({"m": pool})
    first = await d.acquire(ticket("low", 1, rid="busy"))
    order = []

    async def wait(t):
        lease = await d.acquire(t)
        order.append(t.request_id)
        d.release(lease)

    tasks = [asyncio.create_task(wait(ticket("low", 1, rid=f"low{i}"))) for i in range(3)]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(wait(ticket("high", 10, rid=f"high{i}"))) for i in range(2)]
    await asyncio.sleep(0)
    assert d.queue_depths() == {("m", 1): 3, ("m", 10): 2}
    d.release(first)
    await asyncio.gather(*tasks)
    assert order == ["high0", "high1", "low0", "low1", "low2"]


async def test_threshold_limits_waiting_requests_per_token():
    pool = pool_with(capacity=1)
    d = LocalDispatcher({"m": pool})
    busy = await d.acquire(ticket("a", threshold=2))
    waiting = [asyncio.create_task(d.acquire(ticket("a", threshold=2, rid=f"w{i}"))) for i in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(QueueFull):
        await d.acquire(ticket("a", threshold=2, rid="over"))
    # Another token is not affected by a's threshold.
    other = asyncio.create_task(d.acquire(ticket("b", threshold=1, rid="b0")))
    await asyncio.sleep(0)
    assert not other.done()
    for t in (*waiting, other):
        t.cancel()
    d.release(busy)


async def test_threshold_zero_still_serves_when_a_slot_is_free():
    pool = pool_with(capacity=1)
    d = LocalDispatcher({"m": pool})
    lease = await d.acquire(ticket(threshold=0))
    with pytest.raises(QueueFull):
        await d.acquire(ticket(threshold=0, rid="second"))
    d.release(lease)


async def test_queue_timeout_and_withdrawal():
    pool = pool_with(capacity=1)
    d = LocalDispatcher({"m": pool}, max_queue_wait_s=0.05)
    busy = await d.acquire(ticket())
    with pytest.raises(QueueTimeout):
        await d.acquire(ticket(rid="late"))
    assert d.queue_depths() == {}
    d.release(busy)
    assert pool.replicas[0].in_flight == 0


async def test_cancelled_waiter_leaves_the_queue_and_does_not_hold_a_slot():
    pool = pool_with(capacity=1)
    d = LocalDispatcher({"m": pool})
    busy = await d.acquire(ticket())
    waiter = asyncio.create_task(d.acquire(ticket(rid="gone")))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert d.queue_depths() == {}
    d.release(busy)
    assert pool.replicas[0].in_flight == 0


async def test_failed_replica_is_skipped_and_retry_goes_first():
    pool = pool_with(n_replicas=2, capacity=1)
    d = LocalDispatcher({"m": pool})
    a = await d.acquire(ticket(rid="a"))
    b = await d.acquire(ticket(rid="b"))
    assert {a.replica.url, b.replica.url} == {r.url for r in pool.replicas}
    queued = asyncio.create_task(d.acquire(ticket("other", 10, rid="queued")))
    await asyncio.sleep(0)
    d.release(a, replica_failed=True)  # a's replica refused the connection
    assert not a.replica.healthy
    # The queued request takes no slot on the failed replica.
    await asyncio.sleep(0)
    assert not queued.done()
    retry = asyncio.create_task(d.acquire(ticket(rid="a"), retry=True))
    await asyncio.sleep(0)
    d.release(b)
    lease = await retry  # the retried request goes ahead of the queued high-priority one
    assert lease.replica is b.replica
    assert not queued.done()
    d.release(lease)
    assert (await queued).replica is b.replica


async def test_model_with_no_healthy_replica_fails_after_grace():
    pool = pool_with(healthy=False)
    d = LocalDispatcher({"m": pool}, unavailable_wait_s=0.2)
    await d.start()
    try:
        with pytest.raises(ModelUnavailable):
            await asyncio.wait_for(d.acquire(ticket()), 5)
        with pytest.raises(ModelUnavailable):  # now fails at once
            await asyncio.wait_for(d.acquire(ticket()), 0.5)
    finally:
        await d.close()


async def test_recovered_replica_serves_the_queue():
    pool = pool_with(healthy=False)
    d = LocalDispatcher({"m": pool})
    waiter = asyncio.create_task(d.acquire(ticket()))
    await asyncio.sleep(0)
    pool.mark(pool.replicas[0], True)
    d.replicas_changed("m")
    lease = await asyncio.wait_for(waiter, 1)
    assert lease.replica.in_flight == 1


async def test_least_loaded_spreads_and_round_robin_cycles():
    pool = pool_with(n_replicas=3, capacity=4)
    d = LocalDispatcher({"m": pool})
    leases = [await d.acquire(ticket(rid=str(i))) for i in range(6)]
    assert sorted(r.in_flight for r in pool.replicas) == [2, 2, 2]
    for lease in leases:
        d.release(lease)
    rr = pool_with(n_replicas=2, capacity=4, policy="round-robin")
    d2 = LocalDispatcher({"m": rr})
    seen = [(await d2.acquire(ticket(rid=str(i)))).replica.url for i in range(4)]
    assert seen[0] != seen[1] and seen[0] == seen[2] and seen[1] == seen[3]


async def test_external_load_reduces_free_slots():
    pool = pool_with(capacity=2)
    pool.replicas[0].external_load = 2  # the engine is full with someone else's work
    d = LocalDispatcher({"m": pool})
    waiter = asyncio.create_task(d.acquire(ticket()))
    await asyncio.sleep(0)
    assert not waiter.done()
    pool.replicas[0].external_load = 0
    d.replicas_changed("m")
    assert (await asyncio.wait_for(waiter, 1)).replica is pool.replicas[0]
