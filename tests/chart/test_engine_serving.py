"""The chart's engine serving features: LoRA adapters, multi-node LeaderWorkerSets, disaggregated
roles, engine config files (extraConfig) and per-model env. The arguments themselves are the
descriptors' (tests/chart/test_chart_matches_engines.py); here: what the chart builds around them."""

from __future__ import annotations

import json

import pytest

from chartkit import EXAMPLES, container, env_map, find, model_spec, one, render
from flotilla.engines import get_engine
from flotilla.spec.models import ModelSpec

BY_NAME = {p.stem: p for p in EXAMPLES}


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def test_lora_example_fetches_adapters_at_their_revision_and_enables_them():
    docs = render(BY_NAME["lora"].read_text(), "llm", "ns")
    deployment = one(docs, "Deployment", "llm-flotilla-llama-8b")
    args = container(deployment)["args"]
    assert args[args.index("--enable-lora"):args.index("--enable-lora") + 6] == [
        "--enable-lora", "--max-loras", "2", "--max-lora-rank", "32", "--lora-modules"]
    assert "sql=/models/loras/sql" in args and "support-fr=/models/loras/support-fr" in args
    fetch = pod_spec(deployment)["initContainers"][0]
    assert fetch["name"] == "fetch-loras" and fetch["image"] == container(deployment)["image"]
    wanted = json.loads(env_map(fetch)["FLOTILLA_LORAS"])
    assert wanted == [{"name": "sql", "revision": "v1.2", "source": "org/llama-3.1-8b-sql-lora"},
                      {"name": "support-fr", "revision": "main", "source": "org/llama-3.1-8b-support-fr-lora"}]
    assert env_map(fetch)["HF_TOKEN"]["secretKeyRef"]["name"] == "hf-token"
    # The gateway lists the adapters: they are in the spec it is given.
    gateway_spec = one(docs, "ConfigMap", "llm-flotilla")["data"]["flotilla.yaml"]
    assert "support-fr" in gateway_spec


def test_multinode_vllm_is_a_leaderworkerset_with_rays_leader_and_workers():
    docs = render(BY_NAME["multinode-405b"].read_text(), "llm", "ns")
    assert not find(docs, "Deployment", "llm-flotilla-llama-405b")
    lws = one(docs, "LeaderWorkerSet", "llm-flotilla-llama-405b")
    template = lws["spec"]["leaderWorkerTemplate"]
    assert template["size"] == 2 and lws["spec"]["replicas"] == 1
    leader = template["leaderTemplate"]["spec"]["containers"][0]
    worker = template["workerTemplate"]["spec"]["containers"][0]
    assert "multi-node-serving.sh leader" in leader["command"][2] and 'exec vllm serve "$@"' in leader["command"][2]
    assert "multi-node-serving.sh worker" in worker["command"][2] and "LWS_LEADER_ADDRESS" in worker["command"][2]
    assert "args" not in worker
    model = ModelSpec.model_validate({k: v for k, v in _example_model("multinode-405b").items()})
    assert leader["args"] == get_engine("vllm").server_args(model, 8000)
    assert leader["args"][leader["args"].index("--pipeline-parallel-size") + 1] == "2"
    assert leader["resources"]["limits"]["nvidia.com/gpu"] == 8 == worker["resources"]["limits"]["nvidia.com/gpu"]
    service = one(docs, "Service", "llm-flotilla-llama-405b")
    assert service["spec"]["selector"]["flotilla/node"] == "leader"
    assert template["leaderTemplate"]["metadata"]["labels"]["flotilla/node"] == "leader"
    # Pods of the group reach each other (Ray, NCCL) through the NetworkPolicy.
    rules = one(docs, "NetworkPolicy", "llm-flotilla-llama-405b")["spec"]["ingress"]
    assert any(p.get("podSelector", {}).get("matchLabels", {}).get("flotilla/model") == "llama-405b"
               and "ports" not in rule for rule in rules for p in rule["from"])


