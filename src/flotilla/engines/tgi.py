"""`engine: tgi`: Hugging Face Text Generation Inference (`text-generation-launcher`) on GPUs.

The chart configures TGI through environment variables (MODEL_ID, REVISION, ...) and passes only
`extraArgs` as arguments; locally the same settings become the launcher's flags (each of its flags
reads the environment variable of the same name, so the two forms are equivalent).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from flotilla.engines.base import ContainerDefaults, EngineNotInstalled
from flotilla.spec.engines import TgiOptions
from flotilla.spec.models import ModelSpec

TGI_IMAGE = ContainerDefaults(
    image_repository="ghcr.io/huggingface/text-generation-inference", image_tag="3.3.7", port=8080
)
INSTALL_HINT = (
    "text-generation-launcher is not on PATH: install TGI from source (needs an NVIDIA GPU), "
    "or deploy with the Helm chart"
)


def _options(model: ModelSpec) -> TgiOptions:
    if model.tgi is None:
        raise ValueError(f"model {model.name!r} has no `tgi:` section")
    return model.tgi


def tgi_env(model: ModelSpec, port: int, host: str = "0.0.0.0") -> dict[str, str]:
    """The launcher's settings as environment variables, in a stable order."""
    o = _options(model)
    env = {"MODEL_ID": o.model}
    if o.revision:
        env["REVISION"] = o.revision
    if o.max_input_length is not None:
        # TGI 3 calls it MAX_INPUT_TOKENS; MAX_INPUT_LENGTH is still accepted as its legacy name.
        env["MAX_INPUT_LENGTH"] = str(o.max_input_length)
    if o.max_total_tokens is not None:
        env["MAX_TOTAL_TOKENS"] = str(o.max_total_tokens)
    if o.quantize:
        env["QUANTIZE"] = o.quantize
    env["NUM_SHARD"] = str(o.num_shard)
    if o.dtype:
        env["DTYPE"] = o.dtype
    # Kubernetes sets HOSTNAME to the pod name, which TGI would otherwise read as its listen address.
    env["HOSTNAME"] = host
    env["PORT"] = str(port)
    return env


def env_as_flags(env: dict[str, str]) -> list[str]:
    """MODEL_ID=x -> --model-id x: how text-generation-launcher names the flag of each variable."""
    flags: list[str] = []
    for name, value in env.items():
        flags += ["--" + name.lower().replace("_", "-"), value]
    return flags


@dataclass(frozen=True)
class TgiEngine:
    kind: str = "tgi"
    health_path: str = "/health"
    metrics_path: str | None = "/metrics"
    container: ContainerDefaults | None = field(default=TGI_IMAGE)

    def server_env(self, model: ModelSpec, port: int) -> dict[str, str]:
        """The container's environment (the chart renders exactly these)."""
        return tgi_env(model, port)

    def server_args(self, model: ModelSpec, port: int) -> list[str]:
        """The container's arguments: settings travel in server_env, so only extraArgs remain."""
        return list(_options(model).extra_args)

    def local_command(self, model: ModelSpec, port: int) -> list[str]:
        program = shutil.which("text-generation-launcher")
        if program is None:
            raise EngineNotInstalled(f"model {model.name!r} needs TGI: {INSTALL_HINT}")
        flags = env_as_flags(tgi_env(model, port, host="127.0.0.1"))
        return [program, *flags, *self.server_args(model, port)]


ENGINE = TgiEngine()
