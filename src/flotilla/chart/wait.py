"""Wait until URLs answer 200 and DNS names resolve: the benchmark Job's init container.

    python -m flotilla.chart.wait --http http://gw/health/ready --dns model.ns.svc.cluster.local --timeout 600

A headless Service's name resolves only once one of its pods is ready, so `--dns` waits for a
model to have a loaded replica.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable


def http_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def dns_ready(name: str) -> bool:
    try:
        return bool(socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP))
    except OSError:
        return False


def wait_for(checks: dict[str, Callable[[], bool]], timeout_s: float, poll_s: float = 2.0) -> list[str]:
    """Poll every check until all pass; return the names still failing at the deadline."""
    deadline = time.monotonic() + timeout_s
    pending = dict(checks)
    while True:
        pending = {name: check for name, check in pending.items() if not check()}
        if not pending or time.monotonic() >= deadline:
            return sorted(pending)
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flotilla.chart.wait", description=__doc__.splitlines()[0])
    parser.add_argument("--http", action="append", default=[], help="URL that must answer 200 (repeat)")
    parser.add_argument("--dns", action="append", default=[], help="host name that must resolve (repeat)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before giving up")
    args = parser.parse_args(argv)
    checks: dict[str, Callable[[], bool]] = {}
    for url in args.http:
        checks[f"GET {url}"] = lambda url=url: http_ready(url)
    for name in args.dns:
        checks[f"DNS {name}"] = lambda name=name: dns_ready(name)
    print(f"waiting up to {args.timeout:g}s for: {', '.join(checks) or 'nothing'}", flush=True)
    failing = wait_for(checks, args.timeout)
    if failing:
        print(f"still not ready after {args.timeout:g}s: {', '.join(failing)}", file=sys.stderr)
        return 1
    print("ready", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
