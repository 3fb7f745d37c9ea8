"""`engine: sim`: Flotilla's simulated vLLM-like engine (`flotilla sim`), for tests and benchmarks.

It runs from Flotilla's own image in the chart and as `python -m flotilla.cli sim` here. It can
speak each real engine's metric dialect (`metricsDialect`), serve LoRA adapters, and play either
role of a disaggregated model, so the gateway's paths for those are tested without GPUs.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, model_validator

from flotilla.engines.base import DISAGGREGATION, LORA, ContainerDefaults, Engine
from flotilla.engines.rules import Custom, Host, Lit, Opt, Port, Rules, Served, Switch
from flotilla.spec.base import SpecModel

if TYPE_CHECKING:
    from flotilla.spec.models import ModelSpec

MetricsDialect = Literal["vllm", "sglang", "tgi", "llamacpp"]


class SimOptions(SpecModel):
    """The simulated vLLM-like engine: continuous batching latency model."""

    ttft_ms: float = Field(50.0, ge=0, description="Time to first token of a lone request (ms).")
    itl_ms: float = Field(10.0, ge=0, description="Inter-token latency of a lone request (ms).")
    max_num_seqs: int = Field(8, ge=1, description="Sequences decoded at once; the rest wait inside the engine (in schedulingPolicy order).")
    batch_slowdown: float = Field(
        0.05, ge=0, description="Relative slowdown of TTFT and ITL per extra running sequence."
    )
    output_tokens_mean: int = Field(
        64, ge=1, description="Mean output length when a request gives no max_tokens."
    )
    deterministic: bool = Field(
        False, description="Output length = max_tokens (or the mean) exactly, no jitter: for tests."
    )
    seed: int = Field(0, description="Seed of the output-length and fault distributions.")
    error_rate: float = Field(0.0, ge=0, le=1, description="Fraction of requests answered with HTTP 500.")
    die_mid_stream_rate: float = Field(
        0.0, ge=0, le=1, description="Fraction of streams cut off (connection closed) halfway."
    )
    max_model_len: int = Field(4096, ge=16, description="Context length; longer prompts get HTTP 400.")
    metrics_dialect: MetricsDialect = Field(
        "vllm", description="Whose /metrics names the sim speaks: vllm, sglang, tgi or llamacpp."
    )
    kv_transfer_ms: float = Field(
        20.0, ge=0, description="Decode role: delay standing for the KV-cache transfer before decoding starts (ms)."
    )
    scheduling_policy: Literal["fcfs", "priority"] = Field(
        "fcfs",
        description="vLLM's --scheduling-policy: fcfs, or priority (waiting requests ordered by the body's "
        "`priority`, lower first; the lowest-priority running request is preempted when KV blocks run out). "
        "With priority the gateway forwards each request's priority.",
    )
    num_gpu_blocks: int | None = Field(
        None, ge=1,
        description="KV cache size in blocks of 16 tokens (vLLM's num_gpu_blocks). Default: maxNumSeqs x "
        "maxModelLen / 16, room for every sequence at full length, so nothing is ever preempted.",
    )
    enable_prefix_caching: bool = Field(
        False,
        description="Keep the KV blocks of ended requests for reuse (vLLM automatic prefix caching; on by "
        "default in vLLM, off here so the sim costs nothing extra unless asked).",
    )
    prefill_ms_per_token: float = Field(
        0.0, ge=0,
        description="Time to first token added per prompt token computed, i.e. not found in the prefix cache (ms).",
    )

    @model_validator(mode="after")
    def _kv_cache_holds_one_sequence(self) -> SimOptions:
        if self.num_gpu_blocks is not None and self.num_gpu_blocks * 16 < self.max_model_len:
            raise ValueError(
                f"numGpuBlocks {self.num_gpu_blocks} hold {self.num_gpu_blocks * 16} tokens, fewer than one "
                f"sequence of maxModelLen {self.max_model_len} (vLLM refuses to start so)"
            )
        return self

    @property
    def kv_cache_blocks(self) -> int:
        return self.num_gpu_blocks or -(-self.max_num_seqs * self.max_model_len // 16)


def _sim_role(ctx) -> list[str]:
    return ["--role", ctx.role] if ctx.role else []


def _sim_loras(ctx) -> list[str]:
    return [t for lora in ctx.model.get("loras") or [] for t in ("--lora", lora["name"])]


SIM_RULES = Rules(args=(
    Lit("sim"),
    Port(),
    Served("--model"),
    Opt("--ttft-ms", "sim.ttftMs", number=True),
    Opt("--itl-ms", "sim.itlMs", number=True),
    Opt("--max-num-seqs", "sim.maxNumSeqs", number=True),
    Opt("--batch-slowdown", "sim.batchSlowdown", number=True),
    Opt("--output-tokens-mean", "sim.outputTokensMean", number=True),
    Opt("--seed", "sim.seed", number=True),
    Opt("--error-rate", "sim.errorRate", number=True),
    Opt("--die-mid-stream-rate", "sim.dieMidStreamRate", number=True),
    Opt("--max-model-len", "sim.maxModelLen", number=True),
    Opt("--metrics-dialect", "sim.metricsDialect"),
    Opt("--kv-transfer-ms", "sim.kvTransferMs", number=True),
    Opt("--scheduling-policy", "sim.schedulingPolicy"),
    Opt("--num-gpu-blocks", "sim.numGpuBlocks", number=True),
    Opt("--prefill-ms-per-token", "sim.prefillMsPerToken", number=True),
    Switch("--enable-prefix-caching", "sim.enablePrefixCaching"),
    Switch("--deterministic", "sim.deterministic"),
    Custom(_sim_loras, '{{- range $m.loras }}{{- $args = concat $args (list "--lora" .name) -}}{{- end -}}', "loras"),
    Custom(_sim_role, '{{- if $role }}{{- $args = concat $args (list "--role" $role) -}}{{- end -}}', "role"),
    Host(),
))


class SimEngine(Engine):
    kind = "sim"
    concurrency_option: ClassVar[str | None] = "max_num_seqs"
    default_concurrency: ClassVar[int] = 8
    options = SimOptions
    rules = SIM_RULES
    # Flotilla's own image (tag: the chart's appVersion), whose entrypoint is `flotilla`.
    container = ContainerDefaults(
        "ghcr.io/flotilla/flotilla", None, 8000, ("flotilla",),
        resources={"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        model_cache=False, shared_memory=False,  # no weights, no shards
    )
    features = frozenset({LORA, DISAGGREGATION})
    load_gauges = ("vllm:num_requests_running", "vllm:num_requests_waiting")  # its default dialect, vLLM's

    def gauges_for(self, model: ModelSpec) -> tuple[str, ...]:
        from flotilla.engines.registry import get_engine  # the dialect's engine owns the names

        dialect = model.sim.metrics_dialect if model.sim else "vllm"
        return get_engine(dialect).load_gauges

    def local_command(self, model: ModelSpec, port: int, role: str | None = None) -> list[str]:
        return [sys.executable, "-m", "flotilla.cli",
                *self.server_args(model, port, host="127.0.0.1", role=role)]


ENGINE = SimEngine()
