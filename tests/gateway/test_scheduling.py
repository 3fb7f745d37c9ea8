"""Priority, fairness and thresholds under overload, end to end through real processes."""

import asyncio
import re
import time
import urllib.request

import openai
import pytest
from gwstack import PEERS, STAFF, STUDENTS, spec_for
from procs import gateway, sim_engine

SLOW = {"ttft_ms": 150, "itl_ms": 10, "max_num_seqs": 1, "deterministic": True}


def queue_depth(gw: str, priority: int) -> int:
    text = urllib.request.urlopen(gw + "/metrics").read().decode()
    match = re.search(rf'flotilla_queue_depth{{model="chat",priority="{priority}"}} (\S+)', text)
    return int(float(match.group(1))) if match else 0


async def wait_depth(gw, priority, n, timeout=20):
    deadline = time.monotonic() + timeout
    while queue_depth(gw, priority) < n:
        assert time.monotonic() < deadline, f"queue never reached {n} at priority {priority}"
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def saturated(tmp_path_factory):
    """One replica that takes a single request at a time (~80 ms each)."""
    tmp = tmp_path_factory.mktemp("saturated")
    with sim_engine(tmp, **SLOW) as sim:
        with gateway(tmp, spec_for({"maxConcurrency": 1}), {"chat": [sim]}) as gw:
            yield gw


_clients: dict[tuple[str, str, int], openai.AsyncOpenAI] = {}


async def chat(gw, key, tag, done: list, **kw):
    # One client per token, reused: building one takes longer than a queued request's turn.
    slot = (gw, key, id(asyncio.get_running_loop()))
    c = _clients.get(slot)
    if c is None:
        c = _clients[slot] = openai.AsyncOpenAI(base_url=gw + "/v1", api_key=key, max_retries=0)
    await c.chat.completions.create(model="chat", messages=[{"role": "user", "content": tag}], max_tokens=4, **kw)
    done.append(tag)


async def test_high_priority_sent_later_starts_before_queued_low(saturated):
    done: list[str] = []
    await chat(saturated, STAFF, "warm-staff", [])  # connections open before the race starts
    await chat(saturated, STUDENTS, "warm-students", [])
    lows = [asyncio.create_task(chat(saturated, STUDENTS, f"low{i}", done)) for i in range(6)]
    await wait_depth(saturated, 1, 5)  # one runs, five wait
    highs = [asyncio.create_task(chat(saturated, STAFF, f"high{i}", done)) for i in range(3)]
    await asyncio.gather(*lows, *highs)
    last_high = max(done.index(f"high{i}") for i in range(3))
    lows_before = [t for t in done[:last_high] if t.startswith("low")]
    # At most the running low and one that may have been handed its slot just before the highs queued.
    assert len(lows_before) <= 2, done


async def test_equal_priority_tokens_share_fairly(saturated):
    done: list[str] = []
    await chat(saturated, PEERS[1], "warm-b", [])
    busy = [asyncio.create_task(chat(saturated, PEERS[0], f"a{i}", done)) for i in range(7)]
    await wait_depth(saturated, 5, 6)
    quiet = [asyncio.create_task(chat(saturated, PEERS[1], f"b{i}", done)) for i in range(2)]
    await asyncio.gather(*busy, *quiet)
    # Round robin: b0 and b1 are served within a's next two turns, not after all of a's backlog.
    assert done.index("b1") < done.index("a4"), done


async def test_over_threshold_is_429_with_retry_after(tmp_path):
    spec = spec_for({"maxConcurrency": 1})
    spec["gateway"]["tokens"][1]["threshold"] = 2
    with sim_engine(tmp_path, **SLOW) as sim, gateway(tmp_path, spec, {"chat": [sim]}) as gw:
        done: list[str] = []
        tasks = [asyncio.create_task(chat(gw, STUDENTS, f"s{i}", done)) for i in range(3)]
        await wait_depth(gw, 1, 2)
        c = openai.AsyncOpenAI(base_url=gw + "/v1", api_key=STUDENTS, max_retries=0)
        with pytest.raises(openai.RateLimitError) as info:
            await c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}], max_tokens=1)
        assert info.value.response.headers["Retry-After"] == "1"
        assert "at most 2 may wait" in info.value.message
        # staff is not limited by the students' threshold
        await chat(gw, STAFF, "staff", done)
        await asyncio.gather(*tasks)
        await c.close()
        assert sorted(done) == ["s0", "s1", "s2", "staff"]


async def test_max_queue_wait_ends_with_503(tmp_path):
    spec = spec_for({"maxConcurrency": 1}, maxQueueWaitS=0.2)
    with sim_engine(tmp_path, ttft_ms=1000, itl_ms=10, max_num_seqs=1, deterministic=True) as sim, \
            gateway(tmp_path, spec, {"chat": [sim]}) as gw:
        done: list[str] = []
        first = asyncio.create_task(chat(gw, STAFF, "first", done))
        await asyncio.sleep(0.3)
        c = openai.AsyncOpenAI(base_url=gw + "/v1", api_key=STAFF, max_retries=0)
        with pytest.raises(openai.InternalServerError) as info:
            await c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}], max_tokens=1)
        assert info.value.status_code == 503
        assert "waited" in info.value.message
        await first
        await c.close()
