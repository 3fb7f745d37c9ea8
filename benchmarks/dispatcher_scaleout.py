"""What sharing the queue through RabbitMQ costs: the local dispatcher against the RabbitMQ dispatcher
with one and with three gateway processes, in one run.

Layout (2 cores), as benchmarks/gateway_overhead.py: every gateway process on core 0 (three gateways
share the one core a single gateway has: equal CPU, so the figures show the dispatcher's cost); the
sim engine and the load generators on core 1; RabbitMQ where the machine runs it (not pinned).
  - added latency: one connection, sequential non-streaming requests; p50/p99 of each setup, and
    its difference to the local dispatcher. With three gateways the connection goes to a gateway
    that is not the model's scheduler (the longer path: ticket and grant each cross the broker) and,
    separately, to the scheduler's own gateway.
  - maximum rate: wrk with many connections spread over the gateways (one wrk per gateway, run
    together, rates summed).
  - the broker's floor: a small message from one AMQP connection to another and back (on core 0,
    aio-pika, no confirms), the two broker crossings a request at a non-scheduler gateway pays
    before its grant arrives; what the dispatcher adds beyond it is its own cost.

Run: .venv/bin/python benchmarks/dispatcher_scaleout.py [--json out.json]
Needs `wrk` and `taskset`, and RabbitMQ on 127.0.0.1:5672 (scripts/services.sh starts it), or
--amqp-url.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gateway_overhead import TOKEN, free_port, latencies, pct, start, wait_ok, wrk_rate  # noqa: E402


def spec_text(tmp: Path, port: int, dispatcher: str) -> str:
    return (
        "models:\n  - name: chat\n    engine: sim\n    maxConcurrency: 1024\n"
        f"gateway:\n  port: {port}\n  database: sqlite:///{tmp}/bench.db\n"
        f"  tokens:\n    - {{name: bench, token: {TOKEN}, priority: 1, threshold: 100000}}\n"
        f"  dispatcher: {dispatcher}\n"
    )


def scheduling(port: int) -> bool:
    detail = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5).read())
    return "chat" in detail["dispatcher"].get("scheduling", [])


class Setup:
    """N gateway processes of one spec on core 0, in front of one sim."""

    def __init__(self, name: str, tmp: Path, sim_port: int, gateways: int, dispatcher: str) -> None:
        self.name = name
        self.ports = [free_port() for _ in range(gateways)]
        self.procs = []
        flotilla = [sys.executable, "-m", "flotilla.cli"]
        for i, port in enumerate(self.ports):
            spec = tmp / f"{name}-{i}.yaml"
            spec.write_text(spec_text(tmp, port, dispatcher))
            self.procs.append(start(
                flotilla + ["gateway", str(spec), "--endpoint", f"chat=http://127.0.0.1:{sim_port}"], 0,
                tmp / f"{name}-{i}.log",
            ))
            wait_ok(f"http://127.0.0.1:{port}/health/ready")  # one after the other: the first is the scheduler

    def warm(self) -> None:
        for port in self.ports:
            latencies(port, False, True, 50)

    def stop(self) -> None:
        for proc in self.procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


def rate(setup: Setup, seconds: int, connections: int, tmp: Path) -> dict:
    share = max(1, connections // len(setup.ports))
    with ThreadPoolExecutor(len(setup.ports)) as pool:
        runs = list(pool.map(lambda p: wrk_rate(p, False, True, seconds, share, tmp), setup.ports))
    return {
        "req_per_s": sum(r["req_per_s"] for r in runs),
        "non_2xx": sum(r["non_2xx"] for r in runs),
        "socket_errors": [r["socket_errors"] for r in runs if r["socket_errors"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000, help="sequential requests per latency measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternating latency rounds")
    parser.add_argument("--seconds", type=int, default=10, help="duration of each wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--broker-floor-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.broker_floor_only:  # the child process of broker_floor(), pinned to core 0
        print(json.dumps(_broker_round_trips(args.amqp_url, args.requests)))
        return
    if not shutil.which("wrk") or not shutil.which("taskset"):
        sys.exit("needs wrk and taskset: apt-get install -y wrk util-linux")

    tmp = Path(tempfile.mkdtemp(prefix="flotilla-dispatch-bench-"))
    sim_port = free_port()
    sim = start([sys.executable, "-m", "flotilla.cli", "sim", "--port", str(sim_port), "--model", "chat",
                 "--ttft-ms", "0", "--itl-ms", "0", "--max-num-seqs", "1024", "--deterministic"], 1, tmp / "sim.log")
    wait_ok(f"http://127.0.0.1:{sim_port}/health")
    prefix = f"flotilla-bench-{os.getpid()}"
    rabbit = f"{{kind: rabbitmq, url: '{args.amqp_url}', prefix: {prefix}}}"
    results: dict = {"machine": {"cpus": os.cpu_count()}, "setups": {}}
    setups: list[Setup] = []
    try:
        setups = [
            Setup("local", tmp, sim_port, 1, "{kind: local}"),
            Setup("rabbitmq-1", tmp, sim_port, 1, rabbit.replace(prefix, prefix + "-1")),
            Setup("rabbitmq-3", tmp, sim_port, 3, rabbit.replace(prefix, prefix + "-3")),
        ]
        for s in setups:
            s.warm()
        three = setups[2]
        scheduler_port = next(p for p in three.ports if scheduling(p))
        other_port = next(p for p in three.ports if p != scheduler_port)
        targets = {
            "local": setups[0].ports[0],
            "rabbitmq-1": setups[1].ports[0],
            "rabbitmq-3 (via another gateway)": other_port,
            "rabbitmq-3 (via the scheduler's gateway)": scheduler_port,
        }
        samples: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(args.rounds):  # alternate, so a noisy moment of the machine hits all alike
            for name, port in targets.items():
                samples[name] += latencies(port, False, True, args.requests // args.rounds)
        base50, base99 = pct(samples["local"], 50), pct(samples["local"], 99)
        for name, values in samples.items():
            results["setups"].setdefault(name, {})["latency"] = {
                "p50_ms": pct(values, 50), "p99_ms": pct(values, 99),
                "added_p50_ms_over_local": pct(values, 50) - base50,
                "added_p99_ms_over_local": pct(values, 99) - base99,
            }
        for s in setups:
            results["setups"].setdefault(s.name, {})["rate"] = rate(s, args.seconds, args.connections, tmp)
            time.sleep(1)
        results["broker_round_trip"] = broker_floor(args.amqp_url, args.requests)
    finally:
        for s in setups:
            s.stop()
        os.killpg(sim.pid, signal.SIGTERM)
        sim.wait(30)
        _delete_queues(args.amqp_url, [prefix + "-1", prefix + "-3"])

    print("dispatcher cost: local vs RabbitMQ; gateways on core 0, sim + load generators on core 1")
    print(f"{'':44}{'p50':>8}{'p99':>8}{'+p50':>8}{'+p99':>8}  (ms, one connection, over local)")
    for name, r in results["setups"].items():
        if "latency" in r:
            lat = r["latency"]
            print(f"{name:44}{lat['p50_ms']:8.3f}{lat['p99_ms']:8.3f}"
                  f"{lat['added_p50_ms_over_local']:8.3f}{lat['added_p99_ms_over_local']:8.3f}")
    print(f"{'':44}{'req/s':>8}  ({args.connections} connections in all, {args.seconds} s)")
    for name, r in results["setups"].items():
        if "rate" in r:
            print(f"{name:44}{r['rate']['req_per_s']:8.0f}  errors: {r['rate']['non_2xx']} non-2xx"
                  f"{', socket ' + '; '.join(r['rate']['socket_errors']) if r['rate']['socket_errors'] else ''}")
    floor = results["broker_round_trip"]
    print(f"broker floor: AMQP message there and back (2 broker crossings), p50 {floor['p50_ms']:.3f} ms, "
          f"p99 {floor['p99_ms']:.3f} ms")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def broker_floor(url: str, count: int) -> dict:
    out = subprocess.run(
        ["taskset", "-c", "0", sys.executable, __file__, "--broker-floor-only", "--amqp-url", url,
         "--requests", str(count)], check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _broker_round_trips(url: str, count: int) -> dict:
    import asyncio

    import aio_pika

    async def run() -> list[float]:
        there, back = await aio_pika.connect(url), await aio_pika.connect(url)
        out_channel, echo_channel = await there.channel(publisher_confirms=False), await back.channel(publisher_confirms=False)
        replies = await out_channel.declare_queue("", exclusive=True)
        echo = await echo_channel.declare_queue("", exclusive=True)
        waiter: asyncio.Future | None = None

        async def echo_back(message) -> None:
            await echo_channel.default_exchange.publish(aio_pika.Message(message.body), routing_key=replies.name)

        async def answered(message) -> None:
            waiter.set_result(None)

        await echo.consume(echo_back, no_ack=True)
        await replies.consume(answered, no_ack=True)
        times = []
        for _ in range(count + 500):
            waiter = asyncio.get_running_loop().create_future()
            start = time.perf_counter()
            await out_channel.default_exchange.publish(aio_pika.Message(b"t" * 48), routing_key=echo.name)
            await waiter
            times.append((time.perf_counter() - start) * 1000)
        await there.close()
        await back.close()
        return times[500:]  # after warm-up

    times = asyncio.run(run())
    return {"p50_ms": pct(times, 50), "p99_ms": pct(times, 99)}


def _delete_queues(url: str, prefixes: list[str]) -> None:
    import asyncio

    import aio_pika

    async def run() -> None:
        connection = await aio_pika.connect(url)
        channel = await connection.channel()
        for p in prefixes:
            await channel.queue_delete(f"{p}.sched.chat")
            await channel.exchange_delete(f"{p}.control")
        await connection.close()

    try:
        asyncio.run(run())
    except Exception as exc:  # the figures matter more than the tidy-up
        print(f"(could not delete the benchmark's queues: {exc})", file=sys.stderr)


if __name__ == "__main__":
    main()
