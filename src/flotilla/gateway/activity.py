"""What `flotilla status` reads from /metrics beyond the counters: the oldest waiting request per
model and priority, and requests, errors and tokens of the last few minutes.

Prometheus computes rates from the counters; these gauges are for a reader without a Prometheus
server (`flotilla status` against a port-forwarded gateway). Labels stay bounded: models come from
the spec, priorities are those of requests waiting right now, outcomes and directions are fixed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from flotilla.gateway.dispatch.base import Ticket

WINDOW_S = 300  # "the last minutes" of `flotilla status`
_BUCKET_S = 10
_BUCKETS = WINDOW_S // _BUCKET_S
# (name, label) of each windowed count: requests by outcome, tokens by direction.
_KINDS = (("requests", "ok"), ("requests", "client_error"), ("requests", "server_error"),
          ("tokens", "prompt"), ("tokens", "completion"))


def outcome_of(status: int) -> str:
    return "ok" if status < 400 else "client_error" if status < 500 else "server_error"


class WaitingRequests:
    """Requests of this gateway waiting for a slot (tickets in `Dispatcher.acquire`)."""

    def __init__(self) -> None:
        self._tickets: dict[int, Ticket] = {}

    def enter(self, ticket: Ticket) -> None:
        self._tickets[id(ticket)] = ticket

    def leave(self, ticket: Ticket) -> None:
        self._tickets.pop(id(ticket), None)

    def oldest(self, now: float | None = None) -> dict[tuple[str, int], float]:
        """Seconds the oldest waiting request has waited, by (model, priority)."""
        now = time.monotonic() if now is None else now
        oldest: dict[tuple[str, int], float] = {}
        for t in self._tickets.values():
            key = (t.model, t.priority)
            age = now - t.created_at
            if age > oldest.get(key, -1.0):
                oldest[key] = age
        return oldest


class RecentActivity:
    """Counts per model over a sliding window of WINDOW_S seconds, in 10 s buckets."""

    def __init__(self, models: Iterable[str], clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self._counts = {m: {k: [0] * _BUCKETS for k in _KINDS} for m in models}
        self._stamps = [0] * _BUCKETS  # which 10 s slot each bucket currently holds

    def _bucket(self) -> int:
        slot = int((self._clock() - self._started) // _BUCKET_S)
        index = slot % _BUCKETS
        if self._stamps[index] != slot:  # a bucket from a full window ago: start it afresh
            self._stamps[index] = slot
            for kinds in self._counts.values():
                for counts in kinds.values():
                    counts[index] = 0
        return index

    def add(self, model: str, kind: tuple[str, str], amount: int = 1) -> None:
        kinds = self._counts.get(model)
        if kinds is not None and amount:
            kinds[kind][self._bucket()] += amount

    def request(self, model: str, status: int) -> None:
        self.add(model, ("requests", outcome_of(status)))

    def finished(self, model: str, status: int, prompt: int | None, completion: int | None) -> None:
        """One answered request and its tokens (one bucket lookup for all three counts)."""
        kinds = self._counts.get(model)
        if kinds is None:
            return
        index = self._bucket()
        kinds[("requests", outcome_of(status))][index] += 1
        if prompt:
            kinds[("tokens", "prompt")][index] += prompt
        if completion:
            kinds[("tokens", "completion")][index] += completion

    def tokens(self, model: str, prompt: int | None, completion: int | None) -> None:
        self.add(model, ("tokens", "prompt"), prompt or 0)
        self.add(model, ("tokens", "completion"), completion or 0)

    def window_s(self) -> float:
        """The span the sums cover: WINDOW_S, or less while the gateway is younger than that."""
        return min(float(WINDOW_S), self._clock() - self._started)

    def sums(self) -> dict[str, dict[tuple[str, str], int]]:
        current = self._bucket()
        live = {i for i in range(_BUCKETS) if self._stamps[current] - self._stamps[i] < _BUCKETS}
        return {m: {k: sum(c[i] for i in live) for k, c in kinds.items()} for m, kinds in self._counts.items()}


class ActivityCollector(Collector):
    def __init__(
        self, waiting: WaitingRequests, recent: RecentActivity, priority_label: Callable[[int], str] = str
    ) -> None:
        self._waiting = waiting
        self._recent = recent
        self._priority_label = priority_label  # bounded: a token's priority, else "other"

    def collect(self) -> Iterable[GaugeMetricFamily]:
        oldest = GaugeMetricFamily(
            "flotilla_queue_oldest_wait_seconds",
            "Age of the oldest request waiting for a slot, by model and priority (priority=\"all\": any).",
            labels=["model", "priority"],
        )
        ages = self._waiting.oldest()
        sums = self._recent.sums()
        labelled: dict[tuple[str, str], float] = {}
        for (model, priority), age in ages.items():
            key = (model, self._priority_label(priority))
            labelled[key] = max(labelled.get(key, 0.0), age)
        for (model, label), age in sorted(labelled.items()):
            oldest.add_metric([model, label], age)
        for model in sums:
            oldest.add_metric([model, "all"], max((a for (m, _), a in ages.items() if m == model), default=0.0))
        yield oldest
        yield GaugeMetricFamily(
            "flotilla_recent_window_seconds", "Span of the flotilla_recent_* gauges (300 s, less after a start).",
            value=self._recent.window_s(),
        )
        requests = GaugeMetricFamily(
            "flotilla_recent_requests", "Requests answered in the recent window, by model and outcome.",
            labels=["model", "outcome"],
        )
        tokens = GaugeMetricFamily(
            "flotilla_recent_tokens", "Tokens reported in the recent window, by model and direction.",
            labels=["model", "direction"],
        )
        for model, counts in sums.items():
            for (name, label), value in counts.items():
                (requests if name == "requests" else tokens).add_metric([model, label], value)
        yield requests
        yield tokens
