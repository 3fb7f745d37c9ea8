"""Several gateway processes sharing queues through RabbitMQ, in front of sim replicas."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
from gwstack import spec_for
from procs import gateway
from rabbitmq import delete_installation, random_prefix


def scale_out_spec(url: str, prefix: str, model_opts: dict | None = None, **gateway_opts) -> dict:
    return spec_for(model_opts, dispatcher={"kind": "rabbitmq", "url": url, "prefix": prefix}, **gateway_opts)


@contextlib.contextmanager
def gateways(tmp: Path, spec: dict, sims: list[str], count: int, env: dict | None = None) -> Iterator[list[str]]:
    """`count` gateway processes of one spec (one shared SQLite store, as `flotilla up` does)."""
    spec = {**spec, "gateway": {**spec["gateway"], "database": f"sqlite:///{tmp}/shared.db"}}
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(gateway(tmp, spec, {"chat": sims}, env)) for _ in range(count)]
        yield urls


@contextlib.contextmanager
def cleanup(url: str, prefix: str) -> Iterator[None]:
    try:
        yield
    finally:  # in a thread of its own: the caller may be inside an event loop
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, delete_installation(url, prefix, ["chat"])).result()


def metric(base_url: str, name: str) -> float:
    text = urllib.request.urlopen(base_url + "/metrics", timeout=5).read().decode()
    match = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    assert match, f"{name} not in {base_url}/metrics"
    return float(match.group(1))


def peak_in_engine(sim: str) -> int:
    return int(metric(sim, "sim:num_requests_peak"))


def running_in_engine(sim: str) -> int:
    return int(metric(sim, "vllm:num_requests_running") + metric(sim, "vllm:num_requests_waiting"))


class Client:
    """Streams chat completions and records when each one's first chunk arrived."""

    def __init__(self, gateway_url: str, key: str) -> None:
        self.api = openai.AsyncOpenAI(base_url=gateway_url + "/v1", api_key=key, max_retries=0, timeout=120)

    async def stream(self, tag: str, max_tokens: int, started: dict[str, float] | None = None) -> str:
        stream = await self.api.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": tag}], max_tokens=max_tokens, stream=True
        )
        text = []
        async for chunk in stream:
            if started is not None and tag not in started:
                started[tag] = time.monotonic()
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
        return "".join(text)

    async def close(self) -> None:
        await self.api.close()


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def unique_prefix() -> str:
    return random_prefix()


@contextlib.contextmanager
def gateway_process(tmp: Path, spec: dict, sims: list[str], ready: bool = True) -> Iterator[tuple[str, "subprocess.Popen"]]:
    """One gateway process; yields (url, process). `ready=False` waits only for liveness."""
    import yaml

    from procs import flotilla, free_port, running

    port = free_port()
    spec = {**spec, "gateway": {**spec["gateway"], "port": port}}
    spec["gateway"].setdefault("database", f"sqlite:///{tmp}/shared.db")
    path = tmp / f"spec-{port}.yaml"
    path.write_text(yaml.safe_dump(spec))
    argv = flotilla("gateway", str(path), *[a for s in sims for a in ("--endpoint", f"chat={s}")])
    health = "/health/ready" if ready else "/health/live"
    with running(argv, f"http://127.0.0.1:{port}{health}", tmp / f"gateway-{port}.log") as proc:
        yield f"http://127.0.0.1:{port}", proc


def ready_detail(base_url: str) -> tuple[int, dict]:
    import json
    import urllib.error

    try:
        with urllib.request.urlopen(base_url + "/health/ready", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
