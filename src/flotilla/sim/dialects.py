"""The sim's /metrics in the dialect of each real engine, so the gateway's live-load reading is
tested against every engine's own gauge names.

Transcribed from each engine's documentation, independently of the engine descriptors (which the
gateway reads): a test that passes means the two transcriptions agree.
- vllm: vllm:num_requests_running / vllm:num_requests_waiting (the full exposition: metrics.py).
- sglang: sglang:num_running_reqs / sglang:num_queue_reqs (docs: references/production_metrics).
- tgi: tgi_batch_current_size / tgi_queue_size (docs: reference/metrics), no labels.
- llamacpp: llamacpp:requests_processing / llamacpp:requests_deferred (llama-server --metrics).
"""

from __future__ import annotations

from collections.abc import Callable

from flotilla.sim.metrics import SimMetrics


def _lines(out: list[str], name: str, kind: str, help_text: str, value: float, labels: str = "") -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")
    out.append(f"{name}{{{labels}}} {value!r}" if labels else f"{name} {value!r}")


def sglang(metrics: SimMetrics, model: str, running: int, waiting: int, kv: float) -> str:
    labels = f'model_name="{model}",engine_type="unified",tp_rank="0",pp_rank="0"'
    out: list[str] = []
    _lines(out, "sglang:num_running_reqs", "gauge", "The number of running requests", float(running), labels)
    _lines(out, "sglang:num_queue_reqs", "gauge", "The number of requests in the waiting queue", float(waiting), labels)
    _lines(out, "sglang:token_usage", "gauge", "The token usage", kv, labels)
    _lines(out, "sglang:prompt_tokens_total", "counter", "Number of prefill tokens processed.",
           float(metrics.prompt_tokens), labels)
    _lines(out, "sglang:generation_tokens_total", "counter", "Number of generation tokens processed.",
           float(metrics.generation_tokens), labels)
    return "\n".join(out) + "\n"


def tgi(metrics: SimMetrics, model: str, running: int, waiting: int, kv: float) -> str:
    out: list[str] = []
    _lines(out, "tgi_batch_current_size", "gauge", "Current batch size", float(running))
    _lines(out, "tgi_queue_size", "gauge", "Current queue size", float(waiting))
    _lines(out, "tgi_request_count", "counter", "Total number of requests", float(sum(metrics.request_success.values())))
    return "\n".join(out) + "\n"


def llamacpp(metrics: SimMetrics, model: str, running: int, waiting: int, kv: float) -> str:
    out: list[str] = []
    _lines(out, "llamacpp:prompt_tokens_total", "counter", "Number of prompt tokens processed.", float(metrics.prompt_tokens))
    _lines(out, "llamacpp:tokens_predicted_total", "counter", "Number of generation tokens processed.",
           float(metrics.generation_tokens))
    _lines(out, "llamacpp:requests_processing", "gauge", "Number of requests processing.", float(running))
    _lines(out, "llamacpp:requests_deferred", "gauge", "Number of requests deferred.", float(waiting))
    return "\n".join(out) + "\n"


def vllm(metrics: SimMetrics, model: str, running: int, waiting: int, kv: float) -> str:
    return metrics.render(running, waiting, kv)


DIALECTS: dict[str, Callable[[SimMetrics, str, int, int, float], str]] = {
    "vllm": vllm, "sglang": sglang, "tgi": tgi, "llamacpp": llamacpp,
}
