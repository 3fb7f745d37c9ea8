"""The chart in production (issue 14): each defect the review found, rendered and checked.

Name rules and Kubernetes typos refused by Helm, GPU-safe rollouts and disruption budgets, drains
and grace periods, a gateway checksum of exactly what the gateway reads, one timeout knob,
resources on every container with /dev/shm counted, demand-based KEDA scaling that does not read
a missing scrape as idle, the opt-in model download and the real-completion helm test."""

from __future__ import annotations

import copy
import subprocess

import pytest
import yaml

from chartkit import CHART, EXAMPLES, container, env_map, find, model_spec, one, render
from flotilla.chart.helm import HelmError, find_helm
from flotilla.spec.loader import SpecError, parse_spec

GPU = {"engine": "vllm", "vllm": {"model": "org/m"}}


def render_error(values) -> str:
    with pytest.raises(HelmError) as info:
        render(values)
    return info.value.stderr


def lint_error(values, tmp_path) -> str:
    """helm lint --strict's report of a values file it must refuse (it reports on stdout)."""
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    lint = subprocess.run([str(find_helm()), "lint", "--strict", str(CHART), "--values", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert lint.returncode != 0, lint.stdout
    return (lint.stdout + lint.stderr).replace('\\"', '"')


def engine(docs, model: str):
    return one(docs, "Deployment", f"rel-flotilla-{model}")


def gateway(docs):
    return one(docs, "Deployment", "rel-flotilla")


def pod_spec(deployment):
    return deployment["spec"]["template"]["spec"]


# --- names and Kubernetes typos are refused before anything renders ------------------------------


BAD_VALUES = {
    "underscore in a model name": (model_spec(name="A_B", engine="sim"), "/models/0/name"),
    "42-character model name": (model_spec(name="m" * 42, engine="sim"), "/models/0/name"),
    "duplicate model names": (
        {"models": [{"name": "chat", "engine": "sim"}, {"name": "chat", "engine": "sim"}]}, 'the name "chat" is used twice'),
    "duplicate token names": (
        {"models": [{"name": "m", "engine": "sim"}], "gateway": {"tokens": [
            {"name": "staff", "token": "first-secret-1"}, {"name": "staff", "token": "other-secret-2"}]}},
        'gateway.tokens: the name "staff" is used twice'),
    "bad token name": (
        {"models": [{"name": "m", "engine": "sim"}], "gateway": {"tokens": [{"name": "a b", "token": "first-secret-1"}]}},
        "/gateway/tokens/0/name"),
    "resources.limit": (model_spec(name="m", engine="sim", resources={"limit": {"cpu": "1"}}), "'limit' not allowed"),
    "tolerations[].operatr": (
        model_spec(name="m", engine="sim", tolerations=[{"key": "gpu", "operatr": "Exists"}]), "'operatr' not allowed"),
    "env[].nam": (model_spec(name="m", engine="sim", env=[{"nam": "X", "value": "1"}]), "'nam' not allowed"),
    "a memory quantity in GB": (
        model_spec(name="m", engine="sim", resources={"limits": {"memory": "16GB"}}), "/models/0/resources/limits/memory"),
    "gateway env[].nam": (
        {"models": [{"name": "m", "engine": "sim"}], "gateway": {"env": [{"nam": "X"}]}}, "'nam' not allowed"),
    "affinity typo": (
        model_spec(name="m", engine="sim", affinity={"nodeAffinity": {"requiredDuringScheduling": {}}}),
        "'requiredDuringScheduling' not allowed"),
}


@pytest.mark.parametrize("case", BAD_VALUES)
def test_helm_template_refuses(case):
    values, expected = BAD_VALUES[case]
    assert expected in render_error(values)


@pytest.mark.parametrize("case", ["42-character model name", "duplicate model names", "tolerations[].operatr"])
def test_helm_lint_refuses(case, tmp_path):
    values, expected = BAD_VALUES[case]
    assert expected in lint_error(values, tmp_path)


@pytest.mark.parametrize("case", BAD_VALUES)
def test_flotilla_validate_refuses_the_same(case):
    values, _ = BAD_VALUES[case]
    with pytest.raises(SpecError):
        parse_spec(copy.deepcopy(values), "values.yaml")


def test_the_longest_valid_model_name_renders_valid_object_names():
    docs = render(model_spec(name="m" * 40, engine="sim"))
    service = one(docs, "Service", "rel-flotilla-" + "m" * 40)
    assert len(service["metadata"]["name"]) <= 63


def test_correct_kubernetes_fields_still_pass():
    entry = {
        "name": "m", **GPU,
        "resources": {"requests": {"cpu": "4", "memory": "40Gi"}, "limits": {"cpu": 8, "memory": "64Gi"}},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "securityContext": {"readOnlyRootFilesystem": False}, "podSecurityContext": {"fsGroup": 1000},
    }
    c = container(engine(render(model_spec(**entry)), "m"))
    assert c["resources"]["limits"]["memory"] == "64Gi"
    assert env_map(c)["B"] == {"fieldRef": {"fieldPath": "status.podIP"}}


# --- rollouts and disruption ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cache", "expected"),
    [
        ({"type": "pvc", "accessMode": "ReadWriteOnce"}, {"type": "Recreate"}),
        ({"type": "pvc", "accessMode": "ReadWriteOncePod"}, {"type": "Recreate"}),
        ({"type": "pvc", "accessMode": "ReadWriteMany"}, {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}),
        ({"type": "emptyDir"}, {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}),
        ({"type": "hostPath", "hostPath": "/data"}, {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}),
    ],
)
def test_default_strategy_never_surges_a_gpu_pod_and_recreates_only_for_rwo(cache, expected):
    assert engine(render(model_spec(name="m", **GPU, cache=cache)), "m")["spec"]["strategy"] == expected


def test_strategy_is_a_knob():
    strategy = {"type": "RollingUpdate", "maxSurge": 1, "maxUnavailable": 0}
    deployment = engine(render(model_spec(name="m", **GPU, cache={"type": "pvc"}, strategy=strategy)), "m")
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    recreate = engine(render(model_spec(name="m", **GPU, strategy={"type": "Recreate"})), "m")
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}


