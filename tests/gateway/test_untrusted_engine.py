"""What an engine reports is not trusted: absurd usage counts are kept safely, and nothing a client
sends in a header reaches the engine as an id (issue 9: items 4 and 12)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest
from gwstack import STAFF
from procs import gateway, usage_rows
from standin_engine import external_spec, standin_engine

CHAT = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).encode()
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def chat(gw: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(
        gw + "/v1/chat/completions", data=CHAT,
        headers={"Authorization": f"Bearer {STAFF}", "Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


@pytest.mark.parametrize("reported", [-5, "12", 2.5])
def test_a_meaningless_usage_count_is_stored_as_unknown_not_a_500(tmp_path, reported):
    with standin_engine() as engine, gateway(tmp_path, external_spec(engine.url), {}) as gw:
        engine.usage = {"prompt_tokens": reported, "completion_tokens": 2}
        assert chat(gw)[0] == 200
        rows = usage_rows(next(tmp_path.glob("flotilla-*.db")), ("token_name", "outcome"))
    assert rows == [{"token_name": "staff", "outcome": "ok", "requests": 1, "errors": 0, "prompt_tokens": 0,
                     "completion_tokens": 2}]


def test_one_absurd_usage_count_does_not_lose_later_records(tmp_path):
    with standin_engine() as engine, gateway(tmp_path, external_spec(engine.url), {}) as gw:
        engine.usage = {"prompt_tokens": 2**63, "completion_tokens": 1}
        assert chat(gw)[0] == 200
        engine.usage = {"prompt_tokens": 3, "completion_tokens": 2}
        for _ in range(5):
            assert chat(gw)[0] == 200
        rows = usage_rows(next(tmp_path.glob("flotilla-*.db")), (), at_least=6)
    assert rows[0]["requests"] == 6
    assert rows[0]["prompt_tokens"] == 2**31 - 1 + 5 * 3, "the absurd count is clamped, the rest exact"


def test_a_clients_request_id_never_reaches_the_engine(tmp_path):
    client_id = "123e4567-e89b-42d3-a456-426614174000"  # UUID-shaped: the old code passed these on
    with standin_engine() as engine, gateway(tmp_path, external_spec(engine.url), {}) as gw:
        status, headers = chat(gw, {"X-Request-Id": client_id})
        assert status == 200
        status, second = chat(gw, {"X-Request-Id": client_id})
    sent = [h.get("x-request-id") for h in engine.received_headers]
    assert client_id not in sent
    assert all(UUID.match(s or "") for s in sent) and sent[0] != sent[1], "the gateway's own ids, one per request"
    assert headers["x-request-id"] == sent[0], "the response names the id the engine saw"
