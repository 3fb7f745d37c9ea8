"""Choosing a replica: prefix-aware routing and its prompt blocks, decode-speed limits."""

import subprocess
import sys

from flotilla.gateway.prefix_blocks import BLOCK_BYTES, prompt_blocks
from flotilla.gateway.replicas import Replica, ReplicaPool
from flotilla.gateway.routing import PrefixAware
from flotilla.gateway.speed import SpeedGovernor


def chat(*turns: str) -> dict:
    roles = ["system", "user", "assistant"]
    return {"messages": [{"role": roles[min(i, 2) if i < 2 else 1 + i % 2], "content": t} for i, t in enumerate(turns)]}


SYSTEM = "You are a careful assistant for the physics department. " * 20  # ~1.1 KB


def test_prompts_sharing_leading_text_share_leading_blocks():
    first = prompt_blocks(chat(SYSTEM, "What is entropy? " * 30))
    second = prompt_blocks(chat(SYSTEM, "What is enthalpy? " * 30))
    shared = len(SYSTEM) // BLOCK_BYTES  # whole blocks of the common system prompt
    assert len(first) > shared + 1 and len(second) > shared + 1
    assert first[:shared] == second[:shared]
    assert all(a != b for a, b in zip(first[shared + 1 :], second[shared + 1 :]))  # the chain diverges
    assert prompt_blocks(chat("short")) == ()  # under one block: nothing to route by


def test_blocks_are_the_same_in_every_process():
    code = (
        "from flotilla.gateway.prefix_blocks import prompt_blocks;"
        f"print(prompt_blocks({{'prompt': {'x' * 1000!r}}}))"
    )
    outputs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2")
    }
    assert outputs == {str(prompt_blocks({"prompt": "x" * 1000})) + "\n"}


def replicas(n: int, capacity: int = 8) -> list[Replica]:
    out = []
    for i in range(n):
        r = Replica("m", f"http://10.0.0.{i}:8000", capacity)
        r.healthy = True
        out.append(r)
    return out


def test_prefix_aware_sends_a_conversation_back_to_its_replica():
    router = PrefixAware()
    rs = replicas(4)
    turn1 = prompt_blocks(chat(SYSTEM, "Tell me about heat."))
    home = router.choose(rs, turn1)
    home.in_flight += 1  # now it is the busier one: least-loaded alone would go elsewhere
    turn2 = prompt_blocks(chat(SYSTEM, "Tell me about heat.", "Heat is energy in transit.", "And work?"))
    assert router.choose(rs, turn2) is home
    assert router.affinity(turn2, home.url) == len(turn2)


def test_prefix_aware_gives_way_to_balance_when_the_home_replica_is_much_busier():
    router = PrefixAware(max_imbalance=0.25)
    rs = replicas(2, capacity=8)
    blocks = prompt_blocks(chat(SYSTEM, "Q"))
    home = router.choose(rs, blocks)
    home.in_flight = 3  # 3/8 busier than the idle one: more than 0.25
    other = router.choose(rs, blocks)
    assert other is not home
    assert router.affinity(blocks, other.url) == len(blocks)  # the prompt now lives there too


def test_prefix_aware_forgets_the_oldest_blocks_first():
    router = PrefixAware(max_blocks=10)
    rs = replicas(2)
    old = prompt_blocks({"prompt": "a" * BLOCK_BYTES * 8})
    new = prompt_blocks({"prompt": "b" * BLOCK_BYTES * 8})
    router.choose(rs, old)
    router.choose(rs, new)
    assert all(router.affinity(old, r.url) == 0 for r in rs)  # evicted (8 + 8 > 10, oldest first)
    assert max(router.affinity(new, r.url) for r in rs) == 8


def pool_with_prefix_routing() -> ReplicaPool:
    pool = ReplicaPool("m", 4, "prefix-aware")
    pool.set_urls(["http://10.0.0.1:8000", "http://10.0.0.2:8000"])
    for r in pool.replicas:
        pool.mark(r, True)
    return pool


def test_the_pool_routes_by_blocks_among_replicas_with_room():
    pool = pool_with_prefix_routing()
    blocks = prompt_blocks(chat(SYSTEM, "Q"))
    home = pool.pick(blocks)
    home.in_flight = 4  # full: a replica with room is chosen however good the match
    assert pool.pick(blocks) is not home


def itl_metrics(total_s: float, tokens: int) -> bytes:
    return (
        "# TYPE vllm:inter_token_latency_seconds histogram\n"
        f'vllm:inter_token_latency_seconds_sum{{model_name="m"}} {total_s}\n'
        f'vllm:inter_token_latency_seconds_count{{model_name="m"}} {tokens}\n'
    ).encode()


def test_speed_governor_lowers_the_limit_below_the_floor_and_raises_it_back():
    replica = replicas(1, capacity=8)[0]
    governor = SpeedGovernor(min_tokens_per_second=50)
    assert not governor.observe(replica, itl_metrics(0, 0), running=8)  # first reading: a baseline
    # 1,000 tokens in 25 s of inter-token time: 40 tokens/s per request, under the floor of 50.
    assert governor.observe(replica, itl_metrics(25, 1000), running=8)
    assert replica.speed_limit == 7 and replica.free_slots == 7 - replica.in_flight
    governor.observe(replica, itl_metrics(50, 2000), running=7)
    assert replica.speed_limit == 6
    # Fast again (100 tokens/s) while the limit holds it back: one more at a time.
    governor.observe(replica, itl_metrics(60, 3000), running=6)
    assert replica.speed_limit == 7
    governor.observe(replica, itl_metrics(70, 4000), running=7)
    assert replica.speed_limit is None  # back at maxConcurrency: no limit of its own


def test_speed_governor_needs_enough_tokens_to_judge():
    replica = replicas(1, capacity=8)[0]
    governor = SpeedGovernor(min_tokens_per_second=50)
    governor.observe(replica, itl_metrics(0, 0), running=8)
    assert not governor.observe(replica, itl_metrics(1, 10), running=8)  # 10 tokens: too few
    assert replica.speed_limit is None
