"""What an engine kind is: one descriptor per kind, registered in flotilla.engines.registry.

A descriptor owns everything Flotilla knows about its engine: the options model (the spec's
`<kind>:` section), the server's arguments and environment (as rules, read by `flotilla up` and
generated into the chart), how to launch it here, its container image, port and health path, the
Prometheus gauges that say how busy it is, how many requests one replica really serves at once,
and which serving features (LoRA, multi-node, disaggregation, a config file) it supports.

Adding an engine kind = one module defining a descriptor, plus one line in registry.py.
"""

from __future__ import annotations

import copy

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from flotilla.engines.rules import ArgContext, Rules, Target

if TYPE_CHECKING:
    from flotilla.spec.base import SpecModel
    from flotilla.spec.models import ModelSpec


class EngineNotInstalled(RuntimeError):
    """The engine's program is missing here; the message says what to install."""


class NothingToLaunch(RuntimeError):
    """Asked to launch a model whose engine is a URL."""


@dataclass(frozen=True)
class ContainerDefaults:
    """What the chart runs for this engine: image, port, command (the arguments follow it), and
    the container's requests and limits when the model gives none (GPUs are added on top)."""

    image_repository: str
    image_tag: str | None  # None: the chart's appVersion (Flotilla's own image)
    port: int
    command: tuple[str, ...] = ()
    resources: dict[str, dict[str, str]] = field(default_factory=lambda: copy.deepcopy(GPU_SERVER_RESOURCES))
    has_python: bool = True  # the image runs python3 (the chart's drain hook; else a POSIX sh one)
    model_cache: bool = True  # it loads weights from the hub: a cache volume (HF_HOME) that survives restarts
    shared_memory: bool = True  # a memory-backed /dev/shm (shmSize) for tensor-parallel shards


# A GPU server process: its CPU threads (tokenizer, scheduler, detokenizer) and host memory for
# weights staged through RAM; the accelerator comes on top. The chart adds the memory-backed
# /dev/shm (shmSize) to the memory limit. CPU limits are generous: an engine's scheduler loop is
# CPU-bound, and throttling it slows every request on the GPU.
GPU_SERVER_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"cpu": "16", "memory": "32Gi"},
}


# Serving features a descriptor may declare (ModelSpec checks a model only uses those of its engine).
LORA = "lora"
MULTINODE = "multinode"
DISAGGREGATION = "disaggregation"


class Engine:
    """Base descriptor. Subclasses set the class attributes and, where needed, override methods."""

    kind: ClassVar[str]
    options: ClassVar[type[SpecModel] | None] = None  # the `<kind>:` section of a model
    options_required: ClassVar[bool] = False  # the section must be given (it names the weights)
    rules: ClassVar[Rules] = Rules()
    container: ClassVar[ContainerDefaults | None] = None  # None: nothing to deploy (external)
    health_path: ClassVar[str] = "/health"  # GET answering 200 once the model is loaded
    metrics_path: ClassVar[str | None] = "/metrics"
    # Prometheus gauges whose sum is the requests the engine holds (running + waiting), whoever
    # sent them; the gateway subtracts them from a replica's free slots.
    load_gauges: ClassVar[tuple[str, ...]] = ()
    gpu_option: ClassVar[str | None] = None  # option giving GPUs per pod when gpu.count is unset
    features: ClassVar[frozenset[str]] = frozenset()
    config_flag: ClassVar[str | None] = None  # how the engine takes a YAML config file (extraConfig)
    # What one replica really serves at once when the spec leaves maxConcurrency unset: this option
    # of the engine's section when given, else default_concurrency. Declarative, so the chart
    # (KEDA's target) computes the same number from files/defaults.yaml.
    concurrency_option: ClassVar[str | None] = None
    default_concurrency: ClassVar[int] = 8

    # --- what a model of this kind serves at once --------------------------------------------

    def max_concurrency(self, options: Any) -> int:
        """Requests one replica really serves at once when the spec leaves maxConcurrency unset."""
        if self.concurrency_option is not None:
            value = getattr(options if options is not None else self.options(), self.concurrency_option, None)
            if value:
                return int(value)
        return self.default_concurrency

    def gauges_for(self, model: ModelSpec) -> tuple[str, ...]:
        """The load gauges of this model's replicas (the sim's depend on the dialect it speaks)."""
        return self.load_gauges

    # --- arguments ------------------------------------------------------------------------------

    def context(self, model: ModelSpec, port: int, *, host: str = "0.0.0.0", target: Target = "chart",
                role: str | None = None) -> ArgContext:
        return ArgContext(model.model_dump(by_alias=True, mode="json"), port, host, target, role)

    def server_args(self, model: ModelSpec, port: int, *, host: str = "0.0.0.0", role: str | None = None) -> list[str]:
        """The container's arguments (after its command), as the chart renders them."""
        return self.rules.python_args(self.context(model, port, host=host, role=role))

    def server_env(self, model: ModelSpec, port: int, *, host: str = "0.0.0.0") -> dict[str, str]:
        return self.rules.python_env(self.context(model, port, host=host))

    def local_command(self, model: ModelSpec, port: int) -> list[str]:
        """Full argv to run one replica on this machine; raises EngineNotInstalled."""
        raise EngineNotInstalled(f"model {model.name!r}: engine {self.kind!r} cannot run on this machine")

    def local_env(self, model: ModelSpec, port: int) -> dict[str, str]:
        """Environment the local process needs besides the model's own `env`."""
        return {}


def launches_process(engine: Engine) -> bool:
    """False for engines that are only URLs (external): no process to start, locally or in the chart."""
    return engine.container is not None
