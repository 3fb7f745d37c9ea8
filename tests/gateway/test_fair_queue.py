from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flotilla.gateway.dispatch.fair_queue import FairPriorityQueue


def drain(q):
    out = []
    while len(q):
        out.append(q.pop())
    return out


def test_higher_priority_first_regardless_of_arrival():
    q = FairPriorityQueue()
    q.push(1, "students", "s1")
    q.push(1, "students", "s2")
    q.push(10, "staff", "a1")
    assert [item for _, _, item in drain(q)] == ["a1", "s1", "s2"]


def test_equal_priority_tokens_take_turns_and_each_is_fifo():
    q = FairPriorityQueue()
    for i in range(4):
        q.push(1, "busy", f"b{i}")
    q.push(1, "quiet", "q0")
    q.push(1, "other", "o0")
    order = [item for _, _, item in drain(q)]
    # The busy token queued four first, yet the others are served at its second turn, not after it.
    assert order == ["b0", "q0", "o0", "b1", "b2", "b3"]


def test_counts_by_token_and_priority():
    q = FairPriorityQueue()
    q.push(5, "a", 1)
    q.push(5, "a", 2)
    q.push(1, "b", 3)
    assert q.waiting_for_token("a") == 2 and q.waiting_for_token("b") == 1
    assert q.depth_by_priority() == {5: 2, 1: 1}
    q.pop()
    assert q.waiting_for_token("a") == 1
    assert q.remove(5, "a", 2)
    assert not q.remove(5, "a", 2)
    assert q.waiting_for_token("a") == 0 and q.depth_by_priority() == {1: 1}


def test_pop_empty_raises():
    with pytest.raises(IndexError):
        FairPriorityQueue().pop()


ops = st.lists(st.tuples(st.integers(0, 3), st.sampled_from("abc")), max_size=60)


@given(ops)
def test_property_priority_order_and_per_token_fifo(pushes):
    q = FairPriorityQueue()
    for seq, (priority, token) in enumerate(pushes):
        q.push(priority, token, (priority, token, seq))
    out = [item for _, _, item in drain(q)]
    assert sorted(out, key=lambda x: x[2]) == [(p, t, i) for i, (p, t) in enumerate(pushes)]
    priorities = [p for p, _, _ in out]
    assert priorities == sorted(priorities, reverse=True)
    for token in "abc":
        seqs = [s for p, t, s in out if t == token]
        by_priority = {}
        for p, t, s in out:
            if t == token:
                by_priority.setdefault(p, []).append(s)
        for seq_list in by_priority.values():
            assert seq_list == sorted(seq_list)
        assert len(seqs) == sum(1 for _, t in pushes if t == token)


@given(st.lists(st.sampled_from("abcd"), min_size=1, max_size=80))
def test_property_round_robin_within_a_priority(tokens):
    """In any prefix of the output, two tokens still waiting differ by at most one served request."""
    q = FairPriorityQueue()
    for i, token in enumerate(tokens):
        q.push(1, token, i)
    total = Counter(tokens)
    served = Counter()
    for _ in range(len(tokens)):
        _, token, _ = q.pop()
        served[token] += 1
        active = [t for t in total if served[t] < total[t] or t == token]
        counts = [served[t] for t in active if served[t] < total[t]]
        if counts:
            assert max(counts) - min(counts) <= 1
