"""The sim's batch scheduler: vLLM V1's admission, priority order and preemption, KV blocks and prefix cache."""

import asyncio

import pytest

from flotilla.sim.kv_cache import BlockHashes, BlockPool
from flotilla.sim.scheduler import RUNNING, WAITING, BatchScheduler, Sequence


def seq(scheduler: BatchScheduler, priority: int = 0, arrival: float = 0.0, tokens: int = 1, text: str | None = None):
    return scheduler.sequence(priority, arrival, tokens, BlockHashes.of_text(text) if text is not None else None)


async def start_all(scheduler: BatchScheduler, *seqs: Sequence) -> list[asyncio.Task]:
    """Start each (in this order) as its own task; returns once all have queued or started."""
    tasks = []
    for s in seqs:
        tasks.append(asyncio.create_task(scheduler.start(s)))
        await asyncio.sleep(0)
    return tasks


async def admission_order(scheduler: BatchScheduler, holder: Sequence, waiting: list[Sequence]) -> list[Sequence]:
    """Let `waiting` in one at a time by ending whoever runs; the order they ran in."""
    tasks = await start_all(scheduler, *waiting)
    order = []
    running = holder
    for _ in waiting:
        scheduler.leave(running)
        await asyncio.sleep(0)
        running = next(s for s in waiting if s.state == RUNNING)
        order.append(running)
    await asyncio.gather(*tasks)
    return order


# --- admission ----------------------------------------------------------------------------------


async def test_admits_up_to_max_num_seqs_then_queues():
    scheduler = BatchScheduler(2)
    a, b, c = seq(scheduler), seq(scheduler), seq(scheduler)
    tasks = await start_all(scheduler, a, b, c)
    assert (scheduler.running, scheduler.waiting) == (2, 1)
    assert not tasks[2].done()
    scheduler.leave(a)
    await asyncio.wait_for(tasks[2], 5)
    assert (scheduler.running, scheduler.waiting) == (2, 0)
    scheduler.leave(b)
    scheduler.leave(c)
    assert scheduler.running == 0


async def test_fcfs_serves_waiting_requests_in_arrival_order_whatever_their_priority():
    scheduler = BatchScheduler(1, "fcfs")
    holder = seq(scheduler)
    await scheduler.start(holder)
    waiting = [seq(scheduler, priority=p, arrival=i) for i, p in enumerate((5, 1, 3, 0))]
    assert await admission_order(scheduler, holder, waiting) == waiting


async def test_priority_policy_orders_waiting_requests_by_priority_then_arrival():
    scheduler = BatchScheduler(1, "priority")
    holder = seq(scheduler)
    await scheduler.start(holder)
    p5, p1_early, p1_late, p3 = (seq(scheduler, priority=p, arrival=t) for p, t in ((5, 1), (1, 2), (1, 3), (3, 4)))
    order = await admission_order(scheduler, holder, [p5, p1_late, p3, p1_early])
    assert order == [p1_early, p1_late, p3, p5]  # lower value first, as vLLM's priority scheduling


async def test_a_newcomer_cannot_overtake_the_queue():
    scheduler = BatchScheduler(1)
    holder, waiter = seq(scheduler), seq(scheduler)
    await scheduler.start(holder)
    tasks = await start_all(scheduler, waiter)
    scheduler.leave(holder)  # the slot goes to the waiter, not to whoever asks next
    assert not scheduler.try_admit()
    await asyncio.wait_for(tasks[0], 5)
    assert waiter.state == RUNNING and scheduler.running == 1


async def test_a_cancelled_waiter_leaves_the_queue():
    scheduler = BatchScheduler(1)
    holder, gone, stays = seq(scheduler), seq(scheduler), seq(scheduler)
    await scheduler.start(holder)
    gone_task, stays_task = await start_all(scheduler, gone, stays)
    gone_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone_task
    scheduler.leave(gone)
    assert scheduler.waiting == 1
    scheduler.leave(holder)
    await asyncio.wait_for(stays_task, 5)
    assert (scheduler.running, scheduler.waiting) == (1, 0)


