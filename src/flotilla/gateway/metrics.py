"""The gateway's Prometheus metrics. Queue depth and in-flight are read from live state at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from flotilla.gateway.replicas import ReplicaPool
from flotilla.gateway.usage_recorder import UsageRecorder

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class _LiveStateCollector(Collector):
    def __init__(
        self,
        pools: dict[str, ReplicaPool],
        queue_depths: Callable[[], dict[tuple[str, int], int]],
        usage: UsageRecorder | None,
        dispatcher_status: Callable[[], tuple[bool, dict]] | None = None,
    ):
        self._pools = pools
        self._queue_depths = queue_depths
        self._usage = usage
        self._dispatcher_status = dispatcher_status

    def collect(self) -> Iterable[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "flotilla_queue_depth",
            "Requests waiting at this gateway for a replica slot (several gateways: sum them).",
            labels=["model", "priority"],
        )
        depths = self._queue_depths()
        for (model, priority), count in sorted(depths.items()):
            depth.add_metric([model, str(priority)], count)
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


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "flotilla_requests", "Requests answered, by model, HTTP status and effective priority.",
            ["model", "status", "priority"], registry=self.registry,
        )
        self.queue_wait = Histogram(
            "flotilla_queue_wait_seconds", "Time from admission to a granted replica slot.",
            ["model", "priority"], buckets=(0.0005, 0.001, *_LATENCY_BUCKETS), registry=self.registry,
        )
        self.ttft = Histogram(
            "flotilla_time_to_first_token_seconds", "Time from arrival to the first streamed chunk, seen at the gateway.",
            ["model", "priority"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.tokens = Counter(
            "flotilla_tokens", "Prompt and completion tokens reported by engines.",
            ["model", "direction"], registry=self.registry,
        )
        self.retries = Counter(
            "flotilla_upstream_retries", "Requests re-sent to another replica after a connection failure.",
            ["model"], registry=self.registry,
        )
        # Label children are cached: .labels() costs a lock and a dict lookup per call.
        self._children: dict[tuple, object] = {}

    def watch(
        self,
        pools: dict[str, ReplicaPool],
        queue_depths: Callable[[], dict[tuple[str, int], int]],
        usage: UsageRecorder | None = None,
        dispatcher_status: Callable[[], tuple[bool, dict]] | None = None,
    ) -> None:
        self.registry.register(_LiveStateCollector(pools, queue_depths, usage, dispatcher_status))

    def _child(self, metric, *labels: str):
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_request(self, model: str, status: int, priority: int) -> None:
        self._child(self.requests, model, str(status), str(priority)).inc()

    def observe_queue_wait(self, model: str, priority: int, seconds: float) -> None:
        self._child(self.queue_wait, model, str(priority)).observe(seconds)

    def observe_ttft(self, model: str, priority: int, seconds: float) -> None:
        self._child(self.ttft, model, str(priority)).observe(seconds)

    def observe_retry(self, model: str) -> None:
        self._child(self.retries, model).inc()

    def observe_tokens(self, model: str, prompt: int | None, completion: int | None) -> None:
        if prompt:
            self._child(self.tokens, model, "prompt").inc(prompt)
        if completion:
            self._child(self.tokens, model, "completion").inc(completion)
