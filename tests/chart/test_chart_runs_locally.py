"""What the chart renders runs: the sim engine's container arguments, the gateway's ConfigMap'd
spec, its environment and its dns+http endpoint flag start the real processes here, and the
`helm test` and benchmark-wait programs pass against them."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request

import pytest

from chartkit import container, one, render, replace_flag
from procs import free_port, running

FLOTILLA = [sys.executable, "-m", "flotilla.cli"]
VALUES = {
    "models": [{"name": "chat", "engine": "sim", "sim": {"ttftMs": 5, "itlMs": 1, "deterministic": True}}],
    "gateway": {"tokens": [
        {"name": "staff", "token": "staff-secret-value", "priority": 10},
        {"name": "students", "token": "students-secret-value", "priority": 1},
    ]},
    "benchmark": {
        "enabled": True, "numRequests": 8, "rate": 20, "inputLen": 16, "outputLen": 4, "jsonFile": "result.json",
        "classes": [{"name": "staff", "tokenName": "staff", "rate": 10},
                    {"name": "students", "token": "students-secret-value", "rate": 10}],
    },
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chart-local")
    docs = render(VALUES)
    sim_port, gateway_port = free_port(), free_port()
    sim_args = container(one(docs, "Deployment", "rel-flotilla-chat"))["args"]
    sim_args = replace_flag(replace_flag(sim_args, "--port", str(sim_port)), "--host", "127.0.0.1")

    spec_path = tmp / "flotilla.yaml"
    spec_path.write_text(one(docs, "ConfigMap", "rel-flotilla")["data"]["flotilla.yaml"])
    secret = {k: base64.b64decode(v).decode() for k, v in one(docs, "Secret", "rel-flotilla")["data"].items()}
    gateway = container(one(docs, "Deployment", "rel-flotilla"))
    env = {}
    for entry in gateway["env"]:
        if "valueFrom" in entry:
            env[entry["name"]] = secret[entry["valueFrom"]["secretKeyRef"]["key"]]
    env["FLOTILLA_DATABASE_URL"] = f"sqlite:///{tmp}/flotilla.db"  # the pod's path is /var/lib/flotilla
    args = [a.replace("/etc/flotilla/flotilla.yaml", str(spec_path)) for a in gateway["args"]]
    args = replace_flag(replace_flag(args, "--port", str(gateway_port)), "--host", "127.0.0.1")
    endpoint = args[args.index("--endpoint") + 1]
    assert endpoint == "chat=dns+http://rel-flotilla-chat.ns.svc.cluster.local:8000"
    # The headless Service's name becomes a name this machine resolves; the scheme stays dns+http.
    args = replace_flag(args, "--endpoint", f"chat=dns+http://localhost:{sim_port}")

    with running([*FLOTILLA, *sim_args], f"http://127.0.0.1:{sim_port}/health", tmp / "sim.log"):
        with running([*FLOTILLA, *args], f"http://127.0.0.1:{gateway_port}/health/ready", tmp / "gateway.log", env):
            yield {"url": f"http://127.0.0.1:{gateway_port}", "token": secret["token.staff"], "docs": docs,
                   "secret": secret, "tmp": tmp}


def run_module(module: str, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FLOTILLA_TEST_TOKEN"}
    if token:
        env["FLOTILLA_TEST_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, timeout=120)


def test_gateway_serves_the_chart_spec_through_the_dns_endpoint(stack):
    body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}).encode()
    request = urllib.request.Request(
        f"{stack['url']}/v1/chat/completions", data=body,
        headers={"Authorization": f"Bearer {stack['token']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
    assert answer["usage"]["completion_tokens"] == 4


def test_helm_test_program_passes_with_the_token(stack):
    result = run_module("flotilla.chart.smoke", "--url", stack["url"], "--expect", "chat", token=stack["token"])
    assert result.returncode == 0, result.stderr
    assert "answers a completion from chat" in result.stdout


def test_helm_test_program_checks_refusal_without_a_token(stack):
    result = run_module("flotilla.chart.smoke", "--url", stack["url"], "--expect", "chat")
    assert result.returncode == 0, result.stderr
    assert "refuses calls without a token" in result.stdout


def test_helm_test_program_fails_on_a_missing_model(stack):
    result = run_module("flotilla.chart.smoke", "--url", stack["url"], "--expect", "chat", "--expect", "ghost", token=stack["token"])
    assert result.returncode == 1
    assert "ghost" in result.stderr


def test_wait_program(stack):
    ready = run_module("flotilla.chart.wait", "--http", f"{stack['url']}/health/ready", "--dns", "localhost", "--timeout", "60")
    assert ready.returncode == 0, ready.stderr
    missing = run_module("flotilla.chart.wait", "--dns", "no-such-model.invalid", "--timeout", "1")
    assert missing.returncode == 1 and "no-such-model.invalid" in missing.stderr


def test_benchmark_job_command_runs_against_the_gateway(stack):
    docs, tmp = stack["docs"], stack["tmp"]
    job = one(docs, "Job", "rel-flotilla-bench-1")
    bench = container(job)
    spec_path = tmp / "bench.yaml"
    spec_path.write_text(one(docs, "ConfigMap", "rel-flotilla-bench")["data"]["flotilla.yaml"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}
    for entry in bench["env"]:
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            env[entry["name"]] = stack["secret"][ref["key"]]
    args = [a.replace("/etc/flotilla/flotilla.yaml", str(spec_path)) for a in bench["args"]]
    args = replace_flag(args, "--url", stack["url"])
    workdir = tmp / "results"
    workdir.mkdir()
    result = subprocess.run([*FLOTILLA, *args], cwd=workdir, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((workdir / "result.json").read_text())
    assert (report["completed"], report["failed"]) == (8, 0)
    assert sorted(report["classes"]) == ["staff", "students"]
    assert "students-secret-value" not in result.stdout + result.stderr
