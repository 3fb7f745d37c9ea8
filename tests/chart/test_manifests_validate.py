"""`helm lint --strict` passes, and every rendered manifest validates against the Kubernetes 1.30+
schemas (kubernetes-validate, offline) or, for custom resources, against its CRD in shared/crds."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from chartkit import CHART, EXAMPLES, render
from shared import need_shared
from flotilla.chart.helm import run_helm

# The kitchen sink: everything the examples do not switch on.
EVERYTHING = CHART.parent.parent / "tests" / "chart" / "everything.yaml"
CASES = {"defaults": None, **{p.stem: p for p in EXAMPLES}, "everything": EVERYTHING}
KUBERNETES_VERSIONS = ["1.30", kubernetes_validate.utils.latest_version()]


def values_text(path: Path | None) -> str:
    return "" if path is None else path.read_text()


@pytest.mark.parametrize("case", CASES)
def test_helm_lint_strict(case):
    args = ["lint", "--strict", str(CHART)]
    if CASES[case] is not None:
        args += ["--values", str(CASES[case])]
    out = run_helm(args)
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out


def _strict(schema: Any) -> Any:
    """Reject fields the CRD does not declare, as `kubectl apply --validate=strict` does."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


# KEDA's TriggerAuthentication CRD is not among ../shared/crds (only ScaledObject is). Until it is,
# the part the chart renders (spec.secretTargetRef, as in KEDA v2.20's CRD) is checked by this schema,
# closed to unknown keys as the CRD check is; a CRD found in ../shared/crds takes precedence.
TRIGGER_AUTHENTICATION = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "secretTargetRef": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["parameter", "name", "key"],
                        "properties": {"parameter": {"type": "string"}, "name": {"type": "string"}, "key": {"type": "string"}},
                    },
                },
            },
        },
    },
    "additionalProperties": False,
}


@functools.cache
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    validators = {("keda.sh/v1alpha1", "TriggerAuthentication"): jsonschema.Draft7Validator(TRIGGER_AUTHENTICATION)}
    for path in sorted(need_shared("crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schema = _strict(version["schema"]["openAPIV3Schema"])
                    validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators


def problems_of(doc: dict[str, Any]) -> list[str]:
    where = f"{doc['kind']} {doc['metadata']['name']}"
    crd = crd_validators().get((doc["apiVersion"], doc["kind"]))
    if crd is not None:
        return [f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in crd.iter_errors(doc)]
    problems = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{where} (Kubernetes {version}): {'/'.join(map(str, e.path))}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{where}: no Kubernetes {version} schema and no CRD for {doc['apiVersion']} {doc['kind']}")
    return problems


@pytest.mark.parametrize("case", CASES)
def test_rendered_manifests_validate(case):
    docs = render(values_text(CASES[case]))
    assert docs, "nothing rendered"
    problems = [p for doc in docs for p in problems_of(doc)]
    assert problems == []


def test_custom_resources_are_checked_against_their_crds():
    docs = render(EVERYTHING.read_text())
    kinds = {d["kind"] for d in docs if (d["apiVersion"], d["kind"]) in crd_validators()}
    assert kinds == {"ExternalSecret", "HTTPRoute", "ScaledObject", "ServiceMonitor", "PodMonitor", "Cluster", "RabbitmqCluster",
                     "TriggerAuthentication"}


def test_a_wrong_field_is_caught_by_the_crd_check():
    scaled = next(d for d in render(EVERYTHING.read_text()) if d["kind"] == "ScaledObject")
    scaled["spec"]["minReplicas"] = 1  # KEDA calls it minReplicaCount
    assert any("minReplicas" in p for p in problems_of(scaled))


def test_a_wrong_field_is_caught_by_the_kubernetes_check():
    deployment = next(d for d in render("") if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    assert problems_of(deployment)
