import asyncio

import pytest

from flotilla.sim.scheduler import BatchScheduler


async def test_admits_up_to_max_num_seqs_then_queues():
    scheduler = BatchScheduler(2)
    await scheduler.admit()
    await scheduler.admit()
    third = asyncio.create_task(scheduler.admit())
    await asyncio.sleep(0)
    assert (scheduler.running, scheduler.waiting) == (2, 1)
    assert not third.done()
    scheduler.release()
    await asyncio.wait_for(third, 5)
    assert (scheduler.running, scheduler.waiting) == (2, 0)
    scheduler.release()
    scheduler.release()
    assert scheduler.running == 0


async def test_waiting_requests_are_served_first_come_first_served():
    scheduler = BatchScheduler(1)
    await scheduler.admit()
    order: list[int] = []

    async def request(i: int) -> None:
        await scheduler.admit()
        order.append(i)

    tasks = []
    for i in range(5):
        tasks.append(asyncio.create_task(request(i)))
        await asyncio.sleep(0)  # arrival order = creation order
    assert scheduler.waiting == 5
    for _ in range(5):
        scheduler.release()
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == [0, 1, 2, 3, 4]


async def test_a_newcomer_cannot_overtake_the_queue():
    scheduler = BatchScheduler(1)
    await scheduler.admit()
    waiter = asyncio.create_task(scheduler.admit())
    await asyncio.sleep(0)
    scheduler.release()  # the slot goes to the waiter, not to whoever asks next
    assert not scheduler.try_admit()
    await asyncio.wait_for(waiter, 5)
    assert scheduler.running == 1


async def test_a_cancelled_waiter_leaves_the_queue():
    scheduler = BatchScheduler(1)
    await scheduler.admit()
    gone = asyncio.create_task(scheduler.admit())
    stays = asyncio.create_task(scheduler.admit())
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert scheduler.waiting == 1
    scheduler.release()
    await asyncio.wait_for(stays, 5)
    assert (scheduler.running, scheduler.waiting) == (1, 0)


async def test_a_slot_handed_to_a_cancelled_waiter_is_passed_on():
    scheduler = BatchScheduler(1)
    await scheduler.admit()
    first = asyncio.create_task(scheduler.admit())
    second = asyncio.create_task(scheduler.admit())
    await asyncio.sleep(0)
    scheduler.release()  # hands the slot to `first` ...
    first.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 5)
    assert (scheduler.running, scheduler.waiting) == (1, 0)
    scheduler.release()
    assert scheduler.running == 0


def test_rejects_a_batch_of_zero():
    with pytest.raises(ValueError, match="max_num_seqs"):
        BatchScheduler(0)
