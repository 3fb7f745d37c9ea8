"""`flotilla status` against a running gateway (sim engines behind it), and against nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from procs import flotilla, free_port, gateway, sim_engine  # noqa: E402

TOKEN = "status-user-secret-0001"
SPEC = {
    "models": [
        {"name": "chat", "engine": "sim", "maxConcurrency": 4, "sim": {"maxModelLen": 4096}},
        {"name": "narrow", "engine": "sim", "maxConcurrency": 1},
    ],
    "gateway": {"tokens": [{"name": "user", "token": TOKEN, "priority": 3, "threshold": 10}], "usageFlushS": 0.2},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("status")
    with sim_engine(tmp, model="chat", ttft_ms=1, itl_ms=1, deterministic=True, max_model_len=4096) as chat, \
            sim_engine(tmp, model="narrow", ttft_ms=1, itl_ms=20, deterministic=True) as narrow:
        with gateway(tmp, SPEC, {"chat": [chat], "narrow": [narrow]}) as url:
            yield url


def status(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(flotilla("status", *args), capture_output=True, text=True, timeout=60)


def reading(url: str) -> dict:
    done = status(url, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def post(url: str, model: str, **body) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60,
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}], **body})


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def test_models_and_replicas_of_an_idle_gateway(stack):
    seen = reading(stack)
    assert seen["ready"] is True and seen["tokens"] == 1
    assert set(seen["models"]) == {"chat", "narrow"}
    chat = seen["models"]["chat"]
    assert [r["healthy"] for r in chat["replicas"]] == [True]
    assert chat["replicas"][0]["free_slots"] == 4 and chat["replicas"][0]["in_flight"] == 0
    assert chat["queued"]["all"] == 0 and chat["oldest_wait_s"]["all"] == 0
    assert 0 < seen["window_s"] <= 300


def test_recent_requests_errors_and_tokens(stack):
    before = reading(stack)["models"]["chat"]
    replies = [post(stack, "chat", max_tokens=5) for _ in range(3)]
    assert all(r.status_code == 200 for r in replies)
    too_long = post(stack, "chat", max_tokens=100_000)  # the engine refuses: beyond its context
    assert too_long.status_code == 400
    after = reading(stack)["models"]["chat"]
    gained = {k: after["recent_requests"][k] - before["recent_requests"][k] for k in after["recent_requests"]}
    assert gained == {"ok": 3, "client_error": 1, "server_error": 0}
    completion = sum(r.json()["usage"]["completion_tokens"] for r in replies)
    prompt = sum(r.json()["usage"]["prompt_tokens"] for r in replies)
    assert after["recent_tokens"]["completion"] - before["recent_tokens"]["completion"] == completion
    assert after["recent_tokens"]["prompt"] - before["recent_tokens"]["prompt"] == prompt


def test_in_flight_queue_depth_and_oldest_wait_per_priority(stack):
    done: dict = {}
    with httpx.Client(timeout=60) as client:
        with client.stream("POST", stack + "/v1/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                           json={"model": "narrow", "messages": [{"role": "user", "content": "hold"}],
                                 "max_tokens": 2000, "stream": True}) as held:
            chunks = held.iter_bytes()
            next(chunks)  # narrow's only slot is taken
            waiting = threading.Thread(target=lambda: done.setdefault("reply", post(stack, "narrow", max_tokens=2)))
            waiting.start()
            narrow = wait_until(lambda: (m := reading(stack)["models"]["narrow"])["queued"]["all"] and m,
                                30, "a queued request")
            time.sleep(0.3)
            later = reading(stack)["models"]["narrow"]
    waiting.join(60)
    assert narrow["replicas"][0]["in_flight"] == 1 and narrow["replicas"][0]["free_slots"] == 0
    assert narrow["queued"] == {"3": 1, "all": 1}
    assert later["oldest_wait_s"]["3"] >= narrow["oldest_wait_s"]["3"] + 0.3  # the same request, older
    assert later["oldest_wait_s"]["all"] == later["oldest_wait_s"]["3"]
    assert done["reply"].status_code == 200
    assert reading(stack)["models"]["narrow"]["queued"]["all"] == 0


def test_tables_show_every_model(stack):
    done = status(stack)
    assert done.returncode == 0, done.stderr
    for text in ("Models", "chat", "narrow", "Replicas", "healthy", "No request is waiting"):
        assert text in done.stdout


def test_watch_refreshes(stack):
    done = status(stack, "--watch", "--interval", "0.1", "--count", "3")
    assert done.returncode == 0, done.stderr
    assert "narrow" in done.stdout


def test_url_from_the_spec(stack, tmp_path):
    import yaml

    port = int(stack.rsplit(":", 1)[1])
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "gateway": {**SPEC["gateway"], "port": port}}))
    done = status("--spec", str(spec), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["url"] == stack


def test_nothing_listening_is_a_clear_error():
    done = status(f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1
    assert "cannot reach a Flotilla gateway" in done.stderr and "port-forward" in done.stderr


def test_a_server_that_is_not_a_gateway(stack, tmp_path):
    with sim_engine(tmp_path, model="x") as sim:  # an engine has /metrics, but no flotilla_ gauges
        done = status(sim)
    assert done.returncode == 1 and "Flotilla" in done.stderr
