"""examples/k8s holds the deployments the issue asks for; each renders what it promises."""

from __future__ import annotations

from chartkit import CHART, EXAMPLES, container, find, one, render
from flotilla.chart.helm import run_helm

BY_NAME = {p.stem: p for p in EXAMPLES}


def rendered(name: str):
    return render(BY_NAME[name].read_text(), "llm", "ns")


def test_vllm_70b_awq_tensor_parallel_2_pvc_httproute_external_secret():
    docs = rendered("vllm-70b-awq")
    c = container(one(docs, "Deployment", "llm-flotilla-llama-70b"))
    assert "70B" in c["args"][0] and c["args"][c["args"].index("--quantization") + 1] == "awq"
    assert c["args"][c["args"].index("--tensor-parallel-size") + 1] == "2"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert one(docs, "PersistentVolumeClaim", "llm-flotilla-llama-70b-cache")["spec"]["resources"]["requests"]["storage"] == "200Gi"
    assert one(docs, "HTTPRoute")["spec"]["hostnames"] == ["llm.example.com"]
    assert one(docs, "ExternalSecret")["spec"]["data"][0]["remoteRef"] == {"key": "secret/shared/huggingface/token", "property": "value"}


def test_tgi_llama_3_2_1b_of_the_tgi_chart_design():
    docs = rendered("tgi-llama-3.2-1b")
    deployment = one(docs, "Deployment", "llm-flotilla-llama-3-2-1b")
    c = container(deployment)
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["MODEL_ID"] == "meta-llama/Llama-3.2-1B" and env["REVISION"] == "main"
    assert (env["MAX_INPUT_LENGTH"], env["MAX_TOTAL_TOKENS"]) == ("2048", "4096")
    assert c["resources"] == {"limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": 1}, "requests": {"cpu": "2", "memory": "8Gi"}}
    spec = deployment["spec"]["template"]["spec"]
    assert spec["runtimeClassName"] == "nvidia" and spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert one(docs, "ExternalSecret")["spec"]["secretStoreRef"] == {"name": "vault-backend", "kind": "ClusterSecretStore"}
    assert find(docs, "HTTPRoute") and find(docs, "ServiceMonitor")


def test_two_models_with_internal_rabbitmq_postgresql_ingress_servicemonitor_keda():
    docs = rendered("two-models-ha")
    assert len([d for d in docs if d["kind"] == "Deployment" and d["metadata"]["labels"]["app.kubernetes.io/component"] == "engine"]) == 2
    for kind in ("RabbitmqCluster", "Cluster", "Ingress"):
        assert one(docs, kind)
    assert len(find(docs, "ServiceMonitor")) == 2
    assert len(find(docs, "ScaledObject")) == 2
    assert one(docs, "Deployment", "llm-flotilla")["spec"]["replicas"] == 2


def test_sglang_model():
    docs = rendered("sglang")
    c = container(one(docs, "Deployment", "llm-flotilla-qwen-7b"))
    assert c["command"] == ["python3", "-m", "sglang.launch_server"]
    assert c["image"].startswith("lmsysorg/sglang:")
    assert one(docs, "Job")["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["bench", "--spec"]


def test_notes_tell_how_to_call_the_endpoint():
    out = run_helm(["install", "llm", str(CHART), "--dry-run=client", "--namespace", "llm",
                    "--values", str(BY_NAME["two-models-ha"])])
    notes = out.split("NOTES:", 1)[1]
    assert "curl -s $BASE/v1/chat/completions" in notes and '"model": "qwen-7b"' in notes
    assert "from openai import OpenAI" in notes and 'base_url=os.environ["BASE"] + "/v1"' in notes
    assert "export BASE=https://llm.example.com" in notes
    assert "helm test llm -n llm" in notes
