"""What the gateway costs: added latency and maximum request rate, against calling the sim directly
and beside vllm-router (the Rust router on PyPI) in the same run.

Layout (2 cores): the gateway (or vllm-router) alone on core 0; the sim engine and the load
generator on core 1. Gateway and routers all stay up; whichever is not being measured is stopped
(SIGSTOP), and measurements alternate between them in rounds, so a host whose speed drifts during
the run (a shared VM) slows all of them alike.
  - added latency: one connection, sequential requests, p50/p99 via gateway minus direct;
  - maximum rate: wrk (C load generator) with many connections, non-streaming and streaming
    (16 content chunks per response). With the sim at zero latency its 16 chunks leave back to back
    and usually reach the gateway in one read; the "paced" run (sim ITL 1 ms) makes the gateway
    relay every chunk on its own.
  - cross-core wakeup: a one-byte ping-pong between core 1 and core 0, and within core 1. Every
    request through the gateway crosses cores four times (client -> gateway -> sim -> gateway ->
    client) while a direct request crosses none; on a VM whose idle vCPUs halt at once (Firecracker
    here: haltpoll.guest_halt_poll_ns=0) each crossing may wait for the host to run the halted
    vCPU, which shows as latency tails of milliseconds that no gateway code causes.

vllm-router does less than the gateway (no tokens, queue, usage or metrics per request): it is the
floor a proxy in Rust reaches. It is installed on its own, not as a Flotilla dependency:
    python -m venv .venv-router && .venv-router/bin/pip install vllm-router
(`make bench-gateway` does this); pass --vllm-router PATH, or leave it on PATH or in .venv-router.

Run on a quiet machine:  .venv/bin/python benchmarks/gateway_overhead.py [--json out.json]
On a shared machine add --realtime: the measured processes run SCHED_FIFO (chrt -f 50) so other
tenants' work cannot preempt them (root only); the figures then describe the gateway, not the noise.
Small settings that finish in about a minute (to check the script runs):
    .venv/bin/python benchmarks/gateway_overhead.py --requests 600 --rounds 2 --seconds 2 --rate-rounds 1
Before and after a change, in one run: `git worktree add /tmp/before REV` and pass
`--baseline-src /tmp/before/src`; that checkout's gateway is measured in the same rounds.
The same gateway on another interpreter, in the same rounds: `--gateway-python PATH` (a Python
whose environment has Flotilla's dependencies; this checkout's src/ is put first on its path).
The interpreter's build matters: a pyenv build (no PGO/LTO) runs the gateway's Python slower than
the PGO/LTO builds of Debian's python3 or the python:3.12-slim image. For example:
    /usr/bin/python3 -m venv .venv-pgo && .venv-pgo/bin/pip install .
    .venv/bin/python benchmarks/gateway_overhead.py --gateway-python .venv-pgo/bin/python
Needs `wrk` (apt-get install wrk) and `taskset` (util-linux).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from flotilla.local.ports import free_port

TOKEN = "bench-token-000000"
STREAM_TOKENS = 16


def wait_ok(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(url, timeout=1).status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


# Measured beside the gateway when present: (name in the results, the label and key prefix of its columns).
EXTRA_CONTENDERS = (("baseline", "baseline"), ("gateway_alt", "alt"), ("vllm_router", "router"))

REALTIME: list[str] = []  # ["chrt", "-f", "50"] with --realtime


def start(argv: list[str], core: int, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [*REALTIME, "taskset", "-c", str(core), *argv], stdout=open(log, "wb"), stderr=subprocess.STDOUT,
        start_new_session=True, env=env,
    )


def find_vllm_router(given: str | None) -> str | None:
    if given:
        return given
    local = Path(__file__).resolve().parent.parent / ".venv-router" / "bin" / "vllm-router"
    return shutil.which("vllm-router") or (str(local) if local.exists() else None)


def wait_router(port: int, timeout: float = 60) -> None:
    """vllm-router has no readiness endpoint that needs no worker; a model list through it will do."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1).status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"vllm-router on port {port}")


