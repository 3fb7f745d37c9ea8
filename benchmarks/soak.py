"""Soak: steady mixed load on a gateway for a long time; memory, open files and errors sampled.

By default it starts its own sim engine and gateway (SQLite store in a temporary directory) and,
at the end, stops the gateway and checks that every request the gateway accepted has its usage row.
The load is open-loop at --rate requests/s (at most --concurrency in flight), mixed:
  chat (45%), chat streamed (25%), completions (10%), embeddings (10%),
  a client hanging up mid-stream (4%), bad requests: unknown token, malformed JSON, unknown model (6%).
Every --sample-s it prints the gateway's RSS, open file descriptors, connections and requests so far.
An error is any answer other than the one expected for its kind (bad requests expect their 4xx).

Run (the lead's 10-minute soak):  .venv/bin/python benchmarks/soak.py --duration 600
A quick check that it works:      .venv/bin/python benchmarks/soak.py --duration 20 --rate 40
Against a gateway already running: --gateway http://HOST:PORT --token SECRET --pid PID (no usage check)
Exit status 1 when there were errors, usage rows were missing, or open files grew without bound.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from flotilla.local.ports import free_port

TOKEN = "soak-token-0000000000"
MIX = (  # kind, share
    ("chat", 45), ("chat_stream", 25), ("completion", 10), ("embedding", 10), ("hang_up", 4),
    ("bad_token", 2), ("bad_json", 2), ("bad_model", 2),
)
EXPECTED = {"bad_token": 401, "bad_json": 400, "bad_model": 404}
ACCOUNTED = {"chat", "chat_stream", "completion", "embedding", "hang_up"}  # each leaves one usage row


def wait_ok(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{url}: the process exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
        try:
            if urllib.request.urlopen(url, timeout=1).status == 200:
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{url} did not become ready within {timeout:g} s")


@dataclass
class Stack:
    url: str
    pid: int
    database: Path | None = None
    procs: list[subprocess.Popen] = field(default_factory=list)
    gateway_log: Path | None = None

    def stop_gateway(self) -> int | None:
        """SIGTERM the gateway (it drains and writes its usage); its exit status."""
        if not self.procs:
            return None
        gateway = self.procs[-1]
        gateway.send_signal(signal.SIGTERM)
        return gateway.wait(120)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()


def start_stack(workdir: Path, ttft_ms: int, itl_ms: int) -> Stack:
    cli = [sys.executable, "-m", "flotilla.cli"]
    sim_port, gw_port = free_port(), free_port()
    sim_log, gw_log = workdir / "sim.log", workdir / "gateway.log"
    sim = subprocess.Popen(
        [*cli, "sim", "--port", str(sim_port), "--model", "chat", "--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms)],
        stdout=open(sim_log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    wait_ok(f"http://127.0.0.1:{sim_port}/health", sim, sim_log)
    database = workdir / "soak.db"
    spec = {
        "models": [{"name": "chat", "engine": "sim", "maxConcurrency": 32}],
        "gateway": {
            "port": gw_port, "database": f"sqlite:///{database}",
            "tokens": [{"name": "soak", "token": TOKEN, "priority": 5, "threshold": 1000}],
        },
    }
    spec_path = workdir / "spec.json"  # JSON is YAML
    spec_path.write_text(json.dumps(spec))
    gateway = subprocess.Popen(
        [*cli, "gateway", str(spec_path), "--endpoint", f"chat=http://127.0.0.1:{sim_port}"],
        stdout=open(gw_log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    stack = Stack(f"http://127.0.0.1:{gw_port}", gateway.pid, database, [sim, gateway], gw_log)
    wait_ok(stack.url + "/health/ready", gateway, gw_log)
    return stack


def sample(pid: int) -> tuple[float, int, int]:
    """RSS (MiB), open file descriptors, TCP sockets of process `pid`."""
    rss_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
    fds = os.listdir(f"/proc/{pid}/fd")
    sockets = 0
    for fd in fds:
        try:
            sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except FileNotFoundError:  # closed since the listing
            pass
    return rss_kib / 1024, len(fds), sockets


class Load:
    def __init__(self, url: str, token: str, rng: random.Random) -> None:
        self.url = url
        self.token = token
        self.rng = rng
        self.outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
        self.errors: list[str] = []
        self.sent = 0

    def pick(self) -> str:
        return self.rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX])[0]

    async def one(self, session: aiohttp.ClientSession, kind: str) -> None:
        self.sent += 1
        auth = {"Authorization": f"Bearer {'wrong-token-000000' if kind == 'bad_token' else self.token}"}
        max_tokens = self.rng.randint(1, 24)
        message = [{"role": "user", "content": "x" * self.rng.randint(1, 400)}]
        path, body = "/v1/chat/completions", {"model": "chat", "messages": message, "max_tokens": max_tokens}
        if kind == "completion":
            path, body = "/v1/completions", {"model": "chat", "prompt": "once upon a time", "max_tokens": max_tokens}
        elif kind == "embedding":
            path, body = "/v1/embeddings", {"model": "chat", "input": ["a", "b"]}
        elif kind in ("chat_stream", "hang_up"):
            body["stream"] = True
        elif kind == "bad_model":
            body["model"] = "no-such-model"
        data = b'{"model": "chat", "messages": [' if kind == "bad_json" else json.dumps(body).encode()
        try:
            async with session.post(self.url + path, data=data, headers={**auth, "Content-Type": "application/json"}) as r:
                if kind == "hang_up":
                    await r.content.readany()  # first bytes, then leave
                    r.close()
                    self.outcomes[(kind, str(r.status))] += 1
                    return
                payload = await r.read()
                self.outcomes[(kind, str(r.status))] += 1
                expected = EXPECTED.get(kind, 200)
                if r.status != expected:
                    self.errors.append(f"{kind}: {r.status} {payload[:200]!r}")
                elif kind == "chat_stream" and not payload.rstrip().endswith(b"data: [DONE]"):
                    self.errors.append(f"{kind}: stream without [DONE]: {payload[-200:]!r}")
                elif kind == "chat_stream" and b'"error"' in payload:
                    self.errors.append(f"{kind}: error event: {payload[-300:]!r}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.outcomes[(kind, type(exc).__name__)] += 1
            self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")

    @property
    def accounted(self) -> int:
        return sum(n for (kind, status), n in self.outcomes.items() if kind in ACCOUNTED and status.isdigit())


async def run(args: argparse.Namespace, stack: Stack) -> tuple[Load, list[tuple[float, float, int, int]]]:
    load = Load(stack.url, args.token or TOKEN, random.Random(args.seed))
    samples: list[tuple[float, float, int, int]] = []
    in_flight: set[asyncio.Task] = set()
    limit = asyncio.Semaphore(args.concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    started = time.monotonic()
    next_sample = started
    late = 0

    async def guarded(kind: str) -> None:
        async with limit:
            await load.one(session, kind)

    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        interval = 1.0 / args.rate
        due = started
        while (now := time.monotonic()) < started + args.duration:
            if now >= next_sample:
                rss, fds, socks = sample(stack.pid)
                samples.append((now - started, rss, fds, socks))
                print(f"  t={now - started:6.0f}s  rss={rss:7.1f} MiB  fds={fds:5d}  sockets={socks:5d}  "
                      f"sent={load.sent:7d}  errors={len(load.errors)}", flush=True)
                next_sample += args.sample_s
            if limit.locked():
                late += 1
            task = asyncio.create_task(guarded(load.pick()))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            due += interval
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        await asyncio.gather(*in_flight)
    rss, fds, socks = sample(stack.pid)
    samples.append((time.monotonic() - started, rss, fds, socks))
    if late:
        print(f"  note: {late} request(s) waited for a free slot of --concurrency {args.concurrency}")
    return load, samples


def usage_rows(database: Path) -> int:
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT COUNT(*) FROM flotilla_usage").fetchone()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--rate", type=float, default=100, help="requests per second (default 100)")
    parser.add_argument("--concurrency", type=int, default=64, help="most requests in flight (default 64)")
    parser.add_argument("--sample-s", type=float, default=10, help="seconds between samples (default 10)")
    parser.add_argument("--ttft-ms", type=int, default=20)
    parser.add_argument("--itl-ms", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--gateway", help="URL of a running gateway (default: start one)")
    parser.add_argument("--token", help="its token (with --gateway)")
    parser.add_argument("--pid", type=int, help="its process id (with --gateway), for RSS and open files")
    args = parser.parse_args()
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))

    with tempfile.TemporaryDirectory(prefix="flotilla-soak-") as tmp:
        if args.gateway:
            if not (args.token and args.pid):
                parser.error("--gateway needs --token and --pid")
            stack = Stack(args.gateway.rstrip("/"), args.pid)
        else:
            stack = start_stack(Path(tmp), args.ttft_ms, args.itl_ms)
        try:
            print(f"soak: {args.duration:g} s at {args.rate:g} req/s against {stack.url} (pid {stack.pid})")
            load, samples = asyncio.run(run(args, stack))
            exit_status = stack.stop_gateway()
            rows = usage_rows(stack.database) if stack.database is not None else None
        finally:
            stack.stop_all()
        return report(load, samples, rows, exit_status)


def report(load: Load, samples: list[tuple[float, float, int, int]], rows: int | None, exit_status: int | None) -> int:
    print("\nrequests by kind and answer:")
    for (kind, status), n in sorted(load.outcomes.items()):
        print(f"  {kind:12s} {status:22s} {n:8d}")
    print(f"sent {load.sent}, errors {len(load.errors)}")
    for error in load.errors[:10]:
        print("  ", error)
    warm = [s for s in samples if s[0] >= samples[-1][0] * 0.2] or samples  # after the first fifth
    first, last = warm[0], samples[-1]
    print(f"RSS MiB: start {samples[0][1]:.1f}, after warm-up {first[1]:.1f}, end {last[1]:.1f}, "
          f"max {max(s[1] for s in samples):.1f}")
    print(f"open fds: start {samples[0][2]}, end {last[2]}, max {max(s[2] for s in samples)}; "
          f"sockets end {last[3]}")
    failed = bool(load.errors)
    if last[2] > first[2] + 50:
        print("open file descriptors grew by more than 50 after warm-up")
        failed = True
    if rows is not None:
        print(f"usage rows {rows} for {load.accounted} accounted requests; gateway exit status {exit_status}")
        if rows != load.accounted or exit_status != 0:
            failed = True
    print("result:", "FAILED" if failed else "ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
