"""The sim's Prometheus metrics, under vLLM's names and labels, rendered as text by hand.

Names, label sets (`model_name`, `engine`) and bucket bounds follow vLLM's V1 engine
(vllm/v1/metrics/loggers.py); counters are written as prometheus-client writes them (TYPE line on
the `_total` name), without the `_created` samples. prometheus-client is kept off the hot path on purpose: an
observation here is a bisect and two additions.
"""

from __future__ import annotations

from bisect import bisect_left

# vLLM's bucket bounds (seconds).
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)
ITL_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
)
REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
)

FINISH_REASONS = ("stop", "length", "abort")


class Histogram:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # last slot: above every bound (+Inf only)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, times: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += times
        self.sum += value * times
        self.count += times

    def render(self, name: str, labels: str, out: list[str]) -> None:
        cumulative = 0
        for bound, n in zip(self.bounds, self.counts):
            cumulative += n
            out.append(f'{name}_bucket{{{labels},le="{bound}"}} {cumulative}')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {self.count}')
        out.append(f"{name}_count{{{labels}}} {self.count}")
        out.append(f"{name}_sum{{{labels}}} {self.sum!r}")


class SimMetrics:
    """Counters and histograms the server updates; gauges are read live at scrape time.

    Token counters move as tokens are produced (prompt tokens at prefill), not at the end.
    """

    def __init__(self, model_name: str) -> None:
        escaped = model_name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        self._labels = f'model_name="{escaped}",engine="0"'
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.request_success = dict.fromkeys(FINISH_REASONS, 0)
        self.ttft = Histogram(TTFT_BUCKETS)
        self.inter_token = Histogram(ITL_BUCKETS)
        self.e2e_latency = Histogram(REQUEST_LATENCY_BUCKETS)
        self.queue_time = Histogram(REQUEST_LATENCY_BUCKETS)
        # Kept by the scheduler, copied here before rendering.
        self.preemptions = 0
        self.prefix_cache_queries = 0
        self.prefix_cache_hits = 0

    def finished(self, reason: str, e2e: float, queued: float) -> None:
        self.request_success[reason] += 1
        self.e2e_latency.observe(e2e)
        self.queue_time.observe(queued)

    def render(self, running: int, waiting: int, kv_cache_usage: float) -> str:
        labels = self._labels
        out: list[str] = []

        def header(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        for name, help_text, value in (
            ("vllm:num_requests_running", "Number of requests in model execution batches.", float(running)),
            ("vllm:num_requests_waiting", "Number of requests waiting to be processed.", float(waiting)),
            ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kv_cache_usage),
        ):
            header(name, "gauge", help_text)
            out.append(f"{name}{{{labels}}} {value!r}")
        for name, help_text, count in (
            ("vllm:num_preemptions_total", "Cumulative number of preemption from the engine.", self.preemptions),
            ("vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens.",
             self.prefix_cache_queries),
            ("vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.",
             self.prefix_cache_hits),
            ("vllm:prompt_tokens_total", "Number of prefill tokens processed.", self.prompt_tokens),
            ("vllm:generation_tokens_total", "Number of generation tokens processed.", self.generation_tokens),
        ):
            header(name, "counter", help_text)
            out.append(f"{name}{{{labels}}} {float(count)!r}")
        header("vllm:request_success_total", "counter", "Count of successfully processed requests.")
        for reason, count in self.request_success.items():
            out.append(f'vllm:request_success_total{{{labels},finished_reason="{reason}"}} {float(count)!r}')
        for name, help_text, histogram in (
            ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", self.ttft),
            ("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", self.inter_token),
            ("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", self.e2e_latency),
            ("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.",
             self.queue_time),
        ):
            header(name, "histogram", help_text)
            histogram.render(name, labels, out)
        out.append("")
        return "\n".join(out)


def peak_gauge(peak: int, model_name: str) -> str:
    """Not any engine's metric: the simulator's own record, in every dialect, for tests of admission
    control (a caller that over-admits shows as a peak above maxConcurrency)."""
    escaped = model_name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return (
        "# HELP sim:num_requests_peak Most requests inside the engine at once (running + waiting).\n"
        "# TYPE sim:num_requests_peak gauge\n"
        f'sim:num_requests_peak{{model_name="{escaped}"}} {float(peak)!r}\n'
    )
