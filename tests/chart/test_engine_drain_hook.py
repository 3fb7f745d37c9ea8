"""The engines' preStop drain, run for real: the command the chart renders waits while the engine
(here the sim, which reports vLLM's gauges) still generates, and returns once it is idle."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from chartkit import container, model_spec, one, render, replace_flag
from procs import free_port, running

FLOTILLA = [sys.executable, "-m", "flotilla.cli"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """The chart's sim engine, slow enough per token that a stream lasts a few seconds."""
    docs = render(model_spec(name="m", engine="sim", sim={"itlMs": 40, "ttftMs": 10, "deterministic": True}))
    deployment = one(docs, "Deployment", "rel-flotilla-m")
    c = container(deployment)
    port = free_port()
    args = replace_flag(replace_flag(c["args"], "--port", str(port)), "--host", "127.0.0.1")
    log = tmp_path_factory.mktemp("drain") / "sim.log"
    with running([*FLOTILLA, *args], f"http://127.0.0.1:{port}/health", log):
        yield port, c["lifecycle"]["preStop"]["exec"]["command"]


def drain_command(command: list[str], port: int) -> list[str]:
    """The rendered preStop command with this test's port, no delay, and this interpreter for python3."""
    assert command[:2] == ["python3", "-c"]
    args = command[3:]
    return [sys.executable, "-c", command[2], str(port), "0", *args[2:]]


def test_drain_returns_at_once_when_the_engine_is_idle(sim):
    port, command = sim
    done = subprocess.run(drain_command(command, port), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_drain_waits_for_a_running_stream_to_finish(sim):
    port, command = sim
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 80,
                       "stream": True}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as stream:
        stream.readline()  # the stream has started: the engine counts it as running
        drain = subprocess.Popen(drain_command(command, port), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        chunks = 0
        for line in stream:
            if line.startswith(b"data: ") and line.strip() != b"data: [DONE]":
                chunks += 1
            if chunks == 60:
                # Tokens are still coming: the engine reports the request running, so no drain may end.
                assert drain.poll() is None, "the drain returned while a stream was still running"
    assert chunks >= 60
    assert drain.wait(timeout=60) == 0
