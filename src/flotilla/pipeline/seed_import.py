"""`flotilla pipeline import`: the seed's unified YAML (`opea_micro_services` + `opea_mega_service`)
as a Flotilla spec fragment: `models:` for its OpenAI-style services, `pipelines:` with one pipeline."""

from __future__ import annotations

from typing import Any

import yaml

from flotilla.pipeline.services import remote_service
from flotilla.spec.pipeline_flow import FlowSyntaxError, parse_flow_line


class ImportProblem(ValueError):
    """The file is not in the seed's format; the message names the field."""


def _services(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = data.get("opea_micro_services")
    if not isinstance(services, dict) or not services:
        raise ImportProblem("opea_micro_services: expected a mapping of service name -> {endpoint, port}")
    for name, service in services.items():
        if not isinstance(service, dict) or not isinstance(service.get("endpoint"), str):
            raise ImportProblem(f"opea_micro_services.{name}: needs `endpoint` (e.g. /v1/embeddings)")
        port = service.get("port")
        if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
            raise ImportProblem(f"opea_micro_services.{name}.port: {port!r} is not a port number")
    return services


def import_seed(data: Any, pipeline_name: str, host: str = "localhost") -> dict[str, Any]:
    """The spec fragment ({models, pipelines}) for a parsed seed-format YAML."""
    if not isinstance(data, dict):
        raise ImportProblem("(top level): expected a mapping with opea_micro_services and opea_mega_service")
    services = _services(data)
    mega = data.get("opea_mega_service")
    flow = mega.get("mega_flow") if isinstance(mega, dict) else None
    if isinstance(flow, str):
        flow = [flow]
    if not isinstance(flow, list) or not flow or not all(isinstance(line, str) for line in flow):
        raise ImportProblem("opea_mega_service.mega_flow: expected a list of lines like 'a >> b >> c'")
    previous: dict[str, str] = {}
    for index, line in enumerate(flow):
        try:
            groups = parse_flow_line(line, index)
        except FlowSyntaxError as exc:
            raise ImportProblem(f"opea_mega_service.mega_flow[{index}]: {exc}") from None
        for before, after in zip(groups, groups[1:]):
            for name in after:
                if len(before) == 1:
                    previous.setdefault(name, before[0])
    nodes: dict[str, Any] = {}
    models: list[dict[str, Any]] = []
    for name, service in services.items():
        node, model = remote_service(name, service["endpoint"], service.get("host", host), service.get("port"), previous.get(name))
        nodes[name] = node
        if model is not None:
            models.append(model)
    return {"models": models, "pipelines": [{"name": pipeline_name, "nodes": nodes, "flow": list(flow)}]}


def import_seed_text(text: str, pipeline_name: str, host: str = "localhost") -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ImportProblem(f"not valid YAML: {exc}") from None
    return import_seed(data, pipeline_name, host)
