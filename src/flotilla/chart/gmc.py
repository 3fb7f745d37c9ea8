"""`flotilla render SPEC --format gmc`: one OPEA `GMConnector` (gmc.opea.io/v1alpha3) per pipeline,
with the workloads of its steps.

The graph becomes GMC's: a root Sequence whose steps follow the flow, a group that runs in
parallel (`(a, b) >> c`) an Ensemble sub-node, each step after the first taking the previous
answer (`data: $response`). Each node is the OPEA microservice the router calls
(opea_components.py), followed by what that microservice calls as an `isDownstreamService` step:
the model's engine (rendered by the chart's own engine templates: image, arguments, cache,
probes), the vector store (a CloudNativePG Cluster with pgvector, or the store's own URL). Secrets
reach the microservices through secretKeyRef, never the GMConnector's config.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from flotilla.chart.opea_components import COMPONENTS, ENGINE_STEPS, HEALTH_PATH
from flotilla.chart.render import Manifest, helm_template, split_manifests
from flotilla.chart.spec_source import SpecSource

GMC_STREAM_WARNING = (
    "GMC's router cuts long answers: it reads each step's whole answer before replying and gives a "
    "request one minute (its handler's context and its server's write timeout), so a long LLM stream "
    "ends early. The Flotilla chart serves the same pipeline from its gateway, which streams the "
    "LLM's tokens as they come and bounds streams by silence (idleTimeoutS), not length."
)
VECTOR_DB_PORT = 5432
_KEEP_ENGINE_KINDS = {"Deployment", "Service", "PersistentVolumeClaim", "Secret", "ExternalSecret", "ConfigMap",
                      "PodDisruptionBudget", "LeaderWorkerSet"}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[-_]", name))


def _layers(pipeline) -> list[list[str]]:
    """Nodes grouped by depth in the graph: one group per sequence step, several nodes run in parallel."""
    graph = pipeline.graph
    depth: dict[str, int] = {}
    for node in graph.order:
        preds = graph.predecessors(node)
        depth[node] = 1 + max((depth[p] for p in preds), default=-1)
    layers: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for node in graph.order:
        layers[depth[node]].append(node)
    return layers


def _labels(pipeline: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "flotilla-gmc", "app.kubernetes.io/instance": pipeline,
            "app.kubernetes.io/component": component, "app.kubernetes.io/part-of": "flotilla"}


def _microservice(name: str, namespace: str, pipeline: str, component, env: list[dict[str, Any]]) -> list[dict[str, Any]]:
    labels = _labels(pipeline, name)
    selector = {"app": name}
    container = {
        "name": "microservice",
        "image": component.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": component.port, "protocol": "TCP"}],
        "env": [{"name": k, "value": v} for k, v in component.env.items()] + env + [
            {"name": "HF_HOME", "value": "/tmp/.cache/huggingface"}, {"name": "HOME", "value": "/tmp"},
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "startupProbe": {"httpGet": {"path": HEALTH_PATH, "port": "http"}, "periodSeconds": 5, "failureThreshold": 60},
        "readinessProbe": {"httpGet": {"path": HEALTH_PATH, "port": "http"}, "periodSeconds": 5, "timeoutSeconds": 5},
        "livenessProbe": {"httpGet": {"path": HEALTH_PATH, "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 5,
                          "failureThreshold": 6},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**labels, **selector}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"type": "ClusterIP", "selector": selector,
                 "ports": [{"name": "http", "port": component.port, "targetPort": "http", "protocol": "TCP"}]},
    }
    return [deployment, service]


def _vector_cluster(name: str, namespace: str, pipeline: str) -> dict[str, Any]:
    """pgvector on a CloudNativePG Cluster: the operator makes the credentials (<name>-app: uri ...)."""
    return {
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
        "metadata": {"name": name, "namespace": namespace, "labels": _labels(pipeline, "vector-db")},
        "spec": {
            "instances": 1,
            "storage": {"size": "10Gi"},
            "bootstrap": {"initdb": {"database": "vectors", "owner": "vectors",
                                     "postInitApplicationSQL": ["CREATE EXTENSION IF NOT EXISTS vector"]}},
            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
        },
    }


def _engine_manifests(source: SpecSource, models: set[str], release: str, namespace: str,
                      chart: Path | None, extra_args: list[str] | None) -> tuple[list[dict[str, Any]], dict[str, tuple[str, int]]]:
    """The chart's own engine objects for these models, and each model's (Service name, port)."""
    values = {k: v for k, v in source.data.items() if k in ("global",)}
    values["models"] = [m for m in source.data["models"] if m["name"] in models]
    values["gateway"] = {"tokens": []}
    values["networkPolicy"] = {"enabled": False}  # engines answer the OPEA microservices, not only the gateway
    values["helmTest"] = {"enabled": False}
    rendered = helm_template(yaml.safe_dump(values, sort_keys=False), release=release, namespace=namespace,
                             chart=chart, extra_args=extra_args)
    docs = []
    services: dict[str, tuple[str, int]] = {}
    for manifest in split_manifests(rendered):
        doc = yaml.safe_load(manifest.text)
        labels = doc["metadata"].get("labels") or {}
        if doc["kind"] not in _KEEP_ENGINE_KINDS or labels.get("app.kubernetes.io/component") != "engine":
            continue
        docs.append(doc)
        if doc["kind"] == "Service" and labels.get("flotilla/model") and not labels.get("flotilla/role"):
            services[labels["flotilla/model"]] = (doc["metadata"]["name"], doc["spec"]["ports"][0]["port"])
    return docs, services


_OPEA_TAKES = {"timeoutS", "retries", "backoffS", "optional", "inputs", "systemPrompt", "maxContextChars", "params",
               "k", "maxK", "scoreThreshold", "topN", "maxTopN"}


def _dropped_settings(pipeline) -> list[str]:
    dropped = []
    for name, node in pipeline.nodes.items():
        given = node.model_dump(by_alias=True, exclude_unset=True)
        dropped += [f"{name}.{key}" for key in given if key in _OPEA_TAKES]
    return dropped


def gmc_manifests(source: SpecSource, *, release: str = "flotilla", namespace: str = "default",
                  chart: Path | None = None, extra_args: list[str] | None = None) -> tuple[list[Manifest], list[str]]:
    spec = source.spec
    if not spec.pipelines:
        raise ValueError(f"{source.source} has no pipelines: GMC deploys pipelines (the chart deploys models)")
    warnings = ["GMC's router has no tokens, priorities or queues: anyone who reaches its Service calls the "
                "pipeline, first come first served (the Flotilla chart's gateway keeps all three)"]
    models = {m.name: m for m in spec.models}
    used = {node.model for p in spec.pipelines for node in p.nodes.values() if getattr(node, "model", None)}
    launched = {n for n in used if models[n].descriptor.container is not None}
    for name in sorted(launched):
        if models[name].roles is not None:
            raise ValueError(f"models[{name}].roles: disaggregated prefill/decode needs Flotilla's gateway to pair the "
                             "two; under GMC an OPEA microservice calls one engine (use the chart)")
        if models[name].autoscaling is not None and models[name].autoscaling.enabled:
            warnings.append(f"models[{name}].autoscaling: KEDA scales on the Flotilla gateway's metrics, which GMC "
                            "has none of: the GMC output leaves the ScaledObject out (the Deployment starts with one replica)")
    engine_docs, engine_services = _engine_manifests(source, launched, release, namespace, chart, extra_args) if launched else ([], {})
    docs: list[dict[str, Any]] = list(engine_docs)
    for pipeline in spec.pipelines:
        dropped = _dropped_settings(pipeline)
        if dropped:
            warnings.append(f"pipeline {pipeline.name}: OPEA's microservices take none of {', '.join(dropped)}; "
                            "they run with their own defaults")
        docs += _pipeline_docs(pipeline, models, engine_services, namespace, warnings)
    manifests = [Manifest(d["kind"], d["metadata"]["name"], yaml.safe_dump(d, sort_keys=False)) for d in docs]
    return manifests, warnings


def _pipeline_docs(pipeline, models, engine_services, namespace: str, warnings: list[str]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    steps_of: dict[str, list[dict[str, Any]]] = {}  # node -> [router step, downstream steps...]
    used_names: set[str] = set()

    def unique(name: str, node: str) -> str:
        """Step names are unique within a GMConnector: GMC's own name first, then suffixed by the node."""
        chosen = name if name not in used_names else f"{name}{_camel(node)}"
        used_names.add(chosen)
        return chosen

    for name, node in pipeline.nodes.items():
        if node.kind == "http":
            steps_of[name] = [{"name": unique(_camel(name), name), "externalService": node.url}]
            continue
        component = COMPONENTS[node.kind]
        service = f"{pipeline.name}-{name}"[:63].rstrip("-")
        env: list[dict[str, Any]] = []
        step = {"name": unique(component.step, name),
                "internalService": {"serviceName": service, "config": {"endpoint": component.endpoint}}}
        downstream: list[dict[str, Any]] = []
        if node.kind == "retriever":
            store = node.store
            if store.kind == "pgvector" and store.url:
                # The store's own server: its URL (a password included) belongs in a Secret the user makes.
                secret = f"{service}-store"
                env.append({"name": component.downstream_variable,
                            "valueFrom": {"secretKeyRef": {"name": secret, "key": "url"}}})
                warnings.append(f"pipeline {pipeline.name}: node {name} keeps its vectors at its own pgvector url: "
                                f"kubectl create secret generic {secret} --from-literal=url=postgresql://...")
            else:
                if store.kind == "sqlite":
                    warnings.append(f"pipeline {pipeline.name}: node {name}'s sqlite store has no OPEA retriever: "
                                    "the GMC output keeps its vectors in pgvector (a CloudNativePG Cluster)")
                cluster = f"{pipeline.name}-{name}-vectordb"[:50].rstrip("-")
                docs.append(_vector_cluster(cluster, namespace, pipeline.name))
                env.append({"name": component.downstream_variable,
                            "valueFrom": {"secretKeyRef": {"name": f"{cluster}-app", "key": "uri"}}})
                downstream.append({"name": unique(component.downstream_step, name),
                                   "internalService": {"serviceName": f"{cluster}-rw", "isDownstreamService": True,
                                                       "config": {"port": str(VECTOR_DB_PORT)}}})
        else:
            model = models[node.model]
            engine = model.descriptor
            if engine.container is None:
                url = model.urls[0]
                env.append({"name": component.downstream_variable, "value": url})
            else:
                svc, port = engine_services[model.name]
                env.append({"name": component.downstream_variable, "value": f"http://{svc}:{port}"})
                config = {"modelId": _model_id(model), "endpoint": component.downstream_endpoint}
                step_name = component.downstream_step or ENGINE_STEPS.get(engine.kind, _camel(engine.kind))
                downstream.append({"name": unique(step_name, name),
                                   "internalService": {"serviceName": svc, "isDownstreamService": True, "config": config}})
            if node.kind == "llm":
                env.append({"name": "LLM_MODEL_ID", "value": model.upstream_model_name})
            step["internalService"]["config"][component.downstream_variable] = (
                downstream[0]["internalService"]["serviceName"] if downstream else env[0].get("value", ""))
        docs += _microservice(service, namespace, pipeline.name, component, env)
        steps_of[name] = [step, *downstream]

    root: list[dict[str, Any]] = []
    nodes: dict[str, Any] = {}
    for i, layer in enumerate(_layers(pipeline)):
        if len(layer) == 1:
            first, *rest = steps_of[layer[0]]
            root.append({**first, "data": "$response"} if root else first)
            root += rest
            continue
        group = f"parallel-{i}"
        nodes[group] = {"routerType": "Ensemble", "steps": [steps_of[n][0] for n in layer]}
        entry = {"name": unique(_camel(group), group), "nodeName": group}
        root.append({**entry, "data": "$response"} if root else entry)
        for n in layer:
            root += steps_of[n][1:]
    connector = {
        "apiVersion": "gmc.opea.io/v1alpha3", "kind": "GMConnector",
        "metadata": {"name": pipeline.name, "namespace": namespace, "labels": {"app.kubernetes.io/name": "gmconnector"}},
        "spec": {
            "routerConfig": {"name": "router", "serviceName": f"{pipeline.name}-router"},
            "nodes": {"root": {"routerType": "Sequence", "steps": root}, **nodes},
        },
    }
    return [connector, *docs]


def _model_id(model) -> str:
    options = getattr(model, model.engine, None)
    return str(getattr(options, "model", model.name))

