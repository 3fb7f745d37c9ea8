"""What `flotilla up` will run: one process per engine replica, then the gateway, with ports and logs.

Everything that can fail before a process starts (an engine not installed, a model file missing,
the gateway's port taken) is found here, so `flotilla up` reports all of it and starts nothing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from flotilla.engines import EngineNotInstalled, UnknownEngine, get_engine, launches_process
from flotilla.engines.gguf import ModelUnavailable
from flotilla.local.pipelines import pipeline_problems
from flotilla.local.ports import connect_host, free_port, port_is_free
from flotilla.local.supervisor import ProcessSpec
from flotilla.spec.models import ModelSpec
from flotilla.spec.root import FlotillaSpec

LOCAL_HOST = "127.0.0.1"  # engines listen here only: the gateway is the way in


class PlanError(Exception):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class RunPlan:
    engines: list[ProcessSpec]
    gateways: list[ProcessSpec]  # one, or gateway.replicas sharing queues through RabbitMQ

    @property
    def gateway(self) -> ProcessSpec:
        return self.gateways[0]

    @property
    def endpoint(self) -> str:
        return f"{self.gateway.url}/v1"

    @property
    def endpoints(self) -> list[str]:
        return [f"{g.url}/v1" for g in self.gateways]


def flotilla_command(*args: str) -> list[str]:
    """Run a flotilla subcommand with this interpreter (works without the entry point on PATH)."""
    return [sys.executable, "-m", "flotilla.cli", *args]


def _units(model: ModelSpec) -> list[tuple[str | None, str, int]]:
    """(role, the gateway's pool name, replicas): one unit, or a disaggregated model's two roles."""
    if model.roles is None:
        return [(None, model.name, model.replicas)]
    return [("decode", model.name, model.roles.decode.replicas),
            ("prefill", f"{model.name}@prefill", model.roles.prefill.replicas)]


def model_env(model: ModelSpec) -> tuple[tuple[str, str], ...]:
    """The model's `env` entries that carry a `value`; `valueFrom` entries refer to Kubernetes
    objects and apply in the chart only (engines here inherit the shell's environment)."""
    return tuple((e.name, e.value) for e in model.env if e.value is not None)


def build_plan(spec: FlotillaSpec, spec_path: Path, run_dir: Path, gateway_port: int | None = None) -> RunPlan:
    problems: list[str] = []
    engines: list[ProcessSpec] = []
    taken: set[int] = set()
    for model in spec.models:
        try:
            engine = get_engine(model.engine)
        except (UnknownEngine, ImportError) as exc:
            problems.append(f"models.{model.name}: engine {model.engine!r} is not available here: {exc}")
            continue
        if not launches_process(engine):
            continue
        if model.replica_count < 1:
            problems.append(f"models.{model.name}: replicas is 0; flotilla up needs at least 1 to serve it")
            continue
        env = model_env(model)
        for role, pool, replicas in _units(model):
            for index in range(replicas):
                port = free_port(LOCAL_HOST, taken)
                try:
                    argv = engine.local_command(model, port, role=role) if role else engine.local_command(model, port)
                except (EngineNotInstalled, ModelUnavailable, ValueError) as exc:
                    problems.append(f"models.{model.name} ({model.engine}): {exc}")
                    break  # every replica would fail the same way
                url = f"http://{LOCAL_HOST}:{port}"
                name = f"engine-{model.name}-{role + '-' if role else ''}{index}"
                engines.append(
                    ProcessSpec(
                        name=name,
                        role="engine",
                        argv=argv,
                        log_path=run_dir / f"{name}.log",
                        port=port,
                        url=url,
                        health_url=url + engine.health_path,
                        model=pool,
                        replica=index,
                        env=env,
                    )
                )

    problems += pipeline_problems(spec, spec_path)
    host = spec.gateway.host
    first_port = gateway_port or spec.gateway.port
    count = spec.gateway.replicas
    ports = list(range(first_port, first_port + count))
    if ports[-1] > 65535:
        problems.append(f"gateway.replicas: {count} gateways from port {first_port} run past port 65535")
    for port in ports:
        if port <= 65535 and not port_is_free(host, port):
            problems.append(
                f"gateway.port: port {port} on {host} is in use; stop what uses it, change gateway.port, "
                "or pass --port"
                + (f" (gateway.replicas: {count} gateways take ports {ports[0]}-{ports[-1]})" if count > 1 else "")
            )
    if problems:
        raise PlanError(problems)

    endpoint_flags = [flag for e in engines for flag in ("--endpoint", f"{e.model}={e.url}")]
    gateways = []
    for index, port in enumerate(ports):
        gateway_url = f"http://{connect_host(host)}:{port}"
        name = "gateway" if count == 1 else f"gateway-{index}"
        gateways.append(
            ProcessSpec(
                name=name,
                role="gateway",
                argv=flotilla_command(
                    "gateway", str(spec_path.resolve()), "--host", host, "--port", str(port), *endpoint_flags
                ),
                log_path=run_dir / f"{name}.log",
                port=port,
                url=gateway_url,
                health_url=gateway_url + "/health/ready",
            )
        )
    return RunPlan(engines=engines, gateways=gateways)
