"""The chart's `helm test`: list the models through the gateway and check every spec model is there.

    FLOTILLA_TEST_TOKEN=... python -m flotilla.chart.smoke --url http://gw --expect chat --expect big

Without a token it checks the other half of the contract: the gateway refuses an anonymous call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request


def _get(url: str, token: str | None, timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check_gateway(base_url: str, token: str | None, expected: list[str], timeout: float = 30.0) -> list[str]:
    """Problems found (empty when the gateway behaves)."""
    base = base_url.rstrip("/")
    status, _ = _get(f"{base}/health/ready", None, timeout)
    if status != 200:
        return [f"GET /health/ready answered {status}, not 200"]
    status, body = _get(f"{base}/v1/models", token, timeout)
    if not token:
        return [] if status == 401 else [f"GET /v1/models without a token answered {status}, not 401"]
    if status != 200:
        return [f"GET /v1/models answered {status}: {body[:200].decode(errors='replace')}"]
    try:
        listed = {entry["id"] for entry in json.loads(body)["data"]}
    except (ValueError, KeyError, TypeError):
        return [f"GET /v1/models is not an OpenAI model list: {body[:200].decode(errors='replace')}"]
    missing = [name for name in expected if name not in listed]
    return [f"models missing from /v1/models: {', '.join(missing)} (listed: {', '.join(sorted(listed))})"] if missing else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flotilla.chart.smoke", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the gateway's base URL")
    parser.add_argument("--expect", action="append", default=[], help="a model that must be listed (repeat)")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    token = os.environ.get("FLOTILLA_TEST_TOKEN") or None
    try:
        problems = check_gateway(args.url, token, args.expect, args.timeout)
    except (urllib.error.URLError, OSError) as exc:
        problems = [f"cannot reach {args.url}: {exc}"]
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if not problems:
        what = f"lists {', '.join(args.expect)}" if token else "refuses calls without a token"
        print(f"ok: the gateway at {args.url} is ready and {what}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
