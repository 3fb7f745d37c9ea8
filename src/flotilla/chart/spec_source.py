"""A spec file read for rendering: the Flotilla spec as written, or the seed's unified YAML made
deployable (opea_seed.py), checked by the spec's own rules with every ${ENV} reference left as
written (renderers write references, never the values they stand for)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flotilla.chart.opea_seed import is_seed_format, seed_deployment
from flotilla.pipeline.seed_import import ImportProblem
from flotilla.spec.loader import SpecError, parse_spec
from flotilla.spec.root import FlotillaSpec


@dataclass
class SpecSource:
    data: dict[str, Any]  # the spec as written: ${ENV} references intact
    spec: FlotillaSpec  # validated; string values still hold their references
    source: str
    base_dir: Path  # relative paths of the spec (ingest.sources) start here
    service_ports: dict[str, int] = field(default_factory=dict)  # seed format: model -> its service's port
    from_seed: bool = False


def _escape_references(node: Any) -> Any:
    """`${X}` -> `$${X}`: the loader then keeps every reference as the literal text it was."""
    if isinstance(node, dict):
        return {k: _escape_references(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_escape_references(v) for v in node]
    if isinstance(node, str):
        return node.replace("${", "$${")
    return node


def check_spec(data: dict[str, Any], source: str) -> FlotillaSpec:
    return parse_spec(_escape_references(data), source, env={})


def seed_file(path: Path) -> bool:
    """Whether a readable YAML file is in the seed's unified format (unreadable: not; the reader says why)."""
    try:
        return is_seed_format(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError):
        return False


def read_spec_source(path: Path) -> SpecSource:
    """Raises SpecError (problems with field paths) for a file that cannot be deployed."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(str(path), [f"not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if is_seed_format(data):
        name = re.sub(r"[^a-z0-9-]+", "-", path.stem.lower()).strip("-") or "pipeline"
        if not name[0].isalpha():
            name = "p-" + name
        try:
            deployment = seed_deployment(data, name[:40].rstrip("-"))
        except ImportProblem as exc:
            raise SpecError(str(path), [str(exc)]) from None
        spec = check_spec(deployment.spec, str(path))
        return SpecSource(deployment.spec, spec, str(path), path.parent, deployment.service_ports, from_seed=True)
    if not isinstance(data, dict):
        raise SpecError(str(path), ["(top level): the spec must be a YAML mapping with `models:` and `gateway:`"])
    return SpecSource(data, check_spec(data, str(path)), str(path), path.parent)
