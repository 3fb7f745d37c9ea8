"""The server-engine argument builders (vLLM, TGI, SGLang): flags from the spec, as the engines name them."""

from __future__ import annotations

import json
import shutil

import pytest

from flotilla.engines import get_engine
from flotilla.engines.base import EngineNotInstalled
from flotilla.engines.tgi import env_as_flags
from flotilla.spec.models import ModelSpec


def model(**fields) -> ModelSpec:
    return ModelSpec.model_validate(fields)


def value_of(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_vllm_args_carry_every_option_in_vllm_terms():
    m = model(
        name="big",
        engine="vllm",
        servedModelName="llama-70b",
        vllm={
            "model": "org/Llama-70B-AWQ",
            "revision": "abc123",
            "dtype": "float16",
            "quantization": "awq",
            "maxModelLen": 16384,
            "gpuMemoryUtilization": 0.92,
            "tensorParallelSize": 2,
            "trustRemoteCode": True,
            "maxNumSeqs": 64,
            "extraArgs": ["--enable-prefix-caching"],
        },
    )
    args = get_engine("vllm").server_args(m, 8000)
    # `vllm serve` takes the model positionally (--model is deprecated there).
    assert args[0] == "org/Llama-70B-AWQ"
    assert value_of(args, "--port") == "8000" and value_of(args, "--host") == "0.0.0.0"
    assert value_of(args, "--served-model-name") == "llama-70b"
    assert value_of(args, "--revision") == "abc123"
    assert value_of(args, "--dtype") == "float16"
    assert value_of(args, "--quantization") == "awq"
    assert value_of(args, "--max-model-len") == "16384"
    assert value_of(args, "--gpu-memory-utilization") == "0.92"
    assert value_of(args, "--tensor-parallel-size") == "2"
    assert value_of(args, "--max-num-seqs") == "64"
    assert "--trust-remote-code" in args
    assert value_of(args, "--scheduling-policy") == "priority"
    assert args[-1] == "--enable-prefix-caching"


def test_vllm_optional_flags_absent_when_unset():
    args = get_engine("vllm").server_args(model(name="m", engine="vllm", vllm={"model": "org/m"}), 8000)
    for flag in ("--revision", "--dtype", "--quantization", "--max-model-len", "--gpu-memory-utilization",
                 "--trust-remote-code", "--max-num-seqs", "--hf-overrides"):
        assert flag not in args
    assert value_of(args, "--served-model-name") == "m"


def test_vllm_rope_scaling_goes_to_hf_overrides_with_theta():
    m = model(
        name="long",
        engine="vllm",
        vllm={
            "model": "Qwen/Qwen2.5-7B-Instruct",
            "ropeScaling": {
                "enabled": True,
                "jsonConfiguration": '{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}',
                "theta": 1000000.0,
            },
        },
    )
    args = get_engine("vllm").server_args(m, 8000)
    overrides = json.loads(value_of(args, "--hf-overrides"))
    assert overrides == {
        "rope_parameters": {"rope_type": "yarn", "factor": 4, "original_max_position_embeddings": 32768, "rope_theta": 1000000}
    }
    assert "--rope-scaling" not in args and "--rope-theta" not in args


def test_vllm_rope_configuration_must_be_a_json_object():
    m = model(name="m", engine="vllm", vllm={"model": "o/m", "ropeScaling": {"enabled": True, "jsonConfiguration": "[1, 2]"}})
    with pytest.raises(ValueError, match="JSON object"):
        get_engine("vllm").server_args(m, 8000)


def test_tgi_settings_travel_as_environment():
    m = model(
        name="tgi",
        engine="tgi",
        tgi={"model": "meta-llama/Llama-3.2-1B", "revision": "main", "maxInputLength": 2048, "maxTotalTokens": 4096,
             "quantize": "awq", "numShard": 2, "dtype": "bfloat16", "extraArgs": ["--json-output"]},
    )
    engine = get_engine("tgi")
    env = engine.server_env(m, 8080)
    assert env == {
        "MODEL_ID": "meta-llama/Llama-3.2-1B",
        "REVISION": "main",
        "MAX_INPUT_LENGTH": "2048",
        "MAX_TOTAL_TOKENS": "4096",
        "QUANTIZE": "awq",
        "NUM_SHARD": "2",
        "DTYPE": "bfloat16",
        "HOSTNAME": "0.0.0.0",
        "PORT": "8080",
    }
    assert engine.server_args(m, 8080) == ["--json-output"]


def test_tgi_environment_names_map_to_launcher_flags():
    assert env_as_flags({"MODEL_ID": "x", "MAX_TOTAL_TOKENS": "9", "NUM_SHARD": "2"}) == [
        "--model-id", "x", "--max-total-tokens", "9", "--num-shard", "2"
    ]


def test_sglang_args():
    m = model(
        name="sg",
        engine="sglang",
        sglang={"model": "Qwen/Qwen2.5-7B-Instruct", "contextLength": 32768, "memFractionStatic": 0.85,
                "tensorParallelSize": 2, "trustRemoteCode": True, "quantization": "fp8"},
    )
    args = get_engine("sglang").server_args(m, 30000)
    assert value_of(args, "--model-path") == "Qwen/Qwen2.5-7B-Instruct"
    assert value_of(args, "--host") == "0.0.0.0" and value_of(args, "--port") == "30000"
    assert value_of(args, "--context-length") == "32768"
    assert value_of(args, "--mem-fraction-static") == "0.85"
    assert value_of(args, "--tp-size") == "2"
    assert value_of(args, "--quantization") == "fp8"
    assert "--trust-remote-code" in args and "--enable-metrics" in args


@pytest.mark.parametrize(
    ("kind", "program", "section"),
    [("vllm", "vllm", {"model": "o/m"}), ("tgi", "text-generation-launcher", {"model": "o/m"}), ("sglang", None, {"model": "o/m"})],
)
def test_local_command_says_what_to_install_when_missing(kind, program, section):
    engine = get_engine(kind)
    m = model(name="m", engine=kind, **{kind: section})
    installed = shutil.which(program) if program else __import__("importlib").util.find_spec("sglang")
    if installed:
        pytest.skip(f"{kind} is installed here")
    with pytest.raises(EngineNotInstalled, match="install") as info:
        engine.local_command(m, 8000)
    assert "'m'" in str(info.value)


@pytest.mark.parametrize("kind", ["vllm", "tgi", "sglang"])
def test_engines_declare_container_health_and_metrics(kind):
    engine = get_engine(kind)
    assert engine.kind == kind
    assert engine.health_path == "/health"
    assert engine.metrics_path == "/metrics"
    assert engine.container is not None and engine.container.image_tag and engine.container.image_tag != "latest"
