"""`engine: vllm`: vLLM's OpenAI-compatible server (`vllm serve MODEL ...`) on GPUs.

The same arguments run here (`vllm serve` when installed) and in the chart's container, whose
image `vllm/vllm-openai` has `vllm serve` as its entrypoint; tests/chart compares the two.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field

from flotilla.chart.flags import json_flag, number_flag
from flotilla.engines.base import ContainerDefaults, EngineNotInstalled
from flotilla.spec.engines import VllmOptions
from flotilla.spec.models import ModelSpec

VLLM_IMAGE = ContainerDefaults(image_repository="vllm/vllm-openai", image_tag="v0.28.0", port=8000)
INSTALL_HINT = "pip install vllm (needs an NVIDIA GPU with CUDA), or deploy with the Helm chart"


def rope_overrides(options: VllmOptions) -> dict[str, object] | None:
    """vLLM removed --rope-scaling/--rope-theta; both now go in --hf-overrides as `rope_parameters`."""
    rope = options.rope_scaling
    if not rope.enabled:
        return None
    try:
        parameters = json.loads(rope.json_configuration)
    except json.JSONDecodeError as exc:
        raise ValueError(f"vllm.ropeScaling.jsonConfiguration is not JSON: {exc.msg}") from None
    if not isinstance(parameters, dict):
        raise ValueError("vllm.ropeScaling.jsonConfiguration must be a JSON object")
    if rope.theta is not None:
        parameters["rope_theta"] = rope.theta
    return {"rope_parameters": parameters}


def _options(model: ModelSpec) -> VllmOptions:
    if model.vllm is None:
        raise ValueError(f"model {model.name!r} has no `vllm:` section")
    return model.vllm


def vllm_args(model: ModelSpec, port: int, host: str) -> list[str]:
    o = _options(model)
    args = [o.model, "--host", host, "--port", str(port), "--served-model-name", model.upstream_model_name]
    if o.revision:
        args += ["--revision", o.revision]
    if o.dtype:
        args += ["--dtype", o.dtype]
    if o.quantization:
        args += ["--quantization", o.quantization]
    if o.max_model_len is not None:
        args += ["--max-model-len", str(o.max_model_len)]
    if o.gpu_memory_utilization is not None:
        args += ["--gpu-memory-utilization", number_flag(o.gpu_memory_utilization)]
    args += ["--tensor-parallel-size", str(o.tensor_parallel_size)]
    overrides = rope_overrides(o)
    if overrides is not None:
        args += ["--hf-overrides", json_flag(overrides)]
    if o.trust_remote_code:
        args.append("--trust-remote-code")
    args += ["--scheduling-policy", o.scheduling_policy]
    if o.max_num_seqs is not None:
        args += ["--max-num-seqs", str(o.max_num_seqs)]
    return args + list(o.extra_args)


@dataclass(frozen=True)
class VllmEngine:
    kind: str = "vllm"
    health_path: str = "/health"
    metrics_path: str | None = "/metrics"
    container: ContainerDefaults | None = field(default=VLLM_IMAGE)

    def server_args(self, model: ModelSpec, port: int) -> list[str]:
        """Arguments after `vllm serve`, listening on every interface (as in a pod)."""
        return vllm_args(model, port, "0.0.0.0")

    def local_command(self, model: ModelSpec, port: int) -> list[str]:
        program = shutil.which("vllm")
        if program is None:
            raise EngineNotInstalled(f"model {model.name!r} needs vLLM: {INSTALL_HINT}")
        return [program, "serve", *vllm_args(model, port, "127.0.0.1")]


ENGINE = VllmEngine()