PINGPONG = """
import os, socket, sys, time
near, far, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
a, b = socket.socketpair()
pid = os.fork()
if pid == 0:
    a.close(); os.sched_setaffinity(0, {far})
    while (d := b.recv(16)):
        b.send(d)
    os._exit(0)
b.close(); os.sched_setaffinity(0, {near})
out = []
for _ in range(n):
    t = time.perf_counter(); a.send(b"x"); a.recv(16); out.append((time.perf_counter() - t) * 1e6)
    time.sleep(0.0003)  # idle between exchanges, as cores are between requests at one connection
a.close(); os.waitpid(pid, 0)
out.sort()
print(out[n // 2], out[int(n * 0.99)])
"""


def settle(gw_port: int, timeout: float = 30) -> None:
    """After SIGCONT: a health check that was in flight when the gateway stopped times out at once
    (its timer ran on); one such timeout keeps the replica up, but a stop that spanned two check
    rounds can mark it down until the next check. Wait for every replica to be healthy, so a
    measurement never starts with a model the gateway thinks is down."""
    time.sleep(0.3)  # the stale checks fail at once on resume
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{gw_port}/health/ready", timeout=1) as resp:
                if all(n >= 1 for n in json.load(resp)["healthy_replicas"].values()):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("the gateway's replicas did not become healthy again after SIGCONT")


def pingpong(near: int, far: int, n: int) -> dict:
    p50, p99 = map(float, subprocess.run(
        [*REALTIME, sys.executable, "-c", PINGPONG, str(near), str(far), str(n)],
        capture_output=True, text=True, check=True,
    ).stdout.split())
    return {"p50_us": p50, "p99_us": p99}


def request_bytes(port: int, stream: bool, auth: bool) -> bytes:
    body = json.dumps(
        {
            "model": "chat",
            "messages": [{"role": "user", "content": "Say something short."}],
            "max_tokens": STREAM_TOKENS,
            "stream": stream,
        }
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    if auth:
        head += f"Authorization: Bearer {TOKEN}\r\n"
    return (head + "\r\n").encode() + body


def read_response(sock: socket.socket, buf: bytearray) -> None:
    """Read one HTTP/1.1 response (Content-Length or chunked) off a keep-alive socket."""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head_end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:head_end]).lower()
    if not head.startswith(b"http/1.1 200"):
        raise RuntimeError(head[:200])
    match = re.search(rb"content-length: (\d+)", head)
    if match:
        end = head_end + int(match.group(1))
        while len(buf) < end:
            buf += sock.recv(65536)
        del buf[:end]
        return
    while b"\r\n0\r\n\r\n" not in buf:  # chunked: ends with the zero-length chunk
        buf += sock.recv(65536)
    del buf[: buf.index(b"\r\n0\r\n\r\n") + 7]