async def test_a_slot_handed_to_a_cancelled_waiter_is_passed_on():
    scheduler = BatchScheduler(1)
    holder, first, second = seq(scheduler), seq(scheduler), seq(scheduler)
    await scheduler.start(holder)
    first_task, second_task = await start_all(scheduler, first, second)
    scheduler.leave(holder)  # hands the slot to `first` ...
    first_task.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first_task
    scheduler.leave(first)  # what the server's `finally` does
    await asyncio.wait_for(second_task, 5)
    assert (scheduler.running, scheduler.waiting) == (1, 0)
    scheduler.leave(second)
    assert scheduler.running == 0


def test_rejects_a_batch_of_zero():
    with pytest.raises(ValueError, match="max_num_seqs"):
        BatchScheduler(0)


# --- KV blocks and preemption -------------------------------------------------------------------


async def test_a_waiting_request_never_preempts_it_waits_for_blocks():
    scheduler = BatchScheduler(8, "priority", BlockPool(4, prefix_caching=False))
    low = seq(scheduler, priority=9, tokens=48)  # 3 of the 4 blocks
    await scheduler.start(low)
    urgent = seq(scheduler, priority=0, arrival=1, tokens=32)  # needs 2: the batch has room, the cache not
    (task,) = await start_all(scheduler, urgent)
    assert urgent.state == WAITING and low.state == RUNNING and scheduler.preemptions == 0
    small = seq(scheduler, priority=5, arrival=2, tokens=1)  # would fit, but the line is held by `urgent`
    await start_all(scheduler, small)
    assert small.state == WAITING
    scheduler.leave(low)
    await asyncio.wait_for(task, 5)
    assert urgent.state == RUNNING and small.state == RUNNING


async def test_priority_preempts_the_running_request_with_the_largest_priority_then_latest_arrival():
    scheduler = BatchScheduler(8, "priority", BlockPool(4, prefix_caching=False))
    a = seq(scheduler, priority=1, arrival=1, tokens=16)  # 1 block each, a's is full
    b = seq(scheduler, priority=5, arrival=2, tokens=16)
    c = seq(scheduler, priority=5, arrival=3, tokens=16)  # same priority as b, later: the victim
    d = seq(scheduler, priority=3, arrival=4, tokens=16)
    for s in (a, b, c, d):
        await scheduler.start(s)
    assert scheduler.pool.free == 0
    assert scheduler.grow(a)  # a's next token needs a block: c gives up its own
    assert (c.state, c.preempted, c.blocks) == (WAITING, True, 0)
    assert [s.state for s in (a, b, d)] == [RUNNING] * 3
    assert (scheduler.preemptions, scheduler.waiting, a.tokens) == (1, 1, 17)


async def test_fcfs_preempts_the_request_that_started_last():
    scheduler = BatchScheduler(8, "fcfs", BlockPool(3, prefix_caching=False))
    first, second, third = (seq(scheduler, priority=p, tokens=16) for p in (9, 0, 5))
    for s in (first, second, third):
        await scheduler.start(s)
    assert scheduler.grow(first)
    assert third.preempted and not second.preempted


async def test_a_request_with_the_lowest_priority_preempts_itself():
    scheduler = BatchScheduler(8, "priority", BlockPool(2, prefix_caching=False))
    staff = seq(scheduler, priority=-10, arrival=1, tokens=16)
    student = seq(scheduler, priority=-1, arrival=2, tokens=16)
    await scheduler.start(staff)
    await scheduler.start(student)
    assert not scheduler.grow(student)  # nobody below it: it gives its block back and waits
    assert student.preempted and student.state == WAITING and staff.state == RUNNING
    assert scheduler.pool.free == 1


