import socket
import sys
from pathlib import Path

import pytest

from flotilla.local.plan import PlanError, build_plan
from flotilla.spec.loader import parse_spec

TOKENS = [{"name": "staff", "token": "local-staff-token", "priority": 10}]


def spec(models, port=18999):
    return parse_spec({"models": models, "gateway": {"port": port, "tokens": TOKENS}})


def test_one_engine_per_replica_and_the_gateway_gets_their_endpoints(tmp_path):
    s = spec([
        {"name": "a", "engine": "sim", "replicas": 2},
        {"name": "remote", "engine": "external", "urls": ["http://10.0.0.5:8000"]},
    ])
    plan = build_plan(s, Path("flotilla.yaml"), tmp_path)
    assert [e.name for e in plan.engines] == ["engine-a-0", "engine-a-1"]
    assert len({e.port for e in plan.engines}) == 2
    assert all(e.health_url == f"{e.url}/health" for e in plan.engines)
    assert [e.log_path.name for e in plan.engines] == ["engine-a-0.log", "engine-a-1.log"]
    argv = plan.gateway.argv
    assert argv[:4] == [sys.executable, "-m", "flotilla.cli", "gateway"]
    assert argv[4] == str(Path("flotilla.yaml").resolve())
    endpoints = [argv[i + 1] for i, a in enumerate(argv) if a == "--endpoint"]
    assert endpoints == [f"a={e.url}" for e in plan.engines]  # none for the external model
    assert plan.gateway.health_url == "http://127.0.0.1:18999/health/ready"
    assert plan.endpoint == "http://127.0.0.1:18999/v1"


def test_port_option_overrides_the_spec(tmp_path):
    plan = build_plan(spec([{"name": "a", "engine": "sim"}]), Path("f.yaml"), tmp_path, gateway_port=18998)
    assert plan.gateway.port == 18998 and "18998" in plan.gateway.argv


def test_a_busy_gateway_port_is_reported_before_anything_starts(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PlanError) as caught:
            build_plan(spec([{"name": "a", "engine": "sim"}], port=port), Path("f.yaml"), tmp_path)
    assert f"port {port} on 127.0.0.1 is in use" in caught.value.problems[0]


def test_zero_replicas_cannot_be_served(tmp_path):
    with pytest.raises(PlanError, match="models.a: replicas is 0"):
        build_plan(spec([{"name": "a", "engine": "sim", "replicas": 0}]), Path("f.yaml"), tmp_path)


def test_every_problem_is_reported_at_once(tmp_path):
    s = spec([
        {"name": "missing", "engine": "llamacpp", "llamacpp": {"model": str(tmp_path / "gone.gguf")}},
        {"name": "big", "engine": "vllm", "vllm": {"model": "meta-llama/Llama-3.1-8B-Instruct"}},
    ])
    with pytest.raises(PlanError) as caught:
        build_plan(s, Path("f.yaml"), tmp_path)
    problems = caught.value.problems
    assert any(p.startswith("models.missing (llamacpp): model 'missing': GGUF file") for p in problems)
    assert any(p.startswith("models.big") and "vllm" in p for p in problems)
