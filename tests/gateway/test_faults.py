"""Engines failing: errors relayed unchanged, streams ended with an error, replicas routed around."""

import asyncio
import json
import time
import urllib.error
import urllib.request

import openai
import pytest
from gwstack import STAFF, spec_for
from procs import gateway, sim_engine, stop, usage_rows


def client(gw, key=STAFF):
    return openai.OpenAI(base_url=gw + "/v1", api_key=key, max_retries=0)


def test_engine_dying_mid_stream_ends_the_stream_with_an_error(tmp_path):
    with sim_engine(tmp_path, ttft_ms=1, itl_ms=1, deterministic=True, die_mid_stream_rate=1.0) as sim, \
            gateway(tmp_path, spec_for(), {"chat": [sim]}) as gw:
        stream = client(gw).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}], max_tokens=20, stream=True
        )
        received = []
        with pytest.raises(openai.APIError) as info:
            for chunk in stream:
                received.append(chunk)
        assert "middle of the stream" in str(info.value.message)
        assert received, "chunks sent before the failure reach the client"
        rows = usage_rows(next(tmp_path.glob("flotilla-*.db")), ("token_name", "outcome"))
        assert [(r["token_name"], r["outcome"]) for r in rows] == [("staff", "upstream_died_mid_stream")]


def test_engine_500_reaches_the_client_unchanged(tmp_path):
    with sim_engine(tmp_path, error_rate=1.0) as sim, gateway(tmp_path, spec_for(), {"chat": [sim]}) as gw:
        body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "x"}]}).encode()

        def post(url, auth):
            req = urllib.request.Request(url + "/v1/chat/completions", data=body,
                                         headers={"Content-Type": "application/json", **auth})
            try:
                urllib.request.urlopen(req, timeout=10)
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())
            raise AssertionError("expected an error status")

        direct = post(sim, {})
        relayed = post(gw, {"Authorization": f"Bearer {STAFF}"})
        assert direct[0] == relayed[0] == 500
        assert relayed[1]["error"]["message"] == direct[1]["error"]["message"]
        # The failure is logged as one JSON line that names the token, never its secret.
        log_text = next(tmp_path.glob("gateway-*.log")).read_text()
        lines = [json.loads(l) for l in log_text.splitlines() if l.startswith("{")]
        failures = [l for l in lines if l.get("msg") == "request"]
        assert failures and failures[-1]["outcome"] == "upstream_error" and failures[-1]["token"] == "staff"
        assert STAFF not in log_text


def test_request_is_retried_on_another_replica_when_one_dies(tmp_path):

    from procs import flotilla, free_port, running

    spec = spec_for(healthIntervalS=60)  # the health check will not notice in time: the retry must
    port = free_port()
    victim_log = tmp_path / "victim.log"
    victim_argv = flotilla("sim", "--port", str(port), "--model", "chat", "--ttft-ms", "1", "--itl-ms", "1")
    with running(victim_argv, f"http://127.0.0.1:{port}/health", victim_log) as victim, \
            sim_engine(tmp_path, ttft_ms=1, itl_ms=1) as survivor, \
            gateway(tmp_path, spec, {"chat": [f"http://127.0.0.1:{port}", survivor]}) as gw:
        stop(victim)
        c = client(gw)
        for _ in range(6):  # least-loaded alternates replicas: the dead one is tried at least once
            out = c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}], max_tokens=2)
            assert out.choices[0].message.content
        text = urllib.request.urlopen(gw + "/metrics").read().decode()
        assert 'flotilla_upstream_retries_total{model="chat"} 1.0' in text


def test_all_replicas_down_gives_503_not_a_hang(tmp_path):
    spec = spec_for(healthIntervalS=0.2, unavailableWaitS=0.5)
    with sim_engine(tmp_path) as sim_url:
        dead = sim_url  # stopped below
    with gateway(tmp_path, spec, {"chat": [dead]}) as gw:
        with pytest.raises(openai.InternalServerError) as info:
            client(gw).chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}], max_tokens=1)
        assert info.value.status_code == 503
        assert "No replica of model 'chat'" in info.value.message


def test_revoked_token_is_refused_within_seconds(tmp_path):
    from flotilla.store import Store

    with sim_engine(tmp_path, ttft_ms=1, itl_ms=1) as sim, gateway(tmp_path, spec_for(), {"chat": [sim]}) as gw:
        c = client(gw)
        assert c.models.list().data
        db = next(tmp_path.glob("flotilla-*.db"))

        async def revoke():
            store = await Store.open(f"sqlite:///{db}", migrate=False)
            try:
                await store.revoke_token("staff")
            finally:
                await store.close()

        asyncio.run(revoke())
        deadline = time.monotonic() + 5
        while True:
            try:
                c.models.list()
            except openai.AuthenticationError:
                break
            assert time.monotonic() < deadline, "revocation not honoured within 5 s"
            time.sleep(0.1)
