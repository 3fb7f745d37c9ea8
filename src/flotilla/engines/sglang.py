"""`engine: sglang`: SGLang's OpenAI-compatible server (`python3 -m sglang.launch_server`) on GPUs.

Multi-node replicas use SGLang's native distributed launch (every node runs launch_server with
--dist-init-addr of the leader, --nnodes and its --node-rank; --tp counts GPUs across nodes), as
in SGLang's LeaderWorkerSet example. The config file is SGLang's `--config` YAML.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from flotilla.engines.base import MULTINODE, ContainerDefaults, Engine, EngineNotInstalled
from flotilla.engines.common import CONFIG_FILE_GO, config_file_args, local_config_files, tensor_size
from flotilla.engines.flags import number_flag
from flotilla.engines.rules import ArgContext, Custom, Extra, Host, Lit, Opt, Port, Rules, Served, Switch
from flotilla.spec.base import SpecModel

if TYPE_CHECKING:
    from flotilla.spec.models import ModelSpec

INSTALL_HINT = "pip install 'sglang[all]' (needs an NVIDIA GPU with CUDA), or deploy with the Helm chart"
DIST_INIT_PORT = 20000  # the leader's port for SGLang's distributed init (any free port works)


class SglangOptions(SpecModel):
    """SGLang's OpenAI-compatible server (`python -m sglang.launch_server`)."""

    model: str = Field(..., description="Hugging Face id or path of the weights.")
    revision: str | None = None
    dtype: str | None = None
    quantization: str | None = None
    context_length: int | None = Field(None, ge=16)
    mem_fraction_static: float | None = Field(None, gt=0, le=1)
    tensor_parallel_size: int = Field(1, ge=1)
    max_running_requests: int | None = Field(None, ge=1, description="Requests batched at once (SGLang sizes it from memory by default).")
    trust_remote_code: bool = False
    extra_args: list[str] = Field(default_factory=list)


def _parallel(ctx: ArgContext) -> list[str]:
    par = ctx.model.get("parallelism") or {}
    args = ["--tp-size", number_flag(tensor_size(ctx.model, "tensorParallelSize"))]
    if int(par.get("pipeline", 1)) > 1:
        args += ["--pp-size", number_flag(par["pipeline"])]
    if int(par.get("nodes", 1)) > 1:
        # Kubernetes expands $(VAR) in container arguments from the LeaderWorkerSet's environment.
        args += ["--dist-init-addr", f"$(LWS_LEADER_ADDRESS):{DIST_INIT_PORT}", "--nnodes", number_flag(par["nodes"]),
                 "--node-rank", "$(LWS_WORKER_INDEX)"]
    return args


_PARALLEL_GO = """
{{- $tp := $m.sglang.tensorParallelSize -}}
{{- if not (kindIs "invalid" $m.parallelism.tensor) }}{{ $tp = $m.parallelism.tensor }}{{ end -}}
{{- $args = concat $args (list "--tp-size" (include "flotilla.num" $tp)) -}}
{{- if gt (int64 $m.parallelism.pipeline) 1 }}{{ $args = concat $args (list "--pp-size" (include "flotilla.num" $m.parallelism.pipeline)) }}{{ end -}}
{{- if gt (int64 $m.parallelism.nodes) 1 }}{{ $args = concat $args (list "--dist-init-addr" "$(LWS_LEADER_ADDRESS):""" + str(DIST_INIT_PORT) + """" "--nnodes" (include "flotilla.num" $m.parallelism.nodes) "--node-rank" "$(LWS_WORKER_INDEX)") }}{{ end -}}
"""

SGLANG_RULES = Rules(args=(
    Opt("--model-path", "sglang.model"),
    Host(),
    Port(),
    Served("--served-model-name"),
    Opt("--revision", "sglang.revision"),
    Opt("--dtype", "sglang.dtype"),
    Opt("--quantization", "sglang.quantization"),
    Opt("--context-length", "sglang.contextLength", number=True),
    Opt("--mem-fraction-static", "sglang.memFractionStatic", number=True),
    Custom(_parallel, _PARALLEL_GO, "parallel"),
    Opt("--max-running-requests", "sglang.maxRunningRequests", number=True),
    Switch("--trust-remote-code", "sglang.trustRemoteCode"),
    # SGLang serves Prometheus metrics on /metrics only when asked.
    Lit("--enable-metrics"),
    Custom(lambda ctx: config_file_args(ctx, "--config"), CONFIG_FILE_GO.replace("FLAG", "--config"), "config"),
    Extra("sglang.extraArgs"),
))


class SglangEngine(Engine):
    kind = "sglang"
    # Without maxRunningRequests SGLang sizes its batch from free memory; 128 is a cautious share.
    concurrency_option: ClassVar[str | None] = "max_running_requests"
    default_concurrency: ClassVar[int] = 128
    options = SglangOptions
    options_required = True
    rules = SGLANG_RULES
    container = ContainerDefaults("lmsysorg/sglang", "v0.5.20", 30000, ("python3", "-m", "sglang.launch_server"))
    # SGLang's scheduler gauges (docs: references/production_metrics).
    load_gauges = ("sglang:num_running_reqs", "sglang:num_queue_reqs")
    gpu_option = "tensorParallelSize"
    features = frozenset({MULTINODE})
    config_flag = "--config"
    leader_command = container.command
    worker_command = container.command
    worker_takes_args = True  # every node runs launch_server with its own --node-rank

    def local_command(self, model: ModelSpec, port: int) -> list[str]:
        if importlib.util.find_spec("sglang") is None:
            raise EngineNotInstalled(f"model {model.name!r} needs SGLang: {INSTALL_HINT}")
        local_config_files(model)
        ctx = self.context(model, port, host="127.0.0.1", target="local")
        return [sys.executable, "-m", "sglang.launch_server", *self.rules.python_args(ctx)]


ENGINE = SglangEngine()
