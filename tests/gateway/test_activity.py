"""The gauges behind `flotilla status`: oldest waiting request, and the sliding 5-minute window."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from flotilla.gateway.activity import WINDOW_S, ActivityCollector, RecentActivity, WaitingRequests
from flotilla.gateway.dispatch.base import Ticket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ticket(model: str, priority: int, created_at: float) -> Ticket:
    return Ticket("id", model, "tok", priority, 5, created_at)


def test_oldest_wait_per_model_and_priority():
    waiting = WaitingRequests()
    a, b, c = ticket("chat", 1, 10.0), ticket("chat", 1, 12.0), ticket("chat", 9, 14.0)
    for t in (a, b, c):
        waiting.enter(t)
    assert waiting.oldest(now=20.0) == {("chat", 1): 10.0, ("chat", 9): 6.0}
    waiting.leave(a)
    assert waiting.oldest(now=20.0) == {("chat", 1): 8.0, ("chat", 9): 6.0}
    waiting.leave(b)
    waiting.leave(c)
    waiting.leave(c)  # twice is harmless
    assert waiting.oldest(now=20.0) == {}


def test_window_counts_and_forgets_after_five_minutes():
    clock = Clock()
    recent = RecentActivity(["chat"], clock)
    recent.request("chat", 200)
    recent.request("chat", 429)
    recent.request("chat", 502)
    recent.tokens("chat", 7, 11)
    recent.request("unknown-model", 200)  # not a spec model: ignored, no new label
    sums = recent.sums()
    assert set(sums) == {"chat"}
    assert sums["chat"][("requests", "ok")] == 1
    assert sums["chat"][("requests", "client_error")] == 1
    assert sums["chat"][("requests", "server_error")] == 1
    assert sums["chat"][("tokens", "prompt")] == 7 and sums["chat"][("tokens", "completion")] == 11

    clock.now += 150
    recent.request("chat", 200)
    assert recent.sums()["chat"][("requests", "ok")] == 2
    assert recent.window_s() == 150

    clock.now += WINDOW_S - 100  # the first requests are now older than the window
    assert recent.sums()["chat"][("requests", "ok")] == 1
    assert recent.sums()["chat"][("tokens", "completion")] == 0
    assert recent.window_s() == WINDOW_S

    clock.now += 3 * WINDOW_S  # long idle: everything gone, even buckets never revisited
    assert all(v == 0 for v in recent.sums()["chat"].values())


def test_collector_exposition():
    clock = Clock()
    waiting, recent = WaitingRequests(), RecentActivity(["chat", "idle"], clock)
    registry = CollectorRegistry()
    registry.register(ActivityCollector(waiting, recent))
    waiting.enter(ticket("chat", 3, 0.0))
    recent.request("chat", 200)
    text = generate_latest(registry).decode()
    assert 'flotilla_queue_oldest_wait_seconds{model="chat",priority="3"}' in text
    assert 'flotilla_queue_oldest_wait_seconds{model="idle",priority="all"} 0.0' in text
    assert 'flotilla_recent_requests{model="chat",outcome="ok"} 1.0' in text
    assert 'flotilla_recent_tokens{direction="prompt",model="idle"} 0.0' in text
