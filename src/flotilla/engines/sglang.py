"""`engine: sglang`: SGLang's OpenAI-compatible server (`python3 -m sglang.launch_server`) on GPUs."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field

from flotilla.chart.flags import number_flag
from flotilla.engines.base import ContainerDefaults, EngineNotInstalled
from flotilla.spec.engines import SglangOptions
from flotilla.spec.models import ModelSpec

SGLANG_IMAGE = ContainerDefaults(image_repository="lmsysorg/sglang", image_tag="v0.5.20", port=30000)
INSTALL_HINT = "pip install 'sglang[all]' (needs an NVIDIA GPU with CUDA), or deploy with the Helm chart"


def _options(model: ModelSpec) -> SglangOptions:
    if model.sglang is None:
        raise ValueError(f"model {model.name!r} has no `sglang:` section")
    return model.sglang


def sglang_args(model: ModelSpec, port: int, host: str) -> list[str]:
    o = _options(model)
    args = ["--model-path", o.model, "--host", host, "--port", str(port)]
    args += ["--served-model-name", model.upstream_model_name]
    if o.revision:
        args += ["--revision", o.revision]
    if o.dtype:
        args += ["--dtype", o.dtype]
    if o.quantization:
        args += ["--quantization", o.quantization]
    if o.context_length is not None:
        args += ["--context-length", str(o.context_length)]
    if o.mem_fraction_static is not None:
        args += ["--mem-fraction-static", number_flag(o.mem_fraction_static)]
    args += ["--tp-size", str(o.tensor_parallel_size)]
    if o.trust_remote_code:
        args.append("--trust-remote-code")
    # SGLang serves Prometheus metrics on /metrics only when asked.
    args.append("--enable-metrics")
    return args + list(o.extra_args)


@dataclass(frozen=True)
class SglangEngine:
    kind: str = "sglang"
    health_path: str = "/health"
    metrics_path: str | None = "/metrics"
    container: ContainerDefaults | None = field(default=SGLANG_IMAGE)

    def server_args(self, model: ModelSpec, port: int) -> list[str]:
        """Arguments after `python3 -m sglang.launch_server`, listening on every interface."""
        return sglang_args(model, port, "0.0.0.0")

    def local_command(self, model: ModelSpec, port: int) -> list[str]:
        if importlib.util.find_spec("sglang") is None:
            raise EngineNotInstalled(f"model {model.name!r} needs SGLang: {INSTALL_HINT}")
        return [sys.executable, "-m", "sglang.launch_server", *sglang_args(model, port, "127.0.0.1")]


ENGINE = SglangEngine()
