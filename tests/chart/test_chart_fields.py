"""The fields that matter in the rendered manifests: GPUs, cache, probes, secret wiring, security,
labels, discovery, network policy, exposure, monitoring, autoscaling, benchmark and helm test."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import pytest
import yaml

from conftest import container, env_map, find, model_spec, one, render
from flotilla.spec.loader import load_spec_text

EVERYTHING_FILE = Path(__file__).with_name("everything.yaml")
EVERYTHING = yaml.safe_load(EVERYTHING_FILE.read_text())
GATEWAY_METRICS = {
    "flotilla_requests_total", "flotilla_queue_depth", "flotilla_queue_wait_seconds", "flotilla_replica_in_flight",
    "flotilla_tokens_total", "flotilla_time_to_first_token_seconds",
}


@pytest.fixture(scope="module")
def everything():
    return render(EVERYTHING_FILE.read_text())


def engine(docs, model: str, release: str = "rel"):
    return one(docs, "Deployment", f"{release}-flotilla-{model}")


def pod_spec(deployment):
    return deployment["spec"]["template"]["spec"]


def secret_data(docs, name: str) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in one(docs, "Secret", name)["data"].items()}


def secret_values() -> list[str]:
    values = [t["token"] for t in EVERYTHING["gateway"]["tokens"]]
    values += [m["apiKey"] for m in EVERYTHING["models"] if "apiKey" in m]
    values += [m["hfToken"]["value"] for m in EVERYTHING["models"] if "value" in m.get("hfToken", {})]
    values += [EVERYTHING["benchmark"]["token"]] + [c["token"] for c in EVERYTHING["benchmark"]["classes"] if "token" in c]
    return values


# --- GPUs and scheduling -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "gpus"),
    [
        ({"engine": "vllm", "vllm": {"model": "o/m", "tensorParallelSize": 4}}, 4),
        ({"engine": "sglang", "sglang": {"model": "o/m", "tensorParallelSize": 2}}, 2),
        ({"engine": "tgi", "tgi": {"model": "o/m", "numShard": 2}}, 2),
        ({"engine": "vllm", "vllm": {"model": "o/m", "tensorParallelSize": 2}, "gpu": {"count": 3}}, 3),
        ({"engine": "vllm", "vllm": {"model": "o/m"}, "gpu": {"count": 0}}, None),
        ({"engine": "sim"}, None),
        ({"engine": "llamacpp"}, None),
    ],
)
def test_gpu_limit_defaults_to_the_tensor_parallel_size(entry, gpus):
    c = container(engine(render(model_spec(name="m", **entry)), "m"))
    limits = c.get("resources", {}).get("limits", {})
    if gpus is None:
        assert "nvidia.com/gpu" not in limits
    else:
        assert limits["nvidia.com/gpu"] == gpus


def test_gpu_resource_name_runtime_class_and_placement_come_from_values():
    entry = {
        "name": "m", "engine": "vllm", "vllm": {"model": "o/m"},
        "gpu": {"resourceName": "amd.com/gpu", "runtimeClassName": "nvidia"},
        "resources": {"limits": {"memory": "64Gi"}, "requests": {"cpu": "4"}},
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a100"]}]}]}}},
    }
    deployment = engine(render(model_spec(**entry)), "m")
    spec = pod_spec(deployment)
    assert container(deployment)["resources"] == {"limits": {"memory": "64Gi", "amd.com/gpu": 1}, "requests": {"cpu": "4"}}
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["nodeSelector"] == entry["nodeSelector"]
    assert spec["tolerations"] == entry["tolerations"]
    assert spec["affinity"] == entry["affinity"]


def test_shared_memory_is_memory_backed_and_sized():
    docs = render(model_spec(name="m", engine="vllm", vllm={"model": "o/m"}, shmSize="16Gi"))
    spec = pod_spec(engine(docs, "m"))
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container(engine(docs, "m"))["volumeMounts"]
    none = pod_spec(engine(render(model_spec(name="m", engine="vllm", vllm={"model": "o/m"}, shmSize=None)), "m"))
    assert all(v["name"] != "dshm" for v in none["volumes"])


# --- model cache ---------------------------------------------------------------------------------


def test_pvc_cache_holds_hf_home():
    cache = {"type": "pvc", "size": "200Gi", "storageClass": "fast", "accessMode": "ReadWriteMany", "mountPath": "/weights"}
    docs = render(model_spec(name="m", engine="vllm", vllm={"model": "o/m"}, cache=cache))
    pvc = one(docs, "PersistentVolumeClaim", "rel-flotilla-m-cache")
    assert pvc["spec"] == {"accessModes": ["ReadWriteMany"], "storageClassName": "fast", "resources": {"requests": {"storage": "200Gi"}}}
    deployment = engine(docs, "m")
    volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == "model-cache")
    assert volume == {"name": "model-cache", "persistentVolumeClaim": {"claimName": "rel-flotilla-m-cache"}}
    c = container(deployment)
    assert {"name": "model-cache", "mountPath": "/weights"} in c["volumeMounts"]
    assert env_map(c)["HF_HOME"] == "/weights"
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_existing_claim_host_path_and_empty_dir_caches():
    existing = render(model_spec(name="m", engine="vllm", vllm={"model": "o/m"}, cache={"type": "pvc", "existingClaim": "weights"}))
    assert not find(existing, "PersistentVolumeClaim", "rel-flotilla-m-cache")
    assert pod_spec(engine(existing, "m"))["volumes"][0]["persistentVolumeClaim"] == {"claimName": "weights"}
    host = render(model_spec(name="m", engine="vllm", vllm={"model": "o/m"}, cache={"type": "hostPath", "hostPath": "/data/hf"}))
    assert pod_spec(engine(host, "m"))["volumes"][0]["hostPath"] == {"path": "/data/hf", "type": "DirectoryOrCreate"}
    empty = render(model_spec(name="m", engine="vllm", vllm={"model": "o/m"}, cache={"size": "80Gi"}))
    assert pod_spec(engine(empty, "m"))["volumes"][0]["emptyDir"] == {"sizeLimit": "80Gi"}


def test_tgi_keeps_its_hub_cache_on_the_cache_volume():
    c = container(engine(render(model_spec(name="m", engine="tgi", tgi={"model": "o/m"})), "m"))
    assert env_map(c)["HUGGINGFACE_HUB_CACHE"] == "/models/hub"


# --- Hugging Face token --------------------------------------------------------------------------


def test_hf_token_from_a_chart_secret(everything):
    assert secret_data(everything, "rel-flotilla-tiny-hf-token") == {"HF_TOKEN": "hf_not_a_real_token"}
    env = env_map(container(engine(everything, "tiny")))
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        assert env[var] == {"secretKeyRef": {"name": "rel-flotilla-tiny-hf-token", "key": "HF_TOKEN"}}


def test_hf_token_from_an_existing_secret(everything):
    env = env_map(container(engine(everything, "cpu")))
    assert env["HF_TOKEN"] == {"secretKeyRef": {"name": "hf", "key": "token"}}
    assert not find(everything, "Secret", "rel-flotilla-cpu-hf-token")


def test_hf_token_from_an_external_secret(everything):
    external = one(everything, "ExternalSecret", "rel-flotilla-chat-hf-token")
    assert external["apiVersion"] == "external-secrets.io/v1"
    assert external["spec"]["secretStoreRef"] == {"name": "vault-backend", "kind": "SecretStore"}
    assert external["spec"]["refreshInterval"] == "1h"
    assert external["spec"]["target"]["name"] == "rel-flotilla-chat-hf-token"
    assert external["spec"]["data"] == [{"secretKey": "HF_TOKEN", "remoteRef": {"key": "hf/token"}}]
    env = env_map(container(engine(everything, "chat")))
    assert env["HF_TOKEN"] == {"secretKeyRef": {"name": "rel-flotilla-chat-hf-token", "key": "HF_TOKEN"}}


def test_external_secret_property_is_passed():
    entry = {"name": "m", "engine": "vllm", "vllm": {"model": "o/m"}, "hfToken": {"externalSecret": {
        "secretStoreRef": {"name": "vault"}, "remoteKey": "secret/hf", "property": "value", "refreshInterval": "15m"}}}
    external = one(render(model_spec(**entry)), "ExternalSecret")
    assert external["spec"]["data"][0]["remoteRef"] == {"key": "secret/hf", "property": "value"}
    assert external["spec"]["secretStoreRef"]["kind"] == "ClusterSecretStore"
    assert external["spec"]["refreshInterval"] == "15m"


# --- probes --------------------------------------------------------------------------------------


def test_probes_give_a_slow_loader_its_startup_window():
    probes = {"startupTimeoutSeconds": 1000, "periodSeconds": 30, "timeoutSeconds": 10,
              "readinessFailureThreshold": 2, "livenessFailureThreshold": 5}
    c = container(engine(render(model_spec(name="m", engine="vllm", vllm={"model": "o/m"}, probes=probes)), "m"))
    startup, ready, live = c["startupProbe"], c["readinessProbe"], c["livenessProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 1000
    assert startup["failureThreshold"] == math.ceil(1000 / 30)
    assert ready["failureThreshold"] == 2 and live["failureThreshold"] == 5
    for probe in (startup, ready, live):
        assert probe["httpGet"] == {"path": "/health", "port": "http"}
        assert probe["timeoutSeconds"] == 10 and probe["periodSeconds"] == 30
        # Liveness waits for the startup probe; nothing may start counting before it.
        assert "initialDelaySeconds" not in probe


def test_default_startup_window_is_half_an_hour():
    c = container(engine(render(model_spec(name="m", engine="vllm", vllm={"model": "o/m"})), "m"))
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] == 1800


def test_gateway_probes(everything):
    c = container(one(everything, "Deployment", "rel-flotilla"))
    assert c["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert c["startupProbe"]["httpGet"]["path"] == "/health/live"


# --- secrets never in ConfigMaps ------------------------------------------------------------------


def test_no_secret_value_reaches_a_configmap_or_a_pod_spec(everything):
    values = secret_values()
    assert len(values) == 6
    exposed = [d for d in everything if d["kind"] != "Secret" and any(v in yaml.safe_dump(d) for v in values)]
    assert [f"{d['kind']} {d['metadata']['name']}" for d in exposed] == []


def test_chart_secret_holds_tokens_keys_and_bench_tokens(everything):
    data = secret_data(everything, "rel-flotilla")
    assert data == {
        "token.staff": "staff-secret-value",
        "token.students.2026": "student-secret-value",
        "apikey.remote": "upstream-api-key",
        "bench.token": "bench-secret-value",
        "bench.class.guests": "guest-secret-value",
    }


def test_every_secret_reference_points_at_a_key_that_exists(everything):
    chart_secrets = {d["metadata"]["name"]: set(d["data"]) for d in everything if d["kind"] == "Secret"}
    made_elsewhere = {"rel-flotilla-chat-hf-token", "hf", "rel-flotilla-tokendb-app", "rel-flotilla-broker-default-user"}
    refs = re.findall(r"secretKeyRef:\n\s+key: (\S+)\n\s+name: (\S+)", yaml.safe_dump_all(everything))
    assert refs
    for key, name in refs:
        assert name in made_elsewhere or key in chart_secrets.get(name, set()), f"{name}/{key}"


# --- the gateway's spec --------------------------------------------------------------------------


def gateway_spec_text(docs) -> str:
    return one(docs, "ConfigMap", "rel-flotilla")["data"]["flotilla.yaml"]


def test_gateway_configmap_is_the_spec_with_secrets_as_references(everything):
    text = gateway_spec_text(everything)
    env = {"FLOTILLA_TOKEN_0": "staff-secret-value", "FLOTILLA_TOKEN_1": "student-secret-value",
           "FLOTILLA_MODEL_4_API_KEY": "upstream-api-key", "FLOTILLA_DATABASE_URL": "postgresql+asyncpg://u:p@h:5432/d",
           "FLOTILLA_RABBITMQ_URL": "amqp://u:p@broker:5672/"}
    loaded = load_spec_text(text, "configmap", env=env)
    assert [m.name for m in loaded.models] == [m["name"] for m in EVERYTHING["models"]]
    assert [(t.name, t.token, t.priority, t.threshold) for t in loaded.gateway.tokens] == [
        (t["name"], t["token"], t["priority"], t["threshold"]) for t in EVERYTHING["gateway"]["tokens"]
    ]
    assert loaded.model("remote").api_key == "upstream-api-key" and loaded.model("remote").urls == ["http://10.0.0.5:8000"]
    assert loaded.model("chat").vllm.tensor_parallel_size == 2
    assert loaded.model("chat").hf_token is None  # no Hugging Face secret for the gateway
    assert loaded.gateway.database == env["FLOTILLA_DATABASE_URL"]
    assert loaded.gateway.dispatcher.kind == "rabbitmq" and loaded.gateway.dispatcher.url == env["FLOTILLA_RABBITMQ_URL"]
    assert loaded.gateway.dispatcher.prefix == "rel-flotilla"  # releases sharing a broker keep apart
    assert loaded.gateway.host == "0.0.0.0"


def test_gateway_settings_pass_through_unchanged():
    values = model_spec(name="m", engine="sim")
    values["gateway"].update({"maxQueueWaitS": 30, "routing": "round-robin", "healthIntervalS": 5, "port": 9000})
    text = gateway_spec_text(render(values))
    loaded = load_spec_text(text, "cm", env={"FLOTILLA_TOKEN_0": "x" * 12, "FLOTILLA_DATABASE_URL": "sqlite:///x.db"})
    assert (loaded.gateway.max_queue_wait_s, loaded.gateway.routing, loaded.gateway.health_interval_s, loaded.gateway.port) == (
        30, "round-robin", 5, 9000)
    assert loaded.gateway.dispatcher.kind == "local"


def test_gateway_reaches_every_replica_through_headless_services(everything):
    deployment = one(everything, "Deployment", "rel-flotilla")
    args = container(deployment)["args"]
    endpoints = [args[i + 1] for i, a in enumerate(args) if a == "--endpoint"]
    assert endpoints == [
        "chat=dns+http://rel-flotilla-chat.ns.svc.cluster.local:8000",
        "tiny=dns+http://rel-flotilla-tiny.ns.svc.cluster.local:8080",
        "cpu=dns+http://rel-flotilla-cpu.ns.svc.cluster.local:8080",
        "fake=dns+http://rel-flotilla-fake.ns.svc.cluster.local:8000",
    ]
    assert args[:6] == ["gateway", "/etc/flotilla/flotilla.yaml", "--host", "0.0.0.0", "--port", "8000"]
    for model in ("chat", "tiny", "cpu", "fake"):
        service = one(everything, "Service", f"rel-flotilla-{model}")
        assert service["spec"]["clusterIP"] == "None"
        labels = engine(everything, model)["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert service["spec"]["selector"]["flotilla/model"] == model
    assert not find(everything, "Deployment", "rel-flotilla-remote")  # external: nothing deployed
    assert deployment["spec"]["replicas"] == 2


def test_database_url_wiring_per_type():
    sqlite = render(model_spec(name="m", engine="sim"))
    gw = one(sqlite, "Deployment", "rel-flotilla")
    assert env_map(container(gw))["FLOTILLA_DATABASE_URL"] == "sqlite:////var/lib/flotilla/flotilla.db"
    assert pod_spec(gw)["volumes"][-1] == {"name": "data", "persistentVolumeClaim": {"claimName": "rel-flotilla-data"}}
    assert one(sqlite, "PersistentVolumeClaim", "rel-flotilla-data")

    values = model_spec(name="m", engine="sim")
    values["tokenDatabase"] = {"type": "external", "external": {"url": "postgresql+asyncpg://u:pw@db:5432/f"}}
    docs = render(values)
    assert env_map(container(one(docs, "Deployment", "rel-flotilla")))["FLOTILLA_DATABASE_URL"] == {
        "secretKeyRef": {"name": "rel-flotilla", "key": "database-url"}}
    assert secret_data(docs, "rel-flotilla")["database-url"] == "postgresql+asyncpg://u:pw@db:5432/f"
    assert not find(docs, "PersistentVolumeClaim", "rel-flotilla-data")

    values["tokenDatabase"] = {"type": "external", "external": {"existingSecret": "db", "secretKey": "url"}}
    docs = render(values)
    assert env_map(container(one(docs, "Deployment", "rel-flotilla")))["FLOTILLA_DATABASE_URL"] == {
        "secretKeyRef": {"name": "db", "key": "url"}}


def test_internal_postgres_and_rabbitmq(everything):
    cluster = one(everything, "Cluster", "rel-flotilla-tokendb")
    assert cluster["spec"]["bootstrap"]["initdb"] == {"database": "flotilla", "owner": "flotilla"}
    env = container(one(everything, "Deployment", "rel-flotilla"))["env"]
    names = [e["name"] for e in env]
    url = next(e["value"] for e in env if e["name"] == "FLOTILLA_DATABASE_URL")
    assert url == "postgresql+asyncpg://$(FLOTILLA_DB_USER):$(FLOTILLA_DB_PASSWORD)@$(FLOTILLA_DB_HOST):$(FLOTILLA_DB_PORT)/$(FLOTILLA_DB_NAME)"
    # Kubernetes expands $(VAR) only from variables defined earlier in the list.
    for var in re.findall(r"\$\((\w+)\)", url):
        assert names.index(var) < names.index("FLOTILLA_DATABASE_URL")
        assert next(e for e in env if e["name"] == var)["valueFrom"]["secretKeyRef"]["name"] == "rel-flotilla-tokendb-app"
    broker = one(everything, "RabbitmqCluster", "rel-flotilla-broker")
    assert broker["spec"]["replicas"] == 1
    mq = next(e["value"] for e in env if e["name"] == "FLOTILLA_RABBITMQ_URL")
    for var in re.findall(r"\$\((\w+)\)", mq):
        assert names.index(var) < names.index("FLOTILLA_RABBITMQ_URL")


# --- security ------------------------------------------------------------------------------------


def all_pods(docs):
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            yield d["metadata"]["name"], d["spec"]


def test_every_pod_is_locked_down(everything):
    pods = dict(all_pods(everything))
    assert len(pods) == 7  # 4 engines, gateway, benchmark, helm test
    for name, spec in pods.items():
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in spec["containers"] + spec.get("initContainers", []):
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}, name


def test_non_root_and_read_only_where_the_image_allows(everything):
    pods = dict(all_pods(everything))
    for name in ("rel-flotilla", "rel-flotilla-fake", "rel-flotilla-cpu", "rel-flotilla-bench-1", "rel-flotilla-test"):
        assert pods[name]["securityContext"]["runAsNonRoot"] is True, name
        for c in pods[name]["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert {"name": "tmp", "mountPath": "/tmp"} in c.get("volumeMounts", []) or name == "rel-flotilla-test"
    # The GPU engines' images run as root and write under their own tree: not claimed otherwise.
    for name in ("rel-flotilla-chat", "rel-flotilla-tiny"):
        assert "runAsNonRoot" not in pods[name]["securityContext"]
        assert pods[name]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False


def test_security_overrides_merge_and_an_explicit_false_wins():
    docs = render(model_spec(name="m", engine="sim", securityContext={"readOnlyRootFilesystem": False},
                             podSecurityContext={"runAsUser": 20000}))
    deployment = engine(docs, "m")
    assert pod_spec(deployment)["securityContext"]["runAsUser"] == 20000
    assert pod_spec(deployment)["securityContext"]["runAsNonRoot"] is True
    sc = container(deployment)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is False and sc["capabilities"] == {"drop": ["ALL"]}


# --- labels and network policy -------------------------------------------------------------------


def test_standard_labels_on_every_object(everything):
    for d in everything:
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "flotilla"
        assert labels["app.kubernetes.io/instance"] == "rel"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "flotilla"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["helm.sh/chart"] == "flotilla-0.1.0"
        assert labels["app.kubernetes.io/component"]
        if d["kind"] in ("Deployment",):
            selector = d["spec"]["selector"]["matchLabels"]
            assert selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()


def test_network_policy_admits_only_the_gateway_and_metrics_peers(everything):
    gateway_labels = one(everything, "Deployment", "rel-flotilla")["spec"]["template"]["metadata"]["labels"]
    for model, port in (("chat", 8000), ("tiny", 8080), ("cpu", 8080), ("fake", 8000)):
        policy = one(everything, "NetworkPolicy", f"rel-flotilla-{model}")
        engine_labels = engine(everything, model)["spec"]["template"]["metadata"]["labels"]
        selector = policy["spec"]["podSelector"]["matchLabels"]
        assert selector.items() <= engine_labels.items()
        other_engines = [engine(everything, m)["spec"]["template"]["metadata"]["labels"] for m in ("chat", "tiny", "cpu", "fake") if m != model]
        assert not any(selector.items() <= labels.items() for labels in other_engines)
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        from_gateway, from_metrics = policy["spec"]["ingress"]
        assert from_gateway["from"][0]["podSelector"]["matchLabels"].items() <= gateway_labels.items()
        assert from_gateway["ports"] == [{"port": port, "protocol": "TCP"}]
        assert from_metrics["from"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
        # the benchmark pod and the helm test pod are not let in
        bench_labels = one(everything, "Job")["spec"]["template"]["metadata"]["labels"]
        assert not from_gateway["from"][0]["podSelector"]["matchLabels"].items() <= bench_labels.items()


def test_network_policy_can_be_disabled():
    values = model_spec(name="m", engine="sim")
    values["networkPolicy"] = {"enabled": False}
    assert not find(render(values), "NetworkPolicy")


# --- images --------------------------------------------------------------------------------------


def test_global_registry_replaces_each_images_registry(everything):
    assert container(engine(everything, "chat"))["image"] == "registry.example.com/vllm/vllm-openai:v0.28.0"
    assert container(engine(everything, "tiny"))["image"] == "registry.example.com/huggingface/text-generation-inference:3.3.7"
    assert container(engine(everything, "cpu"))["image"] == "registry.example.com/ggml-org/llama.cpp:server-b11206"
    assert container(one(everything, "Deployment", "rel-flotilla"))["image"] == "registry.example.com/flotilla/flotilla:0.1.0"
    for _, spec in all_pods(everything):
        assert spec["imagePullSecrets"] == [{"name": "regcred"}]


def test_model_image_override():
    entry = {"name": "m", "engine": "vllm", "vllm": {"model": "o/m"},
             "image": {"repository": "my.registry/vllm", "tag": "v0.27.1-patched", "pullPolicy": "Always"}}
    c = container(engine(render(model_spec(**entry)), "m"))
    assert (c["image"], c["imagePullPolicy"]) == ("my.registry/vllm:v0.27.1-patched", "Always")


# --- llama.cpp -----------------------------------------------------------------------------------


def test_llamacpp_smollm2_comes_from_flotillas_image():
    deployment = engine(render(model_spec(name="m", engine="llamacpp", llamacpp={"nCtx": 4096, "nThreads": 2})), "m")
    c = container(deployment)
    assert c["image"] == "ghcr.io/ggml-org/llama.cpp:server-b11206"
    assert "command" not in c  # the image's entrypoint is llama-server
    args = c["args"]
    model_path = args[args.index("--model") + 1]
    assert model_path == "/models/flotilla/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert args[args.index("--ctx-size") + 1] == "4096" and args[args.index("--threads") + 1] == "2"
    assert args[args.index("--alias") + 1] == "m" and "--metrics" in args
    init = pod_spec(deployment)["initContainers"][0]
    assert init["image"] == "ghcr.io/flotilla/flotilla:0.1.0" and init["args"] == [model_path]
    assert env_map(c)["LLAMA_CACHE"] == "/models/llama.cpp"


def test_llamacpp_hugging_face_repo(everything):
    c = container(engine(everything, "cpu"))
    args = c["args"]
    assert args[args.index("--hf-repo") + 1] == "bartowski/SmolLM2-135M-Instruct-GGUF"
    assert args[args.index("--hf-file") + 1] == "SmolLM2-135M-Instruct-Q4_K_M.gguf"
    assert "initContainers" not in pod_spec(engine(everything, "cpu"))


# --- exposure, monitoring, autoscaling -----------------------------------------------------------


def test_ingress_with_stream_friendly_annotations():
    values = model_spec(name="m", engine="sim")
    values["ingress"] = {"enabled": True, "className": "nginx", "host": "llm.example.com",
                         "tls": [{"hosts": ["llm.example.com"], "secretName": "tls"}]}
    ingress = one(render(values), "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["llm.example.com"], "secretName": "tls"}]
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "llm.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "rel-flotilla", "port": {"name": "http"}}
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"


def test_http_route(everything):
    route = one(everything, "HTTPRoute")
    assert route["spec"]["parentRefs"] == [{"name": "gw", "namespace": "infra"}]
    assert route["spec"]["hostnames"] == ["llm.example.com"]
    rule = route["spec"]["rules"][0]
    assert rule["backendRefs"] == [{"name": "rel-flotilla", "port": 8080}]
    assert rule["timeouts"] == {"request": "3600s"}
    service = one(everything, "Service", "rel-flotilla")
    assert service["spec"]["type"] == "LoadBalancer" and service["spec"]["ports"][0]["port"] == 8080


def test_monitors_select_the_gateway_and_engine_services(everything):
    services = [d for d in everything if d["kind"] == "Service"]
    for kind in ("ServiceMonitor", "PodMonitor"):
        for component in ("gateway", "engine"):
            monitor = one(everything, kind, f"rel-flotilla-{component}")
            selector = monitor["spec"]["selector"]["matchLabels"]
            assert selector["app.kubernetes.io/component"] == component
            assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ns"]}
            selected = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
            assert len(selected) == (1 if component == "gateway" else 4)
            endpoint = (monitor["spec"].get("endpoints") or monitor["spec"]["podMetricsEndpoints"])[0]
            assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
            assert all(s["spec"]["ports"][0]["name"] == "http" for s in selected)


def test_grafana_dashboard_uses_the_gateways_metric_names(everything):
    cm = one(everything, "ConfigMap", "rel-flotilla-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["flotilla.json"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"flotilla_[a-z_]+", e)}
    assert used == GATEWAY_METRICS
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("queue depth", "queue wait", "first token", "tokens", "in flight"):
        assert topic in titles


def test_keda_scales_the_models_deployment_on_queue_depth(everything):
    scaled = one(everything, "ScaledObject", "rel-flotilla-chat")
    assert scaled["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "rel-flotilla-chat"}
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 3)
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["query"] == 'sum(flotilla_queue_depth{model="chat", namespace="ns"}) or vector(0)'
    assert trigger["metadata"]["threshold"] == "8"
    # KEDA owns the replica count of a scaled model; a static one would fight it.
    assert "replicas" not in engine(everything, "chat")["spec"]
    assert engine(everything, "tiny")["spec"]["replicas"] == 1


# --- benchmark and helm test ---------------------------------------------------------------------


def test_benchmark_job_runs_flotilla_bench_on_the_gateway(everything):
    job = one(everything, "Job", "rel-flotilla-bench-1")
    spec = job["spec"]["template"]["spec"]
    bench = container(job)
    assert bench["args"] == ["bench", "--spec", "/etc/flotilla/flotilla.yaml", "--url", "http://rel-flotilla.ns.svc.cluster.local:8080"]
    assert bench["workingDir"] == "/results"
    assert {"name": "results", "mountPath": "/results"} in bench["volumeMounts"]
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    wait = spec["initContainers"][0]
    assert wait["command"] == ["python", "-m", "flotilla.chart.wait"]
    assert "rel-flotilla-chat.ns.svc.cluster.local" in wait["args"]
    text = one(everything, "ConfigMap", "rel-flotilla-bench")["data"]["flotilla.yaml"]
    env = {"FLOTILLA_TOKEN_0": "staff-secret-value", "FLOTILLA_TOKEN_1": "student-secret-value",
           "FLOTILLA_BENCH_TOKEN": "bench-secret-value", "FLOTILLA_BENCH_CLASS_1_TOKEN": "guest-secret-value"}
    loaded = load_spec_text(text, "bench", env=env)
    b = loaded.benchmark
    assert (b.rate, b.num_requests, b.json_file, b.token) == (4, 100, "results.json", "bench-secret-value")
    assert [(c.name, c.token_name, c.token, c.rate) for c in b.classes] == [
        ("staff", "staff", None, 1), ("guests", None, "guest-secret-value", 3)]
    assert set(env_map(bench)) >= set(env) - {"FLOTILLA_BENCH_CLASS_0_TOKEN"}


def test_benchmark_without_a_token_uses_the_first_gateway_token():
    values = model_spec(name="m", engine="sim")
    values["benchmark"] = {"enabled": True, "numRequests": 10}
    text = one(render(values), "ConfigMap", "rel-flotilla-bench")["data"]["flotilla.yaml"]
    assert yaml.safe_load(text)["benchmark"]["tokenName"] == "staff"


def test_helm_test_lists_every_model(everything):
    pod = one(everything, "Pod", "rel-flotilla-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    c = pod["spec"]["containers"][0]
    assert c["command"] == ["python", "-m", "flotilla.chart.smoke"]
    expected = [c["args"][i + 1] for i, a in enumerate(c["args"]) if a == "--expect"]
    assert expected == [m["name"] for m in EVERYTHING["models"]]
    assert env_map(c)["FLOTILLA_TEST_TOKEN"] == {"secretKeyRef": {"name": "rel-flotilla", "key": "token.staff"}}


def test_tokens_from_an_existing_secret():
    values = model_spec(name="m", engine="sim")
    values["gateway"]["tokensSecret"] = "team-tokens"
    values["gateway"]["tokens"][0]["token"] = "${STAFF_TOKEN}"
    docs = render(values)
    assert not find(docs, "Secret")  # nothing else secret in this spec: no chart Secret at all
    env = env_map(container(one(docs, "Deployment", "rel-flotilla")))
    assert env["FLOTILLA_TOKEN_0"] == {"secretKeyRef": {"name": "team-tokens", "key": "staff"}}
    test_pod = one(docs, "Pod", "rel-flotilla-test")
    assert env_map(test_pod["spec"]["containers"][0])["FLOTILLA_TEST_TOKEN"] == {"secretKeyRef": {"name": "team-tokens", "key": "staff"}}
    assert "${FLOTILLA_TOKEN_0}" in one(docs, "ConfigMap", "rel-flotilla")["data"]["flotilla.yaml"]
