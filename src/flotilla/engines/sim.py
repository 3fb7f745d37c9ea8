"""`engine: sim`: Flotilla's simulated vLLM-like engine (`flotilla sim`), launched as a subprocess."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from flotilla.engines.base import ContainerDefaults
from flotilla.spec.engines import SimOptions
from flotilla.spec.models import ModelSpec

# The sim runs from Flotilla's own image; the chart's templates use the same image and port.
FLOTILLA_IMAGE = ContainerDefaults(image_repository="ghcr.io/flotilla/flotilla", image_tag="0.1.0", port=8000)


def _sim_flags(options: SimOptions) -> list[str]:
    flags = [
        "--ttft-ms", f"{options.ttft_ms:g}",
        "--itl-ms", f"{options.itl_ms:g}",
        "--max-num-seqs", str(options.max_num_seqs),
        "--batch-slowdown", f"{options.batch_slowdown:g}",
        "--output-tokens-mean", str(options.output_tokens_mean),
        "--seed", str(options.seed),
        "--error-rate", f"{options.error_rate:g}",
        "--die-mid-stream-rate", f"{options.die_mid_stream_rate:g}",
        "--max-model-len", str(options.max_model_len),
    ]
    if options.deterministic:
        flags.append("--deterministic")
    return flags


@dataclass(frozen=True)
class SimEngine:
    kind: str = "sim"
    health_path: str = "/health"
    metrics_path: str | None = "/metrics"
    container: ContainerDefaults | None = field(default=FLOTILLA_IMAGE)

    def server_args(self, model: ModelSpec, port: int) -> list[str]:
        """`flotilla` arguments; the listen host is the caller's (127.0.0.1 here, 0.0.0.0 in a pod)."""
        options = model.sim or SimOptions()
        return ["sim", "--port", str(port), "--model", model.upstream_model_name, *_sim_flags(options)]

    def local_command(self, model: ModelSpec, port: int) -> list[str]:
        return [sys.executable, "-m", "flotilla.cli", *self.server_args(model, port), "--host", "127.0.0.1"]


ENGINE = SimEngine()
