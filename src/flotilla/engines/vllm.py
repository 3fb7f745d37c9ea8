"""`engine: vllm`: vLLM's OpenAI-compatible server (`vllm serve MODEL ...`) on GPUs.

The same arguments run here (`vllm serve` when installed) and in the chart's container, whose
image `vllm/vllm-openai` is started with `vllm serve`. Multi-node replicas follow vLLM's
LeaderWorkerSet recipe (a Ray cluster started by the image's multi-node-serving.sh, then
`vllm serve` on the leader); disaggregated roles both take `--kv-transfer-config` (NixlConnector).
"""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from flotilla.engines.base import DISAGGREGATION, LORA, MULTINODE, ContainerDefaults, Engine, EngineNotInstalled
from flotilla.engines.common import (
    CONFIG_FILE_GO,
    ROLE_EXTRA_ARGS_GO,
    config_file_args,
    local_config_files,
    role_extra_args,
    tensor_size,
)
from flotilla.engines.flags import json_flag, number_flag
from flotilla.engines.rules import ArgContext, Custom, Extra, Host, Opt, Port, Positional, Rules, Served, Switch
from flotilla.spec.base import SpecModel

if TYPE_CHECKING:
    from flotilla.spec.models import ModelSpec

INSTALL_HINT = "pip install vllm (needs an NVIDIA GPU with CUDA), or deploy with the Helm chart"
# vLLM's own multi-node helper inside the vllm/vllm-openai image (examples/online_serving).
RAY_HELPER = "/vllm-workspace/examples/online_serving/multi-node-serving.sh"


class RopeScaling(SpecModel):
    enabled: bool = False
    json_configuration: str = Field("{}", description="JSON of the rope parameters (vLLM --hf-overrides rope_parameters).")
    theta: float | None = Field(None, description="rope_theta, added to the parameters.")


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
    max_num_seqs: int | None = Field(None, ge=1, description="Sequences batched at once (vLLM's default: 256).")
    max_loras: int | None = Field(None, ge=1, description="LoRA adapters in one batch; default: every adapter of `loras`.")
    max_lora_rank: int | None = Field(None, ge=1, description="Largest adapter rank (vLLM's default: 16).")
    extra_args: list[str] = Field(default_factory=list)


def rope_overrides(o: dict) -> dict[str, object] | None:
    """vLLM removed --rope-scaling/--rope-theta; both now go in --hf-overrides as `rope_parameters`."""
    rope = o["ropeScaling"]
    if not rope["enabled"]:
        return None
    try:
        parameters = json.loads(rope["jsonConfiguration"])
    except json.JSONDecodeError as exc:
        raise ValueError(f"vllm.ropeScaling.jsonConfiguration is not JSON: {exc.msg}") from None
    if not isinstance(parameters, dict):
        raise ValueError("vllm.ropeScaling.jsonConfiguration must be a JSON object")
    if rope.get("theta") is not None:
        parameters["rope_theta"] = rope["theta"]
    return {"rope_parameters": parameters}


def _rope(ctx: ArgContext) -> list[str]:
    overrides = rope_overrides(ctx.model["vllm"])
    return [] if overrides is None else ["--hf-overrides", json_flag(overrides)]


_ROPE_GO = """
{{- if $m.vllm.ropeScaling.enabled -}}
{{- $parameters := fromJson $m.vllm.ropeScaling.jsonConfiguration -}}
{{- if or (not (kindIs "map" $parameters)) (hasKey $parameters "Error") -}}
{{- fail (printf "models[%s].vllm.ropeScaling.jsonConfiguration must be a JSON object, got %q" $m.name $m.vllm.ropeScaling.jsonConfiguration) -}}
{{- end -}}
{{- if not (kindIs "invalid" $m.vllm.ropeScaling.theta) }}{{ $_ := set $parameters "rope_theta" $m.vllm.ropeScaling.theta }}{{ end -}}
{{- $args = concat $args (list "--hf-overrides" (dict "rope_parameters" $parameters | toJson)) -}}
{{- end -}}
"""


def _parallel(ctx: ArgContext) -> list[str]:
    par = ctx.model.get("parallelism") or {}
    args = ["--tensor-parallel-size", number_flag(tensor_size(ctx.model, "tensorParallelSize"))]
    if int(par.get("pipeline", 1)) > 1:
        args += ["--pipeline-parallel-size", number_flag(par["pipeline"])]
    if int(par.get("nodes", 1)) > 1:
        args += ["--distributed-executor-backend", "ray"]
    return args


_PARALLEL_GO = """
{{- $tp := $m.vllm.tensorParallelSize -}}
{{- if not (kindIs "invalid" $m.parallelism.tensor) }}{{ $tp = $m.parallelism.tensor }}{{ end -}}
{{- $args = concat $args (list "--tensor-parallel-size" (include "flotilla.num" $tp)) -}}
{{- if gt (int64 $m.parallelism.pipeline) 1 }}{{ $args = concat $args (list "--pipeline-parallel-size" (include "flotilla.num" $m.parallelism.pipeline)) }}{{ end -}}
{{- if gt (int64 $m.parallelism.nodes) 1 }}{{ $args = concat $args (list "--distributed-executor-backend" "ray") }}{{ end -}}
"""


def lora_path(ctx: ArgContext, lora: dict) -> str:
    """Hub adapters are fetched (at their revision) into the cache volume by the chart's init container."""
    if lora["source"].startswith("/") or ctx.target == "local":
        return lora["source"]
    return f"{ctx.model['cache']['mountPath']}/loras/{lora['name']}"