async def test_a_preempted_request_waits_behind_higher_priorities_and_recomputes_what_it_had():
    scheduler = BatchScheduler(8, "priority", BlockPool(4, prefix_caching=False))
    low = seq(scheduler, priority=5, arrival=1, tokens=20)  # 2 blocks
    high = seq(scheduler, priority=0, arrival=2, tokens=32)  # 2 blocks, the last one full
    await scheduler.start(low)
    await scheduler.start(high)
    for _ in range(3):
        assert scheduler.grow(low)  # generated 3 tokens: 23 in its KV cache
    assert scheduler.grow(high)  # needs a 5th block: low is preempted
    assert low.preempted and scheduler.pool.free == 1
    other = seq(scheduler, priority=1, arrival=3, tokens=48)  # 3 blocks: waits, ahead of low (1 < 5)
    (other_task,) = await start_all(scheduler, other)
    resumed = asyncio.create_task(scheduler.resume(low))
    await asyncio.sleep(0)
    assert other.state == WAITING and low.state == WAITING
    scheduler.leave(high)  # 4 blocks free: other takes 3, low (needs 2) waits on
    await asyncio.wait_for(other_task, 5)
    assert other.state == RUNNING and low.state == WAITING
    scheduler.leave(other)
    computed = await asyncio.wait_for(resumed, 5)
    assert (low.state, low.preempted, computed) == (RUNNING, False, 0)
    assert low.tokens == 23 and low.blocks == 2  # it recomputes prompt + the tokens it had generated
    assert low.num_preemptions == 1


# --- prefix cache -------------------------------------------------------------------------------

SYSTEM = "You are a helpful assistant for the university's students. " * 8  # 480 chars: 7 full blocks


