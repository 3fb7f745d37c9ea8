"""The chart's container command, arguments, environment, image and port equal what the Python
engine builders produce for the same spec, so the two never drift apart."""

from __future__ import annotations

import pytest

import yaml

from chartkit import CHART, container, env_map, model_spec, one, render
from flotilla.engines import get_engine
from flotilla.spec.models import ModelSpec

VLLM_CASES = {
    "minimal": {"model": "org/m"},
    "everything": {
        "model": "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4",
        "revision": "5f1c0a7",
        "dtype": "float16",
        "quantization": "awq",
        "maxModelLen": 1000000,          # Helm would print a float64 this big as 1e+06
        "gpuMemoryUtilization": 1.0,     # and this one as 1
        "tensorParallelSize": 2,
        "ropeScaling": {
            "enabled": True,
            "jsonConfiguration": '{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}',
            "theta": 1000000.0,
        },
        "trustRemoteCode": True,
        "schedulingPolicy": "fcfs",
        "maxNumSeqs": 256,
        "extraArgs": ["--enable-prefix-caching", "--kv-cache-dtype", "fp8"],
    },
    "fractional": {"model": "org/m", "gpuMemoryUtilization": 0.875, "maxModelLen": 8192},
}
SGLANG_CASES = {
    "minimal": {"model": "org/m"},
    "everything": {
        "model": "Qwen/Qwen2.5-7B-Instruct", "revision": "main", "dtype": "bfloat16", "quantization": "fp8",
        "contextLength": 131072, "memFractionStatic": 0.85, "tensorParallelSize": 4, "trustRemoteCode": True,
        "extraArgs": ["--enable-torch-compile"],
    },
}
TGI_CASES = {
    "minimal": {"model": "org/m"},
    "everything": {
        "model": "meta-llama/Llama-3.2-1B", "revision": "main", "maxInputLength": 2048, "maxTotalTokens": 4096,
        "quantize": "bitsandbytes-nf4", "numShard": 2, "dtype": "bfloat16", "extraArgs": ["--json-output"],
    },
}
SIM_CASES = {
    "defaults": {},
    "tuned": {"ttftMs": 120.5, "itlMs": 7, "maxNumSeqs": 16, "batchSlowdown": 0.1, "outputTokensMean": 200,
              "deterministic": True, "seed": 42, "errorRate": 0.01, "dieMidStreamRate": 0.001, "maxModelLen": 1000000},
}
# The command each image is run with; the arguments follow it.
COMMANDS = {"vllm": ["vllm", "serve"], "sglang": ["python3", "-m", "sglang.launch_server"],
            "tgi": ["text-generation-launcher"], "sim": ["flotilla"]}


def rendered_engine(kind: str, options: dict, served_model_name: str | None = None):
    entry = {"name": "m1", "engine": kind, kind: options}
    if served_model_name:
        entry["servedModelName"] = served_model_name
    docs = render(model_spec(**entry))
    deployment = one(docs, "Deployment", "rel-flotilla-m1")
    return ModelSpec.model_validate(entry), container(deployment)


def expected_args(kind: str, spec: ModelSpec) -> list[str]:
    engine = get_engine(kind)
    return engine.server_args(spec, engine.container.port)


def image_tag(defaults) -> str:
    """A descriptor without a tag runs Flotilla's own image at the chart's appVersion."""
    return defaults.image_tag or yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]


@pytest.mark.parametrize(
    ("kind", "options"),
    [("vllm", o) for o in VLLM_CASES.values()]
    + [("sglang", o) for o in SGLANG_CASES.values()]
    + [("tgi", o) for o in TGI_CASES.values()]
    + [("sim", o) for o in SIM_CASES.values()],
    ids=[f"vllm-{k}" for k in VLLM_CASES] + [f"sglang-{k}" for k in SGLANG_CASES]
    + [f"tgi-{k}" for k in TGI_CASES] + [f"sim-{k}" for k in SIM_CASES],
)
def test_container_args_equal_engine_server_args(kind, options):
    spec, c = rendered_engine(kind, options, served_model_name="served/name")
    assert c["command"] == COMMANDS[kind]
    assert c["args"] == expected_args(kind, spec)


@pytest.mark.parametrize("options", TGI_CASES.values(), ids=list(TGI_CASES))
def test_tgi_container_env_equals_engine_server_env(options):
    spec, c = rendered_engine("tgi", options)
    engine = get_engine("tgi")
    expected = engine.server_env(spec, engine.container.port)
    names = [e["name"] for e in c["env"]]
    # The engine's settings come first and in the same order; cache and token variables follow.
    assert [(e["name"], e["value"]) for e in c["env"][: len(expected)]] == list(expected.items())
    assert set(names[len(expected):]).isdisjoint(expected)


@pytest.mark.parametrize(
    ("kind", "options"), [("vllm", {"model": "o/m"}), ("sglang", {"model": "o/m"}), ("tgi", {"model": "o/m"}), ("sim", {})]
)
def test_image_and_port_equal_engine_container_defaults(kind, options):
    _, c = rendered_engine(kind, options)
    defaults = get_engine(kind).container
    assert c["image"] == f"{defaults.image_repository}:{image_tag(defaults)}"
    assert c["ports"] == [{"name": "http", "containerPort": defaults.port, "protocol": "TCP"}]
    probe_paths = {c[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probe_paths == {get_engine(kind).health_path}


def test_gateway_image_is_the_sim_engines_image():
    docs = render(model_spec(name="m1", engine="sim"))
    gateway = container(one(docs, "Deployment", "rel-flotilla"))
    sim = get_engine("sim").container
    assert gateway["image"] == f"{sim.image_repository}:{image_tag(sim)}"
    assert env_map(gateway)["HOME"] == "/tmp"


def test_strings_that_look_like_other_types_survive_the_templates():
    # The chart merges defaults by writing YAML and reading it back: quoted strings must stay strings.
    text = (
        "models:\n  - name: m1\n    engine: vllm\n"
        '    vllm: {model: o/m, revision: "0123", extraArgs: ["--x", "on", "y", "1e3", "0755", "true", "null", "~", "a: b"]}\n'
    )
    c = container(one(render(text), "Deployment", "rel-flotilla-m1"))
    spec = ModelSpec.model_validate({"name": "m1", "engine": "vllm", "vllm": {
        "model": "o/m", "revision": "0123", "extraArgs": ["--x", "on", "y", "1e3", "0755", "true", "null", "~", "a: b"]}})
    assert c["args"] == get_engine("vllm").server_args(spec, 8000)
    assert c["args"][c["args"].index("--revision") + 1] == "0123"
