"""Stopping the gateway (SIGTERM) drains it: readiness false first, queued requests answered 503 +
Retry-After at once (they were cut after 30 s), running streams finish, up to
gateway.drainTimeoutS (issue 9: item 11; issue 14's gateway drain)."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request

import openai
from gwstack import STAFF, spec_for
from procs import gateway_process, sim_engine


def chat(gw: str, timeout: float = 120) -> tuple[int, dict, dict]:
    body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}).encode()
    req = urllib.request.Request(gw + "/v1/chat/completions", data=body,
                                 headers={"Authorization": f"Bearer {STAFF}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def metric(gw: str, line_start: str) -> float:
    text = urllib.request.urlopen(gw + "/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_for(condition, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_sigterm_answers_the_queue_finishes_the_stream_and_exits_0(tmp_path):
    spec = spec_for({"maxConcurrency": 1}, drainTimeoutS=60)
    with sim_engine(tmp_path, ttft_ms=50, itl_ms=100, deterministic=True) as sim, gateway_process(
        tmp_path, spec, {"chat": [sim]}
    ) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=STAFF, max_retries=0)
        stream = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}], max_tokens=30, stream=True
        )
        chunks = [next(iter(stream))]  # the stream holds the only slot now
        queued: list[tuple[int, dict, dict]] = []
        threads = [threading.Thread(target=lambda: queued.append(chat(gw.url))) for _ in range(3)]
        for t in threads:
            t.start()
        wait_for(lambda: metric(gw.url, 'flotilla_queue_depth{model="chat",priority="all"}') == 3, "3 queued")
        readiness_before = urllib.request.urlopen(gw.url + "/health/ready", timeout=10).status

        gw.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(60)
        try:
            urllib.request.urlopen(gw.url + "/health/ready", timeout=10)
            readiness_during = 200
        except urllib.error.HTTPError as exc:
            readiness_during = exc.code
        late = chat(gw.url)  # arrives during the drain
        chunks.extend(stream)  # the running stream goes on to its end
        assert gw.proc.wait(60) == 0

    assert readiness_before == 200 and readiness_during == 503
    assert [q[0] for q in queued] == [503, 503, 503]
    assert all(q[1].get("Retry-After") for q in queued)
    assert late[0] == 503 and late[1].get("Retry-After") and late[2]["error"]["code"] == "gateway_shutting_down"
    assert chunks[-1].choices[0].finish_reason == "length", "the stream was finished, not cut"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_the_drain_bound_cuts_streams_that_run_longer(tmp_path):
    spec = spec_for(drainTimeoutS=0.5)
    with sim_engine(tmp_path, ttft_ms=10, itl_ms=500, deterministic=True) as sim, gateway_process(
        tmp_path, spec, {"chat": [sim]}
    ) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=STAFF, max_retries=0)
        stream = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}], max_tokens=200, stream=True  # ~100 s
        )
        next(iter(stream))
        gw.proc.send_signal(signal.SIGTERM)
        assert gw.proc.wait(60) == 0  # a hang guard: the bound is 0.5 s, the stream would take 100 s
    assert "drain ended with 1 request(s) still running" in gw.log.read_text()