def test_multinode_sglang_runs_launch_server_on_every_node_with_its_rank():
    values = model_spec(name="sg", engine="sglang", sglang={"model": "org/big"},
                        parallelism={"tensor": 16, "nodes": 2})
    lws = one(render(values), "LeaderWorkerSet", "rel-flotilla-sg")["spec"]["leaderWorkerTemplate"]
    leader = lws["leaderTemplate"]["spec"]["containers"][0]
    worker = lws["workerTemplate"]["spec"]["containers"][0]
    assert leader["command"] == worker["command"] == ["python3", "-m", "sglang.launch_server"]
    assert leader["args"] == worker["args"]
    args = leader["args"]
    assert args[args.index("--tp-size") + 1] == "16" and args[args.index("--nnodes") + 1] == "2"
    assert args[args.index("--dist-init-addr") + 1] == "$(LWS_LEADER_ADDRESS):20000"
    assert args[args.index("--node-rank") + 1] == "$(LWS_WORKER_INDEX)"
    assert leader["resources"]["limits"]["nvidia.com/gpu"] == 8


def test_disaggregated_example_renders_both_roles_and_the_gateway_routes_to_each():
    docs = render(BY_NAME["disaggregated"].read_text(), "llm", "ns")
    decode = one(docs, "Deployment", "llm-flotilla-qwen")
    prefill = one(docs, "Deployment", "llm-flotilla-qwen-prefill")
    assert (decode["spec"]["replicas"], prefill["spec"]["replicas"]) == (4, 2)
    for deployment, role in ((decode, "decode"), (prefill, "prefill")):
        assert deployment["spec"]["selector"]["matchLabels"]["flotilla/role"] == role
        c = container(deployment)
        assert json.loads(c["args"][c["args"].index("--kv-transfer-config") + 1])["kv_connector"] == "NixlConnector"
        assert c["args"][c["args"].index("--config") + 1] == "/opt/flotilla/engine/config.yaml"
        volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == "engine-config")
        assert volume["configMap"]["name"] == f"qwen-{role}-config"
        assert {"name": "engine-config", "mountPath": "/opt/flotilla/engine", "readOnly": True} in c["volumeMounts"]
        assert env_map(c)["VLLM_NIXL_SIDE_CHANNEL_PORT"] == "5600"  # the model's env
        assert c["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert one(docs, "Service", "llm-flotilla-qwen-prefill")["spec"]["selector"]["flotilla/role"] == "prefill"
    gateway_args = container(one(docs, "Deployment", "llm-flotilla"))["args"]
    assert "qwen=dns+http://llm-flotilla-qwen.ns.svc.cluster.local:8000" in gateway_args
    assert "qwen@prefill=dns+http://llm-flotilla-qwen-prefill.ns.svc.cluster.local:8000" in gateway_args


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_inline_extra_config_becomes_a_configmap_the_engine_reads(engine):
    values = model_spec(name="m1", engine=engine, **{engine: {"model": "org/m"}},
                        extraConfig={"inline": {"enable-prefix-caching": True, "max-num-batched-tokens": 8192}})
    docs = render(values)
    config = one(docs, "ConfigMap", "rel-flotilla-m1-config")
    assert config["data"]["config.yaml"].splitlines() == ["enable-prefix-caching: true", "max-num-batched-tokens: 8192"]
    c = container(one(docs, "Deployment", "rel-flotilla-m1"))
    assert c["args"][c["args"].index("--config") + 1] == "/etc/flotilla/engine/config.yaml"
    volume = next(v for v in pod_spec(one(docs, "Deployment", "rel-flotilla-m1"))["volumes"] if v["name"] == "engine-config")
    assert volume["configMap"] == {"name": "rel-flotilla-m1-config", "items": [{"key": "config.yaml", "path": "config.yaml"}]}


def test_no_config_no_config_flag():
    docs = render(model_spec(name="m1", engine="vllm", vllm={"model": "org/m"}))
    assert "--config" not in container(one(docs, "Deployment", "rel-flotilla-m1"))["args"]
    assert not find(docs, "ConfigMap", "rel-flotilla-m1-config")


def _example_model(name: str) -> dict:
    import yaml

    return yaml.safe_load(BY_NAME[name].read_text())["models"][0]