def test_progress_deadline_covers_the_startup_window():
    plain = engine(render(model_spec(name="m", **GPU, probes={"startupTimeoutSeconds": 3600})), "m")
    assert plain["spec"]["progressDeadlineSeconds"] >= 3600
    downloading = engine(render(model_spec(name="m", **GPU, probes={"startupTimeoutSeconds": 3600}, download={"enabled": True})), "m")
    assert downloading["spec"]["progressDeadlineSeconds"] >= 2 * 3600
    with pytest.raises(SpecError, match="progressDeadlineSeconds"):
        parse_spec(model_spec(name="m", **GPU, progressDeadlineSeconds=600), "values.yaml")


def test_disruption_budgets_for_every_engine_and_the_gateway_opt_out():
    docs = render(model_spec(name="m", **GPU))
    budgets = {d["metadata"]["name"]: d["spec"] for d in find(docs, "PodDisruptionBudget")}
    assert set(budgets) == {"rel-flotilla", "rel-flotilla-m"}
    assert budgets["rel-flotilla-m"]["maxUnavailable"] == 1
    assert budgets["rel-flotilla-m"]["selector"]["matchLabels"]["flotilla/model"] == "m"
    assert budgets["rel-flotilla-m"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    off = render(model_spec(name="m", **GPU, disruptionBudget={"enabled": False}))
    assert [d["metadata"]["name"] for d in find(off, "PodDisruptionBudget")] == ["rel-flotilla"]


def test_topology_spread_by_default_except_on_a_rwo_claim_and_opt_out():
    spread = pod_spec(engine(render(model_spec(name="m", **GPU, replicas=2)), "m"))["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert spread["labelSelector"]["matchLabels"]["flotilla/model"] == "m"
    assert spread["matchLabelKeys"] == ["pod-template-hash"]
    rwo = pod_spec(engine(render(model_spec(name="m", **GPU, cache={"type": "pvc"})), "m"))
    assert "topologySpreadConstraints" not in rwo
    off = pod_spec(engine(render(model_spec(name="m", **GPU, topologySpread={"enabled": False})), "m"))
    assert "topologySpreadConstraints" not in off
    assert "topologySpreadConstraints" in pod_spec(gateway(render(model_spec(name="m", **GPU))))


# --- drains and grace periods ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["vllm", "sglang", "tgi", "sim", "llamacpp"])
def test_engines_drain_in_flight_requests_before_sigterm(kind):
    entry = {"engine": kind, kind: {"model": "org/m"}} if kind in ("vllm", "sglang", "tgi") else {"engine": kind}
    deployment = engine(render(model_spec(name="m", **entry)), "m")
    command = container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] in ("python3", "sh")
    delay = int(command[command.index("15")])
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    # The grace lets the drain wait out the longest request (gateway.requestTimeoutS) after its delay.
    assert grace >= delay + 3600


def test_gateway_waits_for_endpoints_to_drop_it_then_drains():
    g = gateway(render(model_spec(name="m", engine="sim")))
    assert container(g)["lifecycle"]["preStop"] == {"sleep": {"seconds": 10}}
    assert pod_spec(g)["terminationGracePeriodSeconds"] >= 10 + 3600
    assert g["spec"]["strategy"] == {"type": "Recreate"}  # sqlite: one writer
    values = model_spec(name="m", engine="sim")
    values["tokenDatabase"] = {"type": "postgresql"}
    values["gateway"]["replicas"] = 2
    values["rabbitmq"] = {"type": "internal"}
    rolling = gateway(render(values))
    assert rolling["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


# --- the gateway restarts exactly when what it reads changes --------------------------------------


def checksum(values) -> str:
    return gateway(render(values))["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


def test_engine_only_changes_do_not_restart_the_gateway():
    base = model_spec(name="m", **GPU)
    for change in ({"resources": {"requests": {"cpu": "8", "memory": "32Gi"}}}, {"replicas": 3},
                   {"probes": {"startupTimeoutSeconds": 7200}}, {"tolerations": [{"key": "a", "operator": "Exists"}]},
                   {"cache": {"type": "pvc", "size": "100Gi"}}):
        changed = copy.deepcopy(base)
        changed["models"][0].update(change)
        assert checksum(changed) == checksum(base), change


def test_gateway_inputs_restart_it():
    base = model_spec(name="m", **GPU)
    rotated = copy.deepcopy(base)
    rotated["gateway"]["tokens"][0]["token"] = "rotated-secret-2"
    assert checksum(rotated) != checksum(base)
    tuned = copy.deepcopy(base)
    tuned["models"][0]["maxConcurrency"] = 16
    assert checksum(tuned) != checksum(base)


def test_gateway_configmap_holds_only_what_the_gateway_reads():
    docs = render(model_spec(name="m", **GPU, resources={"requests": {"cpu": "8"}}, replicas=2))
    spec = yaml.safe_load(one(docs, "ConfigMap", "rel-flotilla")["data"]["flotilla.yaml"])
    assert spec["models"] == [{"name": "m", "engine": "vllm", "vllm": {"model": "org/m"}}]
    assert not {"resources", "replicas", "requestTimeoutS", "disruptionBudget"} & set(spec["gateway"])
    # Autoscaling stays: a model without replicas is then scaling from zero, and its requests wait.
    scaled = render(model_spec(name="m", **GPU, autoscaling={"enabled": True, "minReplicas": 0}))
    spec = yaml.safe_load(one(scaled, "ConfigMap", "rel-flotilla")["data"]["flotilla.yaml"])
    assert spec["models"][0]["autoscaling"] == {"enabled": True, "minReplicas": 0}


# --- one timeout knob -----------------------------------------------------------------------------


def test_one_knob_sets_ingress_route_and_gateway_timeouts():
    values = model_spec(name="m", engine="sim")
    values["gateway"]["requestTimeoutS"] = 1800
    values["ingress"] = {"enabled": True}
    docs = render(values)
    annotations = one(docs, "Ingress")["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "1800"
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "1800"
    spec = yaml.safe_load(one(docs, "ConfigMap", "rel-flotilla")["data"]["flotilla.yaml"])
    assert spec["gateway"]["maxQueueWaitS"] == 1800
    # The gateway's wait for an engine's first byte (600 s by default) follows the knob; a stream as a
    # whole is bounded only by its silences (idleTimeoutS) and the Ingress.
    assert spec["gateway"]["firstByteTimeoutS"] == 1800 and "upstreamTimeoutS" not in spec["gateway"]
    values["gateway"]["upstreamTimeoutS"] = 900  # the deprecated name, given: it is not contradicted
    deprecated = yaml.safe_load(one(render(values), "ConfigMap", "rel-flotilla")["data"]["flotilla.yaml"])["gateway"]
    assert deprecated["upstreamTimeoutS"] == 900 and "firstByteTimeoutS" not in deprecated
    del values["gateway"]["upstreamTimeoutS"]
    values["ingress"] = {"enabled": False}
    values["httpRoute"] = {"enabled": True, "parentRefs": [{"name": "gw"}]}
    assert one(render(values), "HTTPRoute")["spec"]["rules"][0]["timeouts"] == {"request": "1800s", "backendRequest": "1800s"}
    assert pod_spec(gateway(docs))["terminationGracePeriodSeconds"] >= 1800


def test_explicit_values_win_and_longer_ones_are_refused():
    values = model_spec(name="m", engine="sim")
    values["ingress"] = {"enabled": True, "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "120"}}
    values["gateway"]["maxQueueWaitS"] = 60
    docs = render(values)
    assert one(docs, "Ingress")["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "120"
    assert yaml.safe_load(one(docs, "ConfigMap", "rel-flotilla")["data"]["flotilla.yaml"])["gateway"]["maxQueueWaitS"] == 60
    values["gateway"]["maxQueueWaitS"] = 7200
    assert "gateway.maxQueueWaitS (7200) is longer than gateway.requestTimeoutS (3600)" in render_error(values)


# --- resources ------------------------------------------------------------------------------------


def all_containers(docs):
    for doc in docs:
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec") if doc["kind"] in ("Deployment", "Job") else spec if doc["kind"] == "Pod" else None
        if pod:
            yield from ((doc, c) for c in pod.get("initContainers", []) + pod["containers"])


@pytest.mark.parametrize("example", [p.stem for p in EXAMPLES] + ["everything"])
def test_every_container_has_requests_and_limits(example):
    from test_manifests_validate import CASES

    docs = render(CASES[example].read_text())
    missing = [f"{d['kind']} {d['metadata']['name']} / {c['name']}" for d, c in all_containers(docs)
               if not all(k in c.get("resources", {}).get(s, {}) for s in ("requests", "limits") for k in ("cpu", "memory"))]
    assert missing == []


def test_shared_memory_is_counted_in_the_default_memory():
    c = container(engine(render(model_spec(name="m", **GPU, shmSize="16Gi")), "m"))
    assert c["resources"]["requests"]["memory"] == "16Gi"  # expected use
    assert c["resources"]["limits"]["memory"] == f"{(32 + 16) * 1024}Mi"  # the worst case: full /dev/shm
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_a_memory_limit_without_room_beyond_shm_is_refused():
    message = render_error(model_spec(name="m", **GPU, shmSize="16Gi", resources={"limits": {"memory": "16Gi"}}))
    assert "models[m].resources.limits.memory (16Gi) must be larger than shmSize (16Gi)" in message


# --- KEDA -----------------------------------------------------------------------------------------


def scaled(values, model="m"):
    return one(render(values), "ScaledObject", f"rel-flotilla-{model}")["spec"]


def test_keda_scales_on_queued_plus_in_flight_without_reading_a_gap_as_idle():
    spec = scaled(model_spec(name="m", **GPU, maxConcurrency=16, autoscaling={"enabled": True, "minReplicas": 0}))
    trigger = spec["triggers"][0]["metadata"]
    query = trigger["query"]
    assert 'priority="all"' in query and "flotilla_replica_in_flight" in query
    assert "vector(0)" not in query
    assert trigger["threshold"] == "16" and trigger["ignoreNullValues"] == "false"
    assert spec["fallback"] == {"failureThreshold": 3, "replicas": 1, "behavior": "currentReplicasIfHigher"}
    down = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= 600 and spec["cooldownPeriod"] >= 600


def test_keda_needs_a_metrics_source():
    with pytest.raises(SpecError, match="prometheusAddress"):
        parse_spec(model_spec(name="m", **GPU, autoscaling={"enabled": True, "prometheusAddress": None}), "v.yaml")
    assert "prometheusAddress" in render_error(model_spec(name="m", **GPU, autoscaling={"enabled": True, "prometheusAddress": None}))


def test_keda_counts_the_rabbitmq_queue_over_the_management_api():
    values = model_spec(name="m", **GPU, maxConcurrency=8, autoscaling={"enabled": True, "rabbitmq": {"enabled": True}})
    values["rabbitmq"] = {"type": "internal"}
    docs = render(values)
    spec = one(docs, "ScaledObject", "rel-flotilla-m")["spec"]
    rabbit = next(t for t in spec["triggers"] if t["type"] == "rabbitmq")
    assert rabbit["metadata"]["protocol"] == "http"  # AMQP would count ready messages only: the tickets are unacked
    assert rabbit["metadata"]["queueName"] == "rel-flotilla.sched.m"  # the dispatcher's prefix: the release
    gateway_spec = yaml.safe_load(one(docs, "ConfigMap", "rel-flotilla")["data"]["flotilla.yaml"])
    assert gateway_spec["gateway"]["dispatcher"]["prefix"] == "rel-flotilla"  # the same queue the gateways use
    assert rabbit["metadata"]["host"] == "http://rel-flotilla-broker.ns.svc.cluster.local:15672/"
    assert spec["advanced"]["scalingModifiers"]["formula"] == "queued + inflight"
    prometheus = next(t for t in spec["triggers"] if t["type"] == "prometheus")
    assert "flotilla_queue_depth{" not in prometheus["metadata"]["query"].split(" or ")[0]
    auth = one(docs, "TriggerAuthentication")
    assert {r["name"] for r in auth["spec"]["secretTargetRef"]} == {"rel-flotilla-broker-default-user"}
    values["rabbitmq"] = {"type": "none"}
    assert "only with the RabbitMQ dispatcher" in render_error(values)


# --- download, helm test ----------------------------------------------------------------------------


def test_download_init_container_fills_the_cache_before_the_engine():
    entry = {"name": "m", "engine": "vllm", "vllm": {"model": "org/m", "revision": "abc123"},
             "hfToken": {"existingSecret": "hf", "secretKey": "token"},
             "download": {"enabled": True, "allowPatterns": ["*.safetensors"]}}
    deployment = engine(render(model_spec(**entry)), "m")
    download = pod_spec(deployment)["initContainers"][0]
    assert download["name"] == "download" and download["image"] == container(deployment)["image"]
    assert download["command"][:2] == ["python3", "-c"]
    assert download["command"][3:] == ["org/m", "abc123", "*.safetensors"]
    env = env_map(download)
    assert env["HF_HOME"] == "/models" and env["HF_TOKEN"] == {"secretKeyRef": {"name": "hf", "key": "token"}}
    assert {"name": "model-cache", "mountPath": "/models"} in download["volumeMounts"]
    assert env_map(container(deployment))["HF_HUB_OFFLINE"] == "1"
    assert "download" in render_error(model_spec(name="m", engine="llamacpp", download={"enabled": True}))


def test_helm_test_asks_every_model_for_a_completion():
    values = {"models": [{"name": "a", "engine": "sim"}, {"name": "b", "engine": "sim"}],
              "gateway": {"tokens": [{"name": "staff", "token": "staff-secret-1"}]}}
    pod = one(render(values), "Pod")
    c = pod["spec"]["containers"][0]
    assert c["command"] == ["python", "-m", "flotilla.chart.smoke"]
    assert c["args"].count("--expect") == 2 and "a" in c["args"] and "b" in c["args"]