def latencies(port: int, stream: bool, auth: bool, n: int) -> list[float]:
    payload = request_bytes(port, stream, auth)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    out = []
    for i in range(n + 100):  # the first 100 warm up
        t0 = time.perf_counter()
        sock.sendall(payload)
        read_response(sock, buf)
        if i >= 100:
            out.append((time.perf_counter() - t0) * 1000)
    sock.close()
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def wrk_rate(
    port: int, stream: bool, auth: bool, seconds: int, connections: int, tmp: Path, model: str = "chat"
) -> dict:
    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "Say something short."}],
         "max_tokens": STREAM_TOKENS, "stream": stream}
    )
    headers = 'wrk.headers["Content-Type"] = "application/json"\n'
    if auth:
        headers += f'wrk.headers["Authorization"] = "Bearer {TOKEN}"\n'
    script = tmp / f"post-{model}-{stream}-{auth}.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n{headers}'
        "function response(status, headers, body) if status ~= 200 then errors_seen = (errors_seen or 0) + 1 end end\n"
    )
    out = subprocess.run(
        [*REALTIME, "taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}/v1/chat/completions"],
        capture_output=True, text=True, check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"req_per_s": rate, "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(1) if errors else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10000, help="sequential requests per latency measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternating direct/gateway/router latency rounds")
    parser.add_argument("--seconds", type=int, default=10, help="duration of each wrk run")
    parser.add_argument("--rate-rounds", type=int, default=3,
                        help="alternating direct/gateway/router rate runs; the median is reported")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--vllm-router", help="path of the vllm-router executable (default: PATH, .venv-router)")
    parser.add_argument("--baseline-src", type=Path,
                        help="src/ of another checkout (e.g. `git worktree add /tmp/before REV`): its gateway is "
                             "measured too, in the same rounds, as 'baseline'")
    parser.add_argument("--gateway-python", type=Path,
                        help="another interpreter (with Flotilla's dependencies) to run this checkout's gateway "
                             "with too, in the same rounds, as 'gateway_alt'")
    parser.add_argument("--realtime", action="store_true", help="run measured processes SCHED_FIFO (shared machines)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not shutil.which("wrk") or not shutil.which("taskset"):
        sys.exit("needs wrk and taskset: apt-get install -y wrk util-linux")
    if args.realtime:
        REALTIME[:] = ["chrt", "-f", "50"]
    router_exe = find_vllm_router(args.vllm_router)
    if router_exe is None:
        print("vllm-router not found: its column is left out (python -m venv .venv-router && "
              ".venv-router/bin/pip install vllm-router)", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="flotilla-bench-"))
    sim_port, paced_port, gw_port = free_port(), free_port(), free_port()
    router_port, paced_router_port = free_port(), free_port()
    flotilla = [sys.executable, "-m", "flotilla.cli"]

    def gateway(name: str, port: int, env: dict[str, str] | None = None, python: str = sys.executable) -> subprocess.Popen:
        spec = tmp / f"{name}.yaml"
        spec.write_text(
            f"models:\n  - name: chat\n    engine: sim\n    maxConcurrency: 1024\n"
            f"  - name: paced\n    engine: sim\n    maxConcurrency: 1024\n"
            f"gateway:\n  port: {port}\n  database: sqlite:///{tmp}/{name}.db\n"
            f"  tokens:\n    - {{name: bench, token: {TOKEN}, priority: 1, threshold: 100000}}\n"
        )
        return start([python, *flotilla[1:], "gateway", str(spec), "--endpoint", f"chat=http://127.0.0.1:{sim_port}",
                                 "--endpoint", f"paced=http://127.0.0.1:{paced_port}"], 0, tmp / f"{name}.log", env)

    sim = start(flotilla + ["sim", "--port", str(sim_port), "--model", "chat", "--ttft-ms", "0", "--itl-ms", "0",
                            "--max-num-seqs", "1024", "--deterministic"], 1, tmp / "sim.log")
    paced = start(flotilla + ["sim", "--port", str(paced_port), "--model", "paced", "--ttft-ms", "0", "--itl-ms", "1",
                              "--max-num-seqs", "1024", "--deterministic"], 1, tmp / "paced.log")
    gw = gateway("gateway", gw_port)
    procs = [gw, sim, paced]
    gateways = {gw: gw_port}
    other_gateways: dict[str, subprocess.Popen] = {}  # measured in the same rounds as the gateway

    def other_gateway(name: str, src: Path, python: str = sys.executable) -> None:
        port = free_port()
        proc = other_gateways[name] = gateway(name, port, {**os.environ, "PYTHONPATH": str(src)}, python)
        procs.append(proc)
        gateways[proc] = port

    if args.baseline_src:
        # The same gateway from another checkout (its src/ first on the path): before and after, one run.
        other_gateway("baseline", args.baseline_src.resolve())
    if args.gateway_python:
        # This checkout's gateway on another interpreter (its src/ first on the path): the build's effect.
        other_gateway("gateway_alt", Path(__file__).resolve().parent.parent / "src", str(args.gateway_python))
    results: dict = {"machine": {"cpus": os.cpu_count()}, "stream_chunks": STREAM_TOKENS, "realtime": args.realtime,
                     "python": sys.version.split()[0], "gateway_alt_python": interpreter(args.gateway_python)}
    try:
        wait_ok(f"http://127.0.0.1:{sim_port}/health")
        wait_ok(f"http://127.0.0.1:{paced_port}/health")
        for port in gateways.values():
            wait_ok(f"http://127.0.0.1:{port}/health/ready")

        def router_argv(port: int) -> list[str]:
            # Each router needs a metrics port of its own (its default, 29000, would be taken twice).
            return [router_exe, "--host", "127.0.0.1", "--port", str(port), "--policy", "round_robin",
                    "--prometheus-port", str(free_port()), "--log-level", "warning", "--worker-urls"]
        results["cross_core_wakeup"] = {"core1_to_core0": pingpong(1, 0, 3000), "within_core1": pingpong(1, 1, 3000)}
        routers: dict[str, subprocess.Popen] = {}
        if router_exe:
            # One router per worker (it spreads requests over all its workers, whatever the model),
            # both on core 0 like the gateway; whichever is not being measured is stopped (SIGSTOP).
            for model, worker, port in (("chat", sim_port, router_port), ("paced", paced_port, paced_router_port)):
                routers[model] = start(
                    [*router_argv(port), f"http://127.0.0.1:{worker}"], 0, tmp / f"router-{model}.log"
                )
                procs.append(routers[model])
                wait_router(port)
                os.killpg(routers[model].pid, signal.SIGSTOP)
        contenders = {"gateway": (gw, gw_port, True)}
        paced_contenders = {"gateway": (gw, gw_port, True)}
        for name, proc in other_gateways.items():
            contenders[name] = paced_contenders[name] = (proc, gateways[proc], True)
        if router_exe:
            contenders["vllm_router"] = (routers["chat"], router_port, False)
            paced_contenders["vllm_router"] = (routers["paced"], paced_router_port, False)

        def only(running: subprocess.Popen) -> None:
            """`running` alone on core 0: the other contenders are stopped."""
            for proc in (*gateways, *routers.values()):
                os.killpg(proc.pid, signal.SIGCONT if proc is running else signal.SIGSTOP)
            if running in gateways:
                settle(gateways[running])

        for stream in (False, True):
            kind = "streaming" if stream else "non_streaming"
            # Rounds alternate direct, gateway and router so a noisy moment of the machine hits all alike.
            samples: dict[str, list[float]] = {"direct": [], **{name: [] for name in contenders}}
            for _ in range(args.rounds):
                samples["direct"] += latencies(sim_port, stream, False, args.requests // args.rounds)
                for name, (proc, port, auth) in contenders.items():
                    only(proc)
                    samples[name] += latencies(port, stream, auth, args.requests // args.rounds)
            direct, via = samples["direct"], samples["gateway"]
            r = results[f"latency_{kind}"] = {
                "direct_p50_ms": pct(direct, 50), "direct_p99_ms": pct(direct, 99),
                "gateway_p50_ms": pct(via, 50), "gateway_p99_ms": pct(via, 99),
                "added_p50_ms": pct(via, 50) - pct(direct, 50), "added_p99_ms": pct(via, 99) - pct(direct, 99),
                "added_mean_ms": statistics.fmean(via) - statistics.fmean(direct),
            }
            for name, prefix in EXTRA_CONTENDERS:
                if name in samples:
                    other = samples[name]
                    r[f"{prefix}_p50_ms"], r[f"{prefix}_p99_ms"] = pct(other, 50), pct(other, 99)
                    r[f"{prefix}_added_p50_ms"] = pct(other, 50) - r["direct_p50_ms"]
                    r[f"{prefix}_added_p99_ms"] = pct(other, 99) - r["direct_p99_ms"]
        for kind, stream, model, direct_port, who in (
            ("non_streaming", False, "chat", sim_port, contenders),
            ("streaming", True, "chat", sim_port, contenders),
            ("streaming_paced", True, "paced", paced_port, paced_contenders),
        ):
            runs: dict[str, list[dict]] = {"direct": [], **{name: [] for name in who}}
            for _ in range(args.rate_rounds):
                runs["direct"].append(wrk_rate(direct_port, stream, False, args.seconds, args.connections, tmp, model))
                for name, (proc, port, auth) in who.items():
                    only(proc)
                    runs[name].append(wrk_rate(port, stream, auth, args.seconds, args.connections, tmp, model))
            results[f"rate_{kind}"] = {name: median_run(r) for name, r in runs.items()}
        only(gw)
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGCONT)  # a stopped process would not act on SIGTERM
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)

    report(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def interpreter(python: Path | None) -> str | None:
    """Version and path of an interpreter (how it was built is for the reader to tell)."""
    if python is None:
        return None
    code = "import sys; print(sys.version.split()[0], sys.executable)"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def median_run(runs: list[dict]) -> dict:
    """The run of median rate (its error counts with it), and every round's rate."""
    ordered = sorted(runs, key=lambda r: r["req_per_s"])
    return {**ordered[len(ordered) // 2], "rounds": [r["req_per_s"] for r in runs]}


def report(results: dict, args) -> None:
    rates = results["rate_non_streaming"]
    extras = [(name, label) for name, label in EXTRA_CONTENDERS if name in rates]
    if "gateway_alt" in rates:
        print(f"gateway: Python {results['python']} ({sys.executable}); alt: the same gateway on {results['gateway_alt_python']}")
    print(f"gateway overhead, {STREAM_TOKENS}-token responses; gateway (and vllm-router) on core 0, sim + load "
          f"generator on core 1{'; SCHED_FIFO' if args.realtime else ''}")
    w = results["cross_core_wakeup"]
    print(f"cross-core wakeup (one-byte ping-pong): core 1 -> 0 p50 {w['core1_to_core0']['p50_us']:.0f} us, "
          f"p99 {w['core1_to_core0']['p99_us']:.0f} us; within core 1 p50 {w['within_core1']['p50_us']:.0f} us, "
          f"p99 {w['within_core1']['p99_us']:.0f} us (a gateway request crosses cores 4 times, a direct one none)")
    head = f"{'':16}{'direct p50':>11}{'gateway p50':>12}{'added p50':>10}{'added p99':>10}"
    for _, label in extras:
        head += f"{label + ' p50':>{max(10, len(label) + 5)}}{'added p50':>10}{'added p99':>10}"
    print(head + "  (ms, one connection)")
    for kind in ("non_streaming", "streaming"):
        r = results[f"latency_{kind}"]
        line = f"{kind:16}{r['direct_p50_ms']:11.3f}{r['gateway_p50_ms']:12.3f}{r['added_p50_ms']:10.3f}{r['added_p99_ms']:10.3f}"
        for _, label in extras:
            line += (f"{r[label + '_p50_ms']:{max(10, len(label) + 5)}.3f}"
                     f"{r[label + '_added_p50_ms']:10.3f}{r[label + '_added_p99_ms']:10.3f}")
        print(line)
    print(f"{'':16}{'direct req/s':>13}{'gateway req/s':>15}"
          + "".join(f"{label + ' req/s':>{len(label) + 8}}" for _, label in extras)
          + f"  ({args.connections} connections, {args.seconds} s, median of {args.rate_rounds} alternating rounds;"
          " router: no auth, queue, usage)")
    for kind in ("non_streaming", "streaming", "streaming_paced"):
        r = results[f"rate_{kind}"]
        line = f"{kind:16}{r['direct']['req_per_s']:13.0f}{r['gateway']['req_per_s']:15.0f}"
        line += "".join(f"{r[name]['req_per_s']:{len(label) + 8}.0f}" for name, label in extras)
        errors = [f"{name}: {r[name]['non_2xx']} non-2xx, {r[name]['socket_errors'] or 'no socket errors'}"
                  for name in ("gateway", *(name for name, _ in extras))]
        print(line + "  " + "; ".join(errors))

if __name__ == "__main__":
    main()
