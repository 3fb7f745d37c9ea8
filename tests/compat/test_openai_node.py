"""The openai npm package (Node 20) against the gateway: content, usage, finish reasons, raw
headers, and the SDK's exception classes and retries for 401, 404, 400 and 429."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from compatkit import TIGHT, TOKEN, WRONG, hold_slot, requests_with_status
from nodeproj import installed

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="module")
def node_client() -> Path:
    return installed(NODE_DIR) / "client.mjs"


def run(script: Path, *args: str) -> dict:
    done = subprocess.run(["node", str(script), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def check_usage(usage: dict, max_tokens: int) -> None:
    assert 0 < usage["completion_tokens"] <= max_tokens
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_stream_and_completion(node_client, backend):
    seen = run(node_client, "chat", backend.base_url, TOKEN, backend.model)
    assert backend.model in seen["models"]
    whole = seen["whole"]
    assert whole["role"] == "assistant" and whole["content"].strip()
    assert whole["finish"] in ("stop", "length")
    check_usage(whole["usage"], 8)

    stream = seen["stream"]
    assert stream["text"].strip()
    assert stream["finishes"][-1] in ("stop", "length") and set(stream["finishes"][:-1]) <= {None}
    if backend.stream_usage:
        assert len(stream["usage"]) == 1 and not stream["lastHasChoices"]
        check_usage(stream["usage"][0], 8)
    else:
        assert stream["usage"] == []

    completion = seen["completion"]
    assert completion["text"] and completion["finish"] in ("stop", "length")
    check_usage(completion["usage"], 6)
    assert completion["requestId"] and completion["contentType"].startswith("application/json")


def test_errors_are_the_sdks_classes(node_client, sim_backend):
    seen = run(node_client, "errors", sim_backend.base_url, TOKEN, WRONG)
    assert seen["unauthorized"]["status"] == 401
    assert "AuthenticationError" in seen["unauthorized"]["classes"]
    assert seen["unauthorized"]["code"] == "invalid_api_key" and seen["unauthorized"]["requestID"]
    assert seen["unknownModel"]["status"] == 404
    assert "NotFoundError" in seen["unknownModel"]["classes"] and seen["unknownModel"]["param"] == "model"
    assert "BadRequestError" in seen["badRequest"]["classes"] and seen["badRequest"]["param"] == "messages"


def test_rate_limit_error_and_retries_after_retry_after(node_client, sim_backend):
    before = requests_with_status(sim_backend, 429)
    with hold_slot(sim_backend):
        seen = run(node_client, "limit", sim_backend.base_url, TIGHT, "narrow")
    for outcome in (seen["once"], seen["retried"]):
        assert outcome["status"] == 429 and "RateLimitError" in outcome["classes"]
        assert outcome["code"] == "queue_threshold_exceeded" and outcome["retryAfter"] == "1"
    sent = seen["sent"]
    assert len(sent) == 3  # maxRetries 2
    assert all(later - earlier >= 1.0 for earlier, later in zip(sent, sent[1:]))
    assert requests_with_status(sim_backend, 429) - before == 4