def _loras(ctx: ArgContext) -> list[str]:
    loras = ctx.model.get("loras") or []
    if not loras:
        return []
    o = ctx.model["vllm"]
    args = ["--enable-lora", "--max-loras", number_flag(o.get("maxLoras") or len(loras))]
    if o.get("maxLoraRank") is not None:
        args += ["--max-lora-rank", number_flag(o["maxLoraRank"])]
    args.append("--lora-modules")
    return args + [f"{lora['name']}={lora_path(ctx, lora)}" for lora in loras]


_LORAS_GO = """
{{- if $m.loras -}}
{{- $max := len $m.loras -}}
{{- if not (kindIs "invalid" $m.vllm.maxLoras) }}{{ $max = $m.vllm.maxLoras }}{{ end -}}
{{- $args = concat $args (list "--enable-lora" "--max-loras" (include "flotilla.num" $max)) -}}
{{- if not (kindIs "invalid" $m.vllm.maxLoraRank) }}{{ $args = concat $args (list "--max-lora-rank" (include "flotilla.num" $m.vllm.maxLoraRank)) }}{{ end -}}
{{- $args = append $args "--lora-modules" -}}
{{- range $m.loras -}}
{{- if hasPrefix "/" .source -}}
{{- $args = append $args (printf "%s=%s" .name .source) -}}
{{- else -}}
{{- $args = append $args (printf "%s=%s/loras/%s" .name $m.cache.mountPath .name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
"""


def kv_transfer_config(model: dict) -> dict:
    kv = model["roles"]["kvTransfer"]
    config: dict = {"kv_connector": kv["connector"], "kv_role": "kv_both"}
    if kv.get("extraConfig"):
        config["kv_connector_extra_config"] = kv["extraConfig"]
    return config


def _kv_transfer(ctx: ArgContext) -> list[str]:
    return ["--kv-transfer-config", json_flag(kv_transfer_config(ctx.model))] if ctx.role else []


_KV_GO = """
{{- if $role -}}
{{- $kv := dict "kv_connector" $m.roles.kvTransfer.connector "kv_role" "kv_both" -}}
{{- if $m.roles.kvTransfer.extraConfig }}{{ $_ := set $kv "kv_connector_extra_config" $m.roles.kvTransfer.extraConfig }}{{ end -}}
{{- $args = concat $args (list "--kv-transfer-config" (toJson $kv)) -}}
{{- end -}}
"""

VLLM_RULES = Rules(args=(
    Positional("vllm.model"),
    Host(),
    Port(),
    Served("--served-model-name"),
    Opt("--revision", "vllm.revision"),
    Opt("--dtype", "vllm.dtype"),
    Opt("--quantization", "vllm.quantization"),
    Opt("--max-model-len", "vllm.maxModelLen", number=True),
    Opt("--gpu-memory-utilization", "vllm.gpuMemoryUtilization", number=True),
    Custom(_parallel, _PARALLEL_GO, "parallel"),
    Custom(_rope, _ROPE_GO, "rope"),
    Switch("--trust-remote-code", "vllm.trustRemoteCode"),
    Opt("--scheduling-policy", "vllm.schedulingPolicy"),
    Opt("--max-num-seqs", "vllm.maxNumSeqs", number=True),
    Custom(_loras, _LORAS_GO, "loras"),
    Custom(_kv_transfer, _KV_GO, "kv-transfer"),
    Custom(lambda ctx: config_file_args(ctx, "--config"), CONFIG_FILE_GO.replace("FLAG", "--config"), "config"),
    Custom(role_extra_args, ROLE_EXTRA_ARGS_GO, "role-args"),
    Extra("vllm.extraArgs"),
))


class VllmEngine(Engine):
    kind = "vllm"
    # vLLM's OpenAI server batches max_num_seqs sequences (256 by default on most GPUs).
    concurrency_option: ClassVar[str | None] = "max_num_seqs"
    default_concurrency: ClassVar[int] = 256
    options = VllmOptions
    options_required = True
    rules = VLLM_RULES
    container = ContainerDefaults("vllm/vllm-openai", "v0.28.0", 8000, ("vllm", "serve"))
    load_gauges = ("vllm:num_requests_running", "vllm:num_requests_waiting")
    gpu_option = "tensorParallelSize"
    features = frozenset({LORA, MULTINODE, DISAGGREGATION})
    config_flag = "--config"
    # LeaderWorkerSet: the leader starts Ray's head and waits for the group, then serves; workers join.
    leader_command = ("/bin/bash", "-c",
                      f'bash {RAY_HELPER} leader --ray_cluster_size="$LWS_GROUP_SIZE" && exec vllm serve "$@"', "vllm")
    worker_command = ("/bin/bash", "-c", f'exec bash {RAY_HELPER} worker --ray_address="$LWS_LEADER_ADDRESS"')
    worker_takes_args = False

    def local_command(self, model: ModelSpec, port: int, role: str | None = None) -> list[str]:
        program = shutil.which("vllm")
        if program is None:
            raise EngineNotInstalled(f"model {model.name!r} needs vLLM: {INSTALL_HINT}")
        local_config_files(model, role)
        ctx = self.context(model, port, host="127.0.0.1", target="local", role=role)
        return [program, "serve", *self.rules.python_args(ctx)]


ENGINE = VllmEngine()