async def test_a_prompt_sharing_a_prefix_finds_its_blocks_in_the_cache():
    scheduler = BatchScheduler(8, "fcfs", BlockPool(64, prefix_caching=True))
    first_text = SYSTEM + "What is a queue?"
    first = seq(scheduler, tokens=-(-len(first_text) // 4), text=first_text)
    assert await scheduler.start(first) == 0
    scheduler.leave(first)
    second_text = SYSTEM + "What is a replica, and who decides?"
    second = seq(scheduler, tokens=-(-len(second_text) // 4), text=second_text)
    computed = await scheduler.start(second)
    assert computed == 7 * 16  # the shared system prompt's full blocks
    assert (scheduler.prefix_queries, scheduler.prefix_hits) == (first.tokens + second.tokens, 7 * 16)


async def test_the_last_prompt_token_is_always_computed():
    scheduler = BatchScheduler(8, "fcfs", BlockPool(64, prefix_caching=True))
    text = "x" * 128  # exactly 2 blocks
    first = seq(scheduler, tokens=32, text=text)
    await scheduler.start(first)
    scheduler.leave(first)
    again = seq(scheduler, tokens=32, text=text)
    assert await scheduler.start(again) == 16  # not 32: the last block is recomputed for its logits


async def test_blocks_in_use_are_shared_not_copied():
    pool = BlockPool(16, prefix_caching=True)
    scheduler = BatchScheduler(8, "fcfs", pool)
    a = seq(scheduler, tokens=128, text=SYSTEM + "a" * 32)
    await scheduler.start(a)
    free_before = pool.free
    b = seq(scheduler, tokens=128, text=SYSTEM + "b" * 32)
    assert await scheduler.start(b) == 7 * 16
    assert free_before - pool.free == 8 - 7  # b took one new block; the seven are a's


async def test_cached_blocks_are_evicted_least_recently_freed_first():
    pool = BlockPool(4, prefix_caching=True)
    scheduler = BatchScheduler(8, "fcfs", pool)
    old = seq(scheduler, tokens=48, text="o" * 192)  # 3 full blocks
    await scheduler.start(old)
    scheduler.leave(old)
    new = seq(scheduler, tokens=48, text="n" * 192)
    await scheduler.start(new)  # one plain free block, then two of old's evicted, its last block first
    scheduler.leave(new)
    assert pool.cached == 3 + 1  # new's three, and old's first block
    again_old = seq(scheduler, tokens=48, text="o" * 192)
    assert await scheduler.start(again_old) == 16  # only old's first block survived


async def test_without_prefix_caching_nothing_is_found_or_counted():
    scheduler = BatchScheduler(8, "fcfs", BlockPool(64, prefix_caching=False))
    for _ in range(2):
        s = seq(scheduler, tokens=128, text=SYSTEM + "same question")
        assert await scheduler.start(s) == 0
        scheduler.leave(s)
    assert (scheduler.prefix_queries, scheduler.prefix_hits, scheduler.pool.cached) == (0, 0, 0)


async def test_the_next_turn_finds_the_answer_it_sends_back():
    from flotilla.sim.responses import generated_text

    scheduler = BatchScheduler(8, "fcfs", BlockPool(64, prefix_caching=True))
    question = "q" * 100
    turn1 = seq(scheduler, tokens=25, text=question)
    await scheduler.start(turn1)
    for _ in range(40):
        assert scheduler.grow(turn1)
    scheduler.leave(turn1)
    history = question + generated_text(40) + "and then?"
    turn2 = seq(scheduler, tokens=-(-len(history) // 4), text=history)
    computed = await scheduler.start(turn2)
    assert computed > 16  # past the question's one full block: the blocks the answer filled are found too
    assert computed == (len(question + generated_text(40)) // 64) * 16


# --- invariants under any sequence of events ----------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from flotilla.sim.kv_cache import blocks_for  # noqa: E402

TEXTS = ["a" * 200, "a" * 130 + "b" * 90, "b" * 300, "c" * 64]
ARRIVE = st.tuples(st.just("arrive"), st.integers(0, 3), st.integers(-2, 2))  # text, priority
GROW = st.tuples(st.just("grow"), st.integers(0, 30), st.integers(1, 40))  # which running, how many tokens
LEAVE = st.tuples(st.just("leave"), st.integers(0, 30), st.just(0))  # which sequence
# A busy start (so the cache runs short as sequences grow), then anything.
EVENTS = st.tuples(st.lists(ARRIVE, min_size=3, max_size=5), st.lists(st.one_of(ARRIVE, GROW, GROW, LEAVE),
                                                                        max_size=50)).map(lambda t: t[0] + t[1])
POOL_BLOCKS = 10  # 160 tokens: three prompts of up to 75 tokens fill it soon


def check(scheduler: BatchScheduler, seqs: list[Sequence]) -> None:
    pool = scheduler.pool
    running = [s for s in seqs if s.state == RUNNING]
    assert scheduler.running == len(running) <= scheduler.max_num_seqs
    assert scheduler.waiting == sum(1 for s in seqs if s.state == WAITING)
    assert all(s.blocks == blocks_for(s.tokens) for s in running)
    assert all(s.blocks == 0 and not s.held for s in seqs if s.state != RUNNING)
    # Physical blocks: shared cached ones count once, each sequence's own plain ones once each.
    in_use = pool.num_blocks - pool.free
    assert in_use == len(pool._in_use) + sum(s.blocks - len(s.held) for s in running)
    assert sum(pool._in_use.values()) == sum(len(s.held) for s in running)
    assert pool.free >= 0


@settings(max_examples=150, deadline=None)
@given(policy=st.sampled_from(["fcfs", "priority"]), caching=st.booleans(), events=EVENTS)
def test_blocks_and_counts_stay_consistent_whatever_happens(policy, caching, events):
    async def scenario() -> None:
        scheduler = BatchScheduler(3, policy, BlockPool(POOL_BLOCKS, prefix_caching=caching))
        seqs: list[Sequence] = []
        tasks = []
        for i, (kind, a, b) in enumerate(events):
            if kind == "arrive":
                text = TEXTS[a]
                s = seq(scheduler, priority=b, arrival=i, tokens=-(-len(text) // 4), text=text)
                seqs.append(s)
                tasks.append(asyncio.create_task(scheduler.start(s)))
            elif kind == "grow":
                running = [s for s in seqs if s.state == RUNNING]
                if running:
                    target = running[a % len(running)]
                    for _ in range(b):
                        if target.tokens >= 150 or not scheduler.grow(target):  # 150 fits the pool alone
                            break
            elif seqs:
                scheduler.leave(seqs[a % len(seqs)])
            await asyncio.sleep(0)  # let admissions and call_soon'd steps happen
            check(scheduler, seqs)
        for s in seqs:
            scheduler.leave(s)
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        check(scheduler, seqs)
        assert scheduler.pool.free == POOL_BLOCKS and not scheduler.pool._in_use
        assert scheduler.running == 0 and scheduler.waiting == 0

    asyncio.run(scenario())
