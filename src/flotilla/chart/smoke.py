"""The chart's `helm test`: every spec model is listed by the gateway and answers a short completion.

    FLOTILLA_TEST_TOKEN=... python -m flotilla.chart.smoke --url http://gw --expect chat --expect big

A model passes when a real completion comes back through the gateway (queue, replica, engine): a
chat completion, or a plain completion for a model that has no chat template. A model scaled to
zero is loaded by the request, so give `helm test --timeout` room for a model load. Without a
token it checks the other half of the contract: the gateway refuses an anonymous call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

PROMPT = "Reply with one word: ready."
MAX_TOKENS = 4
# Answers that mean "this model does not take chat requests": try a plain completion instead.
NOT_CHAT = {400, 404, 405, 422, 501}


def _call(url: str, token: str | None, timeout: float, body: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _snippet(body: bytes) -> str:
    return body[:200].decode(errors="replace")


def _has_choice(body: bytes) -> bool:
    try:
        choices = json.loads(body)["choices"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(choices, list) and len(choices) > 0


def check_completion(base: str, token: str, model: str, timeout: float) -> str | None:
    """None when `model` answers a short completion through the gateway, else what went wrong."""
    chat = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": MAX_TOKENS}
    status, body = _call(f"{base}/v1/chat/completions", token, timeout, chat)
    if status == 200 and _has_choice(body):
        return None
    if status in NOT_CHAT:
        plain = {"model": model, "prompt": PROMPT, "max_tokens": MAX_TOKENS}
        status, body = _call(f"{base}/v1/completions", token, timeout, plain)
        if status == 200 and _has_choice(body):
            return None
    if status == 200:
        return f"model {model}: a 200 answer without choices: {_snippet(body)}"
    return f"model {model}: completion answered {status}: {_snippet(body)}"


def check_gateway(base_url: str, token: str | None, expected: list[str], timeout: float = 30.0) -> list[str]:
    """Problems found (empty when the gateway behaves)."""
    base = base_url.rstrip("/")
    status, _ = _call(f"{base}/health/ready", None, timeout)
    if status != 200:
        return [f"GET /health/ready answered {status}, not 200"]
    status, body = _call(f"{base}/v1/models", token, timeout)
    if not token:
        return [] if status == 401 else [f"GET /v1/models without a token answered {status}, not 401"]
    if status != 200:
        return [f"GET /v1/models answered {status}: {_snippet(body)}"]
    try:
        listed = {entry["id"] for entry in json.loads(body)["data"]}
    except (ValueError, KeyError, TypeError):
        return [f"GET /v1/models is not an OpenAI model list: {_snippet(body)}"]
    missing = [name for name in expected if name not in listed]
    if missing:
        return [f"models missing from /v1/models: {', '.join(missing)} (listed: {', '.join(sorted(listed))})"]
    return [problem for model in expected if (problem := check_completion(base, token, model, timeout))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flotilla.chart.smoke", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the gateway's base URL")
    parser.add_argument("--expect", action="append", default=[], help="a model that must be listed and answer (repeat)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per call (a scaled-to-zero model loads)")
    args = parser.parse_args(argv)
    token = os.environ.get("FLOTILLA_TEST_TOKEN") or None
    try:
        problems = check_gateway(args.url, token, args.expect, args.timeout)
    except (urllib.error.URLError, OSError) as exc:
        problems = [f"cannot reach {args.url}: {exc}"]
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if not problems:
        what = f"answers a completion from {', '.join(args.expect)}" if token else "refuses calls without a token"
        print(f"ok: the gateway at {args.url} is ready and {what}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
