"""The gateway's Prometheus metrics. Queue depth and in-flight are read from live state at scrape time.

Label values never come from a client: a client may lower its priority to any integer with a body
field, so the `priority` label is the priority of a token (a set the operator controls), and any
other value is counted under OTHER_PRIORITY.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from flotilla.gateway.activity import ActivityCollector, RecentActivity, WaitingRequests
from flotilla.gateway.replicas import ReplicaPool
from flotilla.gateway.usage_recorder import UsageRecorder
from flotilla.store.records import token_count

OTHER_PRIORITY = "other"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class _LiveStateCollector(Collector):
    def __init__(
        self,
        pools: dict[str, ReplicaPool],
        queue_depths: Callable[[], dict[tuple[str, int], int]],
        usage: UsageRecorder | None,
        priority_label: Callable[[int], str],
        dispatcher_status: Callable[[], tuple[bool, dict]] | None = None,
    ):
        self._pools = pools
        self._queue_depths = queue_depths
        self._usage = usage
        self._priority_label = priority_label
        self._dispatcher_status = dispatcher_status

    def collect(self) -> Iterable[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "flotilla_queue_depth",
            "Requests waiting at this gateway for a replica slot (several gateways: sum them).",
            labels=["model", "priority"],
        )
        depths = self._queue_depths()
        labelled: dict[tuple[str, str], int] = {}
        for (model, priority), count in depths.items():
            key = (model, self._priority_label(priority))
            labelled[key] = labelled.get(key, 0) + count
        for (model, priority), count in sorted(labelled.items()):
            depth.add_metric([model, priority], count)
        for model in self._pools:  # a per-model total, present even when 0, for KEDA and dashboards
            depth.add_metric([model, "all"], sum(c for (m, _), c in depths.items() if m == model))
        yield depth
        in_flight = GaugeMetricFamily(
            "flotilla_replica_in_flight", "Requests the gateway has on each replica.", labels=["model", "replica"]
        )
        healthy = GaugeMetricFamily("flotilla_replica_healthy", "1 when the replica passes health checks.", labels=["model", "replica"])
        capacity = GaugeMetricFamily(
            "flotilla_replica_free_slots", "Slots the gateway may still fill on each replica.", labels=["model", "replica"]
        )
        for model, pool in self._pools.items():
            for replica in pool.replicas:
                in_flight.add_metric([model, replica.label], replica.in_flight)
                healthy.add_metric([model, replica.label], 1 if replica.healthy else 0)
                capacity.add_metric([model, replica.label], max(replica.free_slots, 0))
        yield in_flight
        yield healthy
        yield capacity
        if self._dispatcher_status is not None:
            connected, detail = self._dispatcher_status()
            yield GaugeMetricFamily(
                "flotilla_dispatcher_connected", "1 when the dispatcher can hand out slots (its broker is reachable).",
                value=1 if connected else 0,
            )
            scheduling = set(detail.get("scheduling", ()))
            active = GaugeMetricFamily(
                "flotilla_dispatcher_scheduling",
                "1 where this gateway decides a model's slots; its in-flight and free-slot gauges are the model's.",
                labels=["model"],
            )
            for model in self._pools:
                active.add_metric([model], 1 if model in scheduling else 0)
            yield active
        if self._usage is not None:
            u = self._usage
            yield GaugeMetricFamily("flotilla_usage_records_pending", "Usage records not yet written.", value=u.pending)
            for name, help_text, value in (
                ("flotilla_usage_records_written", "Usage records written to the store.", u.records_written),
                ("flotilla_usage_records_dropped", "Usage records refused because the buffer was full.", u.records_dropped),
                ("flotilla_usage_write_failures", "Failed batched writes of usage records (retried).", u.write_failures),
                ("flotilla_usage_records_rejected", "Usage records the database refused for their content.", u.records_rejected),
            ):
                yield CounterMetricFamily(name, help_text, value=value)


class _Histogram:
    """Counts per bucket (not cumulative; the last is +Inf) and their sum: one bisect and two adds per value."""

    __slots__ = ("counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0


class _Recorded(Collector):
    """Exports what GatewayMetrics counted, in the exposition prometheus_client's Counter and
    Histogram give (`_total`, `_bucket{le}`, `_sum`, `_count`), without their per-call locks: the
    gateway observes from one event loop, and a scrape runs on that loop too."""

    def __init__(self, metrics: "GatewayMetrics") -> None:
        self._m = metrics

    def collect(self) -> Iterable[CounterMetricFamily | HistogramMetricFamily]:
        m = self._m
        requests = CounterMetricFamily(
            "flotilla_requests", "Requests answered, by model, HTTP status and effective priority.",
            labels=["model", "status", "priority"],
        )
        for labels, value in m.requests.items():
            requests.add_metric(labels, value)
        yield requests
        yield _histogram_family(
            "flotilla_queue_wait_seconds", "Time from admission to a granted replica slot.",
            QUEUE_WAIT_BUCKETS, m.queue_wait,
        )
        yield _histogram_family(
            "flotilla_time_to_first_token_seconds", "Time from arrival to the first streamed chunk, seen at the gateway.",
            TTFT_BUCKETS, m.ttft,
        )
        tokens = CounterMetricFamily(
            "flotilla_tokens", "Prompt and completion tokens reported by engines.", labels=["model", "direction"]
        )
        for (model, direction), value in m.tokens.items():
            tokens.add_metric([model, direction], value)
        yield tokens
        retries = CounterMetricFamily(
            "flotilla_upstream_retries", "Requests re-sent to another replica after a connection failure.",
            labels=["model"],
        )
        for model, value in m.retries.items():
            retries.add_metric([model], value)
        yield retries


def _histogram_family(
    name: str, help_text: str, bounds: tuple[float, ...], series: dict[tuple[str, str], _Histogram]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, help_text, labels=["model", "priority"])
    les = [*(floatToGoString(b) for b in bounds), "+Inf"]
    for labels, hist in series.items():
        cumulative = list(itertools.accumulate(hist.counts))
        family.add_metric(list(labels), list(zip(les, cumulative)), hist.sum)
    return family


QUEUE_WAIT_BUCKETS = (0.0005, 0.001, *_LATENCY_BUCKETS)
TTFT_BUCKETS = _LATENCY_BUCKETS


class GatewayMetrics:
    """Per-request counters and histograms, kept in plain dicts (label sets are bounded: models
    from the spec, priorities of tokens or "other", HTTP statuses) and exported at scrape time."""

    def __init__(self, priority_label: Callable[[int], str]) -> None:
        """`priority_label` maps an effective priority to its label value; it must return values
        from a bounded set (see TokenCache.priority_label)."""
        self._priority_label = priority_label
        self.registry = CollectorRegistry()
        self.requests: dict[tuple[str, str, str], int] = {}
        self.queue_wait: dict[tuple[str, str], _Histogram] = {}
        self.ttft: dict[tuple[str, str], _Histogram] = {}
        self.tokens: dict[tuple[str, str], int] = {}
        self.retries: dict[str, int] = {}
        self.registry.register(_Recorded(self))
        # For `flotilla status` (gateway/activity.py): requests waiting now, and the last minutes.
        self.waiting = WaitingRequests()
        self.recent: RecentActivity | None = None

    def watch(
        self,
        pools: dict[str, ReplicaPool],
        queue_depths: Callable[[], dict[tuple[str, int], int]],
        usage: UsageRecorder | None = None,
        dispatcher_status: Callable[[], tuple[bool, dict]] | None = None,
    ) -> None:
        self.registry.register(
            _LiveStateCollector(pools, queue_depths, usage, self._priority_label, dispatcher_status)
        )
        self.recent = RecentActivity(pools)
        self.registry.register(ActivityCollector(self.waiting, self.recent, self._priority_label))

    def observe_finished(
        self, model: str, status: int, priority: int, ttft_s: float | None, prompt: int | None, completion: int | None
    ) -> None:
        """All of one answered request: its status, time to first token (streams), and the token
        counts as the engine reported them (only whole non-negative numbers are added)."""
        label = self._priority_label(priority)
        key = (model, str(status), label)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        if ttft_s is not None:
            self._observe(self.ttft, TTFT_BUCKETS, (model, label), ttft_s)
        prompt, completion = token_count(prompt), token_count(completion)
        tokens = self.tokens
        if prompt:
            tokens[(model, "prompt")] = tokens.get((model, "prompt"), 0) + prompt
        if completion:
            tokens[(model, "completion")] = tokens.get((model, "completion"), 0) + completion
        if self.recent is not None:
            self.recent.finished(model, status, prompt, completion)

    def observe_request(self, model: str, status: int, priority: int) -> None:
        self.observe_finished(model, status, priority, None, None, None)

    def observe_queue_wait(self, model: str, priority: int, seconds: float) -> None:
        self._observe(self.queue_wait, QUEUE_WAIT_BUCKETS, (model, self._priority_label(priority)), seconds)

    def observe_ttft(self, model: str, priority: int, seconds: float) -> None:
        self._observe(self.ttft, TTFT_BUCKETS, (model, self._priority_label(priority)), seconds)

    def observe_retry(self, model: str) -> None:
        self.retries[model] = self.retries.get(model, 0) + 1

    @staticmethod
    def _observe(series: dict[tuple[str, str], _Histogram], bounds: tuple[float, ...], key: tuple[str, str],
                 value: float) -> None:
        hist = series.get(key)
        if hist is None:
            hist = series[key] = _Histogram(bounds)
        hist.counts[bisect_left(bounds, value)] += 1  # le: a value equal to a bound is in its bucket
        hist.sum += value
