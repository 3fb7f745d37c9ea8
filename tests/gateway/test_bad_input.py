"""Every bad input gets a clear error in OpenAI's format, never a 500 or a hang."""

import json
import urllib.error
import urllib.request

import openai
import pytest
from gwstack import STAFF


def call(gw, path, body=b"", token=STAFF, method="POST", headers=None):
    req = urllib.request.Request(gw + path, data=body if method == "POST" else None, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read())


CHAT = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}).encode()


def assert_openai_error(payload, *words):
    error = payload["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    for word in words:
        assert word in error["message"], (word, error["message"])


@pytest.mark.parametrize("token", [None, "wrong-token-123"])
def test_missing_or_unknown_token_is_401(fast_stack, token):
    status, headers, payload = call(fast_stack["gateway"], "/v1/chat/completions", CHAT, token=token)
    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"
    assert_openai_error(payload)


def test_models_list_needs_a_token(fast_stack):
    status, _, payload = call(fast_stack["gateway"], "/v1/models", method="GET", token=None)
    assert status == 401
    assert_openai_error(payload, "bearer")


def test_openai_client_sees_authentication_error(fast_stack):
    c = openai.OpenAI(base_url=fast_stack["gateway"] + "/v1", api_key="nope-nope-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        c.models.list()


def test_unknown_model_is_404_naming_known_models(fast_stack):
    body = json.dumps({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}).encode()
    status, _, payload = call(fast_stack["gateway"], "/v1/chat/completions", body)
    assert status == 404
    assert payload["error"]["code"] == "model_not_found"
    assert_openai_error(payload, "gpt-9", "chat")


@pytest.mark.parametrize(
    "body, words",
    [
        (b"{not json", ["not valid JSON"]),
        (b"[1, 2]", ["JSON object"]),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), ["model"]),
        (json.dumps({"model": "chat"}).encode(), ["messages"]),
        (json.dumps({"model": "chat", "messages": []}).encode(), ["messages"]),
        (json.dumps({"model": "chat", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}).encode(), ["stream"]),
        (json.dumps({"model": "chat", "messages": [{"role": "user", "content": "x"}], "priority": "high"}).encode(), ["priority"]),
    ],
)
def test_malformed_bodies_are_400(fast_stack, body, words):
    status, _, payload = call(fast_stack["gateway"], "/v1/chat/completions", body)
    assert status == 400
    assert_openai_error(payload, *words)


def test_completions_need_a_prompt(fast_stack):
    status, _, payload = call(fast_stack["gateway"], "/v1/completions", json.dumps({"model": "chat"}).encode())
    assert status == 400
    assert_openai_error(payload, "prompt")


def test_body_over_limit_is_413(fast_stack):
    big = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]}).encode()
    status, _, payload = call(fast_stack["gateway"], "/v1/chat/completions", big)
    assert status == 413
    assert_openai_error(payload, "exceeds")


def test_unknown_path_and_wrong_method(fast_stack):
    status, _, payload = call(fast_stack["gateway"], "/v1/nothing", b"{}")
    assert status == 404
    assert_openai_error(payload, "/v1/nothing")
    status, headers, payload = call(fast_stack["gateway"], "/v1/chat/completions", method="GET")
    assert status == 405
    assert headers["Allow"] == "POST", "RFC 9110: a 405 names the allowed methods"
    assert_openai_error(payload, "POST")


def test_embeddings_are_never_streamed(fast_stack):
    """stream: true on /v1/embeddings used to start an SSE relay of a JSON answer and end it with an error."""
    body = json.dumps({"model": "chat", "input": "hello", "stream": True}).encode()
    status, headers, payload = call(fast_stack["gateway"], "/v1/embeddings", body)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert payload["data"][0]["embedding"]


def test_engine_validation_errors_reach_the_client_unchanged(fast_stack):
    body = json.dumps({"model": "chat", "prompt": "word " * 100000, "max_tokens": 1}).encode()
    direct_status, _, direct = call(fast_stack["sim"], "/v1/completions", body, token=None)
    status, _, via_gateway = call(fast_stack["gateway"], "/v1/completions", body)
    assert direct_status == 400
    assert status == direct_status
    assert via_gateway == direct
