"""`flotilla up` as users run it, on sim engines: restart under load, clean stops, failures."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from openai import OpenAI
from rabbitmq import delete_installation, random_prefix, require_shared_broker
from up_helpers import UpProcess, descendants, pid_running, wait_until

from flotilla.local.ports import free_port

pytestmark = pytest.mark.e2e

TOKEN = "local-test-token-1"


def write_spec(tmp: Path, models: list[dict]) -> Path:
    spec = {
        "models": models,
        "gateway": {
            "database": "sqlite:///./.flotilla/test.db",
            "healthIntervalS": 0.5,  # notice the killed replica quickly
            "tokens": [{"name": "staff", "token": "${T_TEST_TOKEN:-" + TOKEN + "}", "priority": 10, "threshold": 50}],
        },
    }
    path = tmp / "flotilla.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


SIM_X2 = [{"name": "sim", "engine": "sim", "replicas": 2, "sim": {"ttftMs": 2, "itlMs": 1, "deterministic": True}}]


@pytest.fixture
def up_factory(tmp_path):
    started: list[UpProcess] = []

    def start(spec: Path, name: str = "run", extra: list[str] | None = None) -> UpProcess:
        up = UpProcess(spec, tmp_path / name, free_port(), cwd=tmp_path, extra=extra)
        started.append(up)
        return up

    yield start
    for up in started:
        up.kill_everything()


def ask(client: OpenAI) -> str:
    reply = client.chat.completions.create(
        model="sim", messages=[{"role": "user", "content": "hello"}], max_tokens=4
    )
    return reply.choices[0].message.content or ""


def test_a_killed_engine_is_restarted_while_requests_keep_succeeding(tmp_path, up_factory):
    up = up_factory(write_spec(tmp_path, SIM_X2))
    state = up.wait_ready(timeout=120)
    assert state["gateway"]["phase"] == "healthy" and len(state["engines"]) == 2
    children = descendants(up.proc.pid)
    assert {e["pid"] for e in state["engines"]} | {state["gateway"]["pid"]} <= children

    client = OpenAI(base_url=state["endpoint"], api_key=TOKEN, max_retries=0, timeout=30)
    assert ask(client)

    outcomes: list[str] = []
    stop_load = threading.Event()

    def load() -> None:  # a steady trickle of requests for the whole episode
        while not stop_load.is_set():
            try:
                outcomes.append("ok" if ask(client) else "empty")
            except Exception as exc:  # noqa: BLE001 - any failure is what this test looks for
                outcomes.append(f"{type(exc).__name__}: {exc}")

    loader = threading.Thread(target=load)
    loader.start()
    victim = state["engines"][0]
    try:
        wait_until(lambda: len(outcomes) >= 3, 60, "requests before the kill")
        os.kill(victim["pid"], signal.SIGKILL)
        restarted = up.wait_state(
            lambda s: s["engines"][0]["pid"] not in (None, victim["pid"]) and s["engines"][0]["phase"] == "healthy",
            timeout=120,
            what="engine-sim-0 restarted and healthy",
        )
        served_during = len(outcomes)
        wait_until(lambda: len(outcomes) >= served_during + 5, 60, "requests after the restart")
    finally:
        stop_load.set()
        loader.join(60)

    assert restarted["engines"][0]["restarts"] == 1
    assert restarted["engines"][0]["port"] == victim["port"]  # the gateway's endpoint stays valid
    assert restarted["engines"][1]["pid"] == state["engines"][1]["pid"]  # the other replica untouched
    failures = [o for o in outcomes if o != "ok"]
    assert failures == [], failures
    up_log = (up.run_dir / "up.log").read_text()
    assert f"engine-sim-0 (pid {victim['pid']}) exited with code -9" in up_log
    assert "==== flotilla: restart 1" in Path(victim["log"]).read_text()

    everything = descendants(up.proc.pid) | children
    assert up.stop(signal.SIGINT) == 0
    wait_until(lambda: not any(pid_running(p) for p in everything), 30, "every process to end")
    final = up.state()
    assert final["status"] == "stopped"
    assert final["gateway"]["phase"] == "stopped" and all(e["phase"] == "stopped" for e in final["engines"])
    assert "stopping: gateway first, then engines" in up.text()


def test_sigterm_stops_everything_and_says_where_the_logs_are(tmp_path, up_factory):
    up = up_factory(write_spec(tmp_path, [{**SIM_X2[0], "replicas": 1}]))
    state = up.wait_ready(timeout=120)
    pids = {state["gateway"]["pid"], state["engines"][0]["pid"]}
    assert up.stop(signal.SIGTERM) == 0
    assert not any(pid_running(p) for p in pids)
    out = up.text()
    assert f"run folder: {up.run_dir}" in out
    assert f"Flotilla is up: OpenAI-compatible endpoint {state['endpoint']}" in out
    assert TOKEN not in out and TOKEN not in (up.run_dir / "up.log").read_text()
    assert {p.name for p in up.run_dir.iterdir()} >= {"state.json", "up.log", "gateway.log", "engine-sim-0.log"}


def test_children_die_when_flotilla_up_is_sigkilled(tmp_path, up_factory):
    up = up_factory(write_spec(tmp_path, [{**SIM_X2[0], "replicas": 1}]))
    state = up.wait_ready(timeout=120)
    pids = {state["gateway"]["pid"], state["engines"][0]["pid"]}
    up.proc.kill()
    up.proc.wait(30)
    wait_until(lambda: not any(pid_running(p) for p in pids), 30, "the orphans to be killed by the kernel")


def test_an_engine_that_cannot_start_fails_the_run_with_its_log(tmp_path, up_factory):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"this is not a model")
    spec = write_spec(tmp_path, [{"name": "chat", "engine": "llamacpp", "llamacpp": {"model": str(broken)}}])
    up = up_factory(spec)
    assert up.proc.wait(180) == 1
    out = up.text()
    assert "flotilla up failed: engine-chat-0 exited 3 times before becoming healthy" in out
    assert "engine-chat-0.log" in out
    assert up.state()["status"] == "failed"
    assert not any(pid_running(p) for p in up.seen_pids)


def test_a_busy_port_stops_flotilla_up_before_it_starts_anything(tmp_path):
    import socket

    spec = write_spec(tmp_path, SIM_X2)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "flotilla.cli", "up", str(spec), "--port", str(port), "--run-dir", str(tmp_path / "r")],
            capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 1
    assert "nothing was started" in result.stderr and f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert not (tmp_path / "r").exists()


def test_external_models_are_not_launched_but_served(tmp_path, up_factory):
    from procs import sim_engine

    with sim_engine(tmp_path, model="remote", ttft_ms=1, itl_ms=1, deterministic=True) as remote_url:
        spec = write_spec(tmp_path, [{"name": "remote", "engine": "external", "urls": [remote_url]}])
        up = up_factory(spec)
        state = up.wait_ready(timeout=120)
        assert state["engines"] == []
        client = OpenAI(base_url=state["endpoint"], api_key=TOKEN, max_retries=0, timeout=30)
        reply = client.chat.completions.create(model="remote", messages=[{"role": "user", "content": "hi"}], max_tokens=3)
        assert reply.choices[0].message.content
        assert up.stop(signal.SIGINT) == 0


def test_gateway_replicas_start_several_gateways_sharing_one_queue(tmp_path, up_factory):
    """`gateway.replicas: 3` with the RabbitMQ dispatcher: three gateways on consecutive ports."""
    url, prefix = require_shared_broker(), random_prefix()
    path = write_spec(tmp_path, [{"name": "sim", "engine": "sim", "sim": {"ttftMs": 2, "itlMs": 1}}])
    spec = yaml.safe_load(path.read_text())
    spec["gateway"].update({"replicas": 3, "dispatcher": {"kind": "rabbitmq", "url": url, "prefix": prefix}})
    path.write_text(yaml.safe_dump(spec))
    try:
        up = up_factory(path)
        state = up.wait_ready(timeout=120)
        gateways = state["gateways"]
        assert [g["phase"] for g in gateways] == ["healthy"] * 3
        ports = [g["port"] for g in gateways]
        assert ports == [ports[0], ports[0] + 1, ports[0] + 2]
        for port in ports:  # every gateway answers, from the one queue
            client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=TOKEN, max_retries=0, timeout=30)
            assert ask(client)
        up.stop()
    finally:
        asyncio.run(delete_installation(url, prefix, ["sim"]))
