"""Scheduling quality, measured in one run with real processes (sim engines, the gateway, `flotilla bench`'s runner):

a) Staff latency under overload (issue 13's table). Sim: 8 sequences, TTFT 50 ms, ITL 10 ms, 32 output
   tokens; staff 2 req/s (priority 10), students 40 req/s (priority 1, threshold 50), maxConcurrency 8.
   Staff TTFT p50/p99: alone (unloaded); through the gateway with strict dispatch; straight to the
   engine (vLLM's FIFO); with the mechanism at its default: a priority burst (staff may go 4 slots beyond
   maxConcurrency), the sim with room for them (maxNumSeqs 12) and vLLM's priority scheduling on.
   Then the trade-off over the knob (burst slots 0, 1, 2, 4, and 2 with a KV cache sized for 8
   sequences only, where the engine must preempt a student to let staff in): staff TTFT p99 over the
   unloaded p99, engine busy fraction (mean of vllm:num_requests_running sampled every 50 ms, over
   maxConcurrency), student throughput. Target: ratio <= 1.5 with the engine >= 95% busy.
b) Sustained staff overload (staff-a with 24 requests always outstanding, staff-b with 8, both priority
   10; students with 8, priority 1): completions per class in the window under `strict`, `weighted`
   (students' share 1/11 by the spec) and `strict` + `agingS` (students' wait bounded); the staff-a /
   staff-b ratio shows fairness among equal-priority tokens (round robin whatever each offers).
c) Multi-turn chats (`flotilla bench --dataset conversations`: 4 shared system prompts of 256 tokens,
   8 turns of 64-token questions and 64-token answers, 16 conversations at once) over 4 sim replicas
   with prefix caching (prefill 0.2 ms per computed token, 512 KV blocks each): `prefix-aware` against `least-loaded`: the engines'
   prefix-cache hit rate (vllm:prefix_cache_hits / queries), mean and p99 TTFT, requests per replica.
d) minTokensPerSecond: a sim whose batch slows each sequence by 15% per extra sequence, 16 requests
   always outstanding: per-request decode speed (output tokens after the first over their time) and
   total output throughput with a fixed maxConcurrency 8, and with minTokensPerSecond 70 on top.

Run on a quiet machine (about 30 minutes):  .venv/bin/python benchmarks/scheduling_quality.py [--json out.json]
With --pin the gateway runs on core 0 and the engines and the load generator on core 1.
Small settings that finish in a few minutes (to check the script runs):
    .venv/bin/python benchmarks/scheduling_quality.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
import yaml

from flotilla.bench.config import merge_settings, resolve_plan
from flotilla.bench.metrics import RequestRecord, percentile
from flotilla.bench.runner import StepResult, StepRunner
from flotilla.local.ports import free_port
from flotilla.sim.testing import RunningSim, SimProcess
from flotilla.spec.engines import SimOptions

TOKENS = {
    "staff": ("staff-bench-secret-01", 10),
    "staff-a": ("staff-a-bench-secret-01", 10),
    "staff-b": ("staff-b-bench-secret-01", 10),
    "students": ("students-bench-secret-01", 1),
}
MAX_CONCURRENCY = 8
DEFAULT_BURST_SLOTS = 4  # covers staff arriving while others still run (Poisson at 2 req/s x ~0.5 s)


@dataclass(frozen=True)
class Settings:
    duration_s: float
    warmup_s: float
    fifo_duration_s: float
    policy_duration_s: float
    aging_s: float
    chat_duration_s: float
    speed_duration_s: float
    pin: bool

    @classmethod
    def of(cls, quick: bool, pin: bool) -> Settings:
        if quick:
            return cls(12, 2, 6, 8, 1.0, 10, 10, pin)
        return cls(120, 5, 60, 60, 2.0, 60, 60, pin)


# --- processes ------------------------------------------------------------------------------------


def wait_ok(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if urllib.request.urlopen(url, timeout=1).status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


@contextlib.contextmanager
def sims(options: SimOptions, count: int, pin: bool) -> Iterator[list[RunningSim]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(SimProcess(options, "chat", cpus=[1] if pin else None)) for _ in range(count)]


def model_entry(options: SimOptions, **extra: Any) -> dict[str, Any]:
    return {
        "name": "chat", "engine": "sim", "maxConcurrency": MAX_CONCURRENCY,
        "sim": options.model_dump(by_alias=True, exclude_none=True), **extra,
    }


@contextlib.contextmanager
def gateway(workdir: Path, model: dict[str, Any], engines: list[RunningSim], pin: bool, **gateway_keys: Any) -> Iterator[str]:
    port = free_port()
    spec = {
        "models": [model],
        "gateway": {
            "port": port,
            "database": f"sqlite:///{workdir}/usage-{port}.db",
            "tokens": [{"name": n, "token": t, "priority": p, "threshold": 50 if n == "students" else 200}
                       for n, (t, p) in TOKENS.items()],
            "healthIntervalS": 0.5,
            **gateway_keys,
        },
    }
    path = workdir / f"spec-{port}.yaml"
    path.write_text(yaml.safe_dump(spec))
    argv = [sys.executable, "-m", "flotilla.cli", "gateway", str(path)]
    for sim in engines:
        argv += ["--endpoint", f"chat={sim.base_url}"]
    if pin:
        argv = ["taskset", "-c", "0", *argv]
    log = workdir / f"gateway-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ok(f"http://127.0.0.1:{port}/health/ready", proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- load and measurements ------------------------------------------------------------------------


async def scrape(session: aiohttp.ClientSession, sim: RunningSim) -> dict[str, float]:
    async with session.get(sim.base_url + "/metrics") as reply:
        text = await reply.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("vllm:") and "_bucket" not in line:
            name = line.split("{", 1)[0].split(" ", 1)[0]
            values[name] = values.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return values


async def sample_running(engines: list[RunningSim], start: float, end: float, out: list[float]) -> None:
    """vllm:num_requests_running of the engines (summed), every 50 ms from `start` to `end` (perf_counter)."""
    async with aiohttp.ClientSession() as session:
        while (now := time.perf_counter()) < end:
            if now >= start:
                values = await asyncio.gather(*(scrape(session, s) for s in engines))
                out.append(sum(v["vllm:num_requests_running"] for v in values))
            await asyncio.sleep(0.05)


@dataclass
class Run:
    result: StepResult
    busy: float | None  # mean running / (maxConcurrency x engines)
    counters: dict[str, float]  # engine counters over the run, summed over engines

    def records(self, cls: str) -> list[RequestRecord]:
        return [r for r in self.result.records if r.class_name == cls and r.measured]

    def done(self, cls: str, within: float | None = None) -> list[RequestRecord]:
        return [r for r in self.records(cls) if r.success and (within is None or r.finished <= within)]

    def rate_in_window(self, cls: str, start: float, seconds: float, tokens: bool = False) -> float:
        """Completions (or their output tokens) per second that ended inside the window, whenever sent."""
        ended = [r for r in self.result.records
                 if r.class_name == cls and r.success and start <= r.finished <= start + seconds]
        return sum(r.output_tokens if tokens else 1 for r in ended) / seconds

    def ttft_ms(self, cls: str, p: float) -> float:
        return percentile(sorted(r.ttft for r in self.done(cls)), p) * 1000.0


async def load(url: str, classes: list[dict[str, Any]], s: Settings, duration: float, engines: list[RunningSim],
               seed: int = 0, **settings: Any) -> Run:
    plan = resolve_plan(merge_settings(None, {
        "url": url, "model": "chat", "duration_s": duration, "warmup_s": s.warmup_s, "seed": seed,
        "percentiles": [50.0, 99.0], "input_len": 64, "output_len": 32, "timeout_s": 900.0,
        "classes": classes, **settings,
    }))
    async with aiohttp.ClientSession() as session:
        before = [await scrape(session, e) for e in engines]
    runner = StepRunner(plan, plan.classes, None, "scheduling quality")
    samples: list[float] = []
    zero = time.perf_counter()
    sampler = asyncio.ensure_future(sample_running(engines, zero + s.warmup_s, zero + s.warmup_s + duration, samples))
    result = await runner.run()
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    async with aiohttp.ClientSession() as session:
        after = [await scrape(session, e) for e in engines]
    counters = {k: sum(a.get(k, 0.0) - b.get(k, 0.0) for a, b in zip(after, before)) for k in after[0]}
    busy = sum(samples) / len(samples) / (MAX_CONCURRENCY * len(engines)) if samples else None
    return Run(result, busy, counters)


def token_of(name: str) -> str:
    return TOKENS[name][0]


def pct(values: list[float], p: float) -> float:
    return percentile(sorted(values), p)


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [f"\n{title}\n", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ms(value: float) -> str:
    return f"{value / 1000:.1f} s" if value >= 10_000 else f"{value:.0f} ms"


# --- a) staff latency under overload ----------------------------------------------------------------

ISSUE_SIM = dict(ttft_ms=50, itl_ms=10, max_num_seqs=MAX_CONCURRENCY, deterministic=True)


def staff_and_students(students: bool = True) -> list[dict[str, Any]]:
    classes = [{"name": "staff", "token": token_of("staff"), "rate": 2.0}]
    if students:
        classes.append({"name": "students", "token": token_of("students"), "rate": 40.0})
    return classes


def burst_model(slots: int, kv_for: int | None = None) -> tuple[SimOptions, dict[str, Any]]:
    """The mechanism: `slots` beyond maxConcurrency for staff, the engine with room for them and vLLM's
    priority scheduling; `kv_for`: KV blocks for that many full sequences only (a prompt of ~90 sim
    tokens + 32 output: 8 blocks of 16)."""
    blocks = None if kv_for is None else kv_for * 8
    options = SimOptions(**{**ISSUE_SIM, "max_num_seqs": MAX_CONCURRENCY + slots, "scheduling_policy": "priority",
                            "num_gpu_blocks": blocks, "max_model_len": min(4096, (blocks or 256) * 16)})
    extra = {"priorityBurst": {"minPriority": 10, "slots": slots}} if slots else {}
    return options, model_entry(options, **extra)


async def part_a(s: Settings, workdir: Path) -> dict[str, Any]:
    plain = SimOptions(**ISSUE_SIM)
    rows: dict[str, Run] = {}
    with sims(plain, 1, s.pin) as engines, gateway(workdir, model_entry(plain), engines, s.pin) as gw:
        rows["unloaded"] = await load(gw, staff_and_students(students=False), s, s.duration_s, engines)
        rows["strict"] = await load(gw, staff_and_students(), s, s.duration_s, engines)
    with sims(plain, 1, s.pin) as engines:
        rows["fifo"] = await load(engines[0].base_url, staff_and_students(), s, s.fifo_duration_s, engines)
    knob: dict[str, Run] = {}
    for label, slots, kv_for in (("0", 0, None), ("1", 1, None), ("2", 2, None), ("4", 4, None),
                                 ("2, KV for 8 seqs", 2, 8)):
        options, model = burst_model(slots, kv_for)
        with sims(options, 1, s.pin) as engines, gateway(workdir, model, engines, s.pin) as gw:
            knob[label] = await load(gw, staff_and_students(), s, s.duration_s, engines)
    rows["mechanism"] = knob[str(DEFAULT_BURST_SLOTS)]

    base_p99 = rows["unloaded"].ttft_ms("staff", 99)
    durations = {k: s.fifo_duration_s if k == "fifo" else s.duration_s for k in rows}
    labels = {
        "unloaded": "staff alone (unloaded)",
        "strict": "through the gateway, strict dispatch",
        "fifo": f"straight to the engine (FIFO; {s.fifo_duration_s:g} s of load)",
        "mechanism": f"priority burst {DEFAULT_BURST_SLOTS} + engine room + vLLM priority scheduling",
    }
    print(table(
        "a) Staff TTFT, staff 2 req/s + students 40 req/s, maxConcurrency 8",
        ["", "staff TTFT p50", "staff TTFT p99", "p99 / unloaded", "engine busy", "students req/s"],
        [[labels[k], ms(r.ttft_ms("staff", 50)), ms(r.ttft_ms("staff", 99)), f"{r.ttft_ms('staff', 99) / base_p99:.2f}x",
          "-" if k == "unloaded" or r.busy is None else f"{r.busy * MAX_CONCURRENCY:.2f} / {MAX_CONCURRENCY}",
          "-" if k == "unloaded" else f"{r.rate_in_window('students', s.warmup_s, durations[k]):.1f}"]
         for k, r in rows.items()],
    ))
    print(table(
        "a) Trade-off over the burst slots (target: p99 ratio <= 1.5 with the engine >= 95% busy)",
        ["burst slots", "staff TTFT p99 / unloaded", "engine busy (running / 8)", "students req/s",
         "engine preemptions", "target met"],
        [[label, f"{r.ttft_ms('staff', 99) / base_p99:.2f}x", f"{(r.busy or 0) * 100:.1f}%",
          f"{r.rate_in_window('students', s.warmup_s, s.duration_s):.1f}",
          f"{r.counters.get('vllm:num_preemptions_total', 0):.0f}",
          "yes" if r.ttft_ms("staff", 99) / base_p99 <= 1.5 and (r.busy or 0) >= 0.95 else "no"]
         for label, r in knob.items()],
    ))
    return {
        "table": {k: {"staff_ttft_p50_ms": r.ttft_ms("staff", 50), "staff_ttft_p99_ms": r.ttft_ms("staff", 99),
                      "busy": r.busy, "students_per_s": r.rate_in_window("students", s.warmup_s, durations[k])}
                  for k, r in rows.items()},
        "tradeoff": {k: {"p99_ratio": r.ttft_ms("staff", 99) / base_p99, "busy": r.busy,
                         "students_per_s": r.rate_in_window("students", s.warmup_s, s.duration_s),
                         "preemptions": r.counters.get("vllm:num_preemptions_total", 0)} for k, r in knob.items()},
    }


# --- b) policies under sustained staff overload ------------------------------------------------------


async def part_b(s: Settings, workdir: Path) -> dict[str, Any]:
    options = SimOptions(**{**ISSUE_SIM})
    classes = [
        {"name": "staff-a", "token": token_of("staff-a"), "concurrency": 24},
        {"name": "staff-b", "token": token_of("staff-b"), "concurrency": 8},
        {"name": "students", "token": token_of("students"), "concurrency": 8},
    ]
    policies = {
        "strict": ({"policy": "strict"}, "0 (starves)"),
        "weighted": ({"policy": "weighted"}, f"{1 / 11:.1%} (1 of 10 + 1)"),
        f"strict + agingS {s.aging_s:g}": ({"policy": "strict", "agingS": s.aging_s}, f"wait <= {s.aging_s:g} s + a turn"),
    }
    out: dict[str, Any] = {}
    rows = []
    for name, (scheduling, expected) in policies.items():
        with sims(options, 1, s.pin) as engines, gateway(workdir, model_entry(options), engines, s.pin,
                                                         scheduling=scheduling) as gw:
            run = await load(gw, classes, s, s.policy_duration_s, engines, output_len=8)
        counts = {c: round(run.rate_in_window(c, s.warmup_s, s.policy_duration_s) * s.policy_duration_s)
                  for c in ("staff-a", "staff-b", "students")}
        total = sum(counts.values()) or 1
        waits = [r.ttft * 1000 for r in run.done("students")]
        share = counts["students"] / total
        rows.append([name, f"{counts['staff-a'] + counts['staff-b']}", f"{counts['students']}", f"{share:.1%}", expected,
                     ms(pct(waits, 50)) if waits else "-", ms(max(waits)) if waits else "-",
                     f"{counts['staff-a'] / max(1, counts['staff-b']):.2f}"])
        out[name] = {**counts, "student_share": share, "student_ttft_max_ms": max(waits) if waits else None}
    print(table(
        f"b) Sustained staff overload ({s.policy_duration_s:g} s; completions within the window)",
        ["policy", "staff done", "students done", "students' share", "spec says", "student TTFT p50",
         "student TTFT max", "staff-a / staff-b (24 vs 8 outstanding)"],
        rows,
    ))
    return out


# --- c) prefix-aware routing ------------------------------------------------------------------------


async def part_c(s: Settings, workdir: Path) -> dict[str, Any]:
    # Each replica's KV cache (512 blocks, 8k tokens) holds its running sequences and the histories of
    # about a quarter of the chats: enough when each conversation stays on one replica, not when its
    # turns are spread over all four. Prefill 0.2 ms per computed token: a large model's.
    options = SimOptions(ttft_ms=20, itl_ms=10, max_num_seqs=MAX_CONCURRENCY, deterministic=True,
                         enable_prefix_caching=True, prefill_ms_per_token=0.2, num_gpu_blocks=512)
    classes = [{"name": "chats", "token": token_of("students"), "concurrency": 16}]
    chat = {"dataset": "conversations", "turns": 8, "system_prompts": 4, "system_prompt_len": 256,
            "input_len": 64, "output_len": 64}
    out: dict[str, Any] = {}
    rows = []
    for routing in ("least-loaded", "prefix-aware"):
        with sims(options, 4, s.pin) as engines, gateway(workdir, model_entry(options, routingPolicy=routing),
                                                         engines, s.pin) as gw:
            run = await load(gw, classes, s, s.chat_duration_s, engines, **chat)
            async with aiohttp.ClientSession() as session:
                served = [sum(v for k, v in (await scrape(session, e)).items() if k == "vllm:request_success_total")
                          for e in engines]
        hits, queries = run.counters["vllm:prefix_cache_hits_total"], run.counters["vllm:prefix_cache_queries_total"]
        ttfts = [r.ttft * 1000 for r in run.done("chats")]
        mean = sum(ttfts) / len(ttfts)
        rows.append([routing, f"{hits / queries:.1%}", ms(mean), ms(pct(ttfts, 50)), ms(pct(ttfts, 99)),
                     f"{run.rate_in_window('chats', s.warmup_s, s.chat_duration_s):.1f}",
                     f"{min(served):.0f} / {max(served):.0f}", f"{run.counters.get('vllm:num_preemptions_total', 0):.0f}"])
        out[routing] = {"hit_rate": hits / queries, "mean_ttft_ms": mean, "p99_ttft_ms": pct(ttfts, 99),
                        "requests_per_replica": served}
    print(table(
        "c) Multi-turn chats (4 shared system prompts, 8 turns, 16 at once) over 4 replicas with prefix caching",
        ["routing", "prefix-cache hit rate", "mean TTFT", "TTFT p50", "TTFT p99", "turns/s",
         "requests per replica (min / max)", "preemptions"],
        rows,
    ))
    return out


# --- d) minTokensPerSecond --------------------------------------------------------------------------


async def part_d(s: Settings, workdir: Path) -> dict[str, Any]:
    options = SimOptions(ttft_ms=50, itl_ms=10, max_num_seqs=MAX_CONCURRENCY, batch_slowdown=0.15, deterministic=True)
    floor = 70.0
    classes = [{"name": "users", "token": token_of("students"), "concurrency": 16}]
    out: dict[str, Any] = {}
    rows = []
    for label, extra in (("maxConcurrency 8", {}), (f"maxConcurrency 8 + minTokensPerSecond {floor:g}",
                                                   {"minTokensPerSecond": floor})):
        with sims(options, 1, s.pin) as engines, gateway(workdir, model_entry(options, **extra), engines, s.pin) as gw:
            run = await load(gw, classes, s, s.speed_duration_s, engines, output_len=64)
        speeds = [(r.output_tokens - 1) / (r.latency - r.ttft) for r in run.done("users") if r.output_tokens > 1]
        throughput = run.rate_in_window("users", s.warmup_s, s.speed_duration_s, tokens=True)
        rows.append([label, f"{sum(speeds) / len(speeds):.1f}", f"{pct(speeds, 10):.1f}", f"{pct(speeds, 1):.1f}",
                     f"{(run.busy or 0) * MAX_CONCURRENCY:.2f}", f"{throughput:.0f}"])
        out[label] = {"mean_speed": sum(speeds) / len(speeds), "p10_speed": pct(speeds, 10),
                      "p1_speed": pct(speeds, 1), "output_tokens_per_s": throughput, "running": (run.busy or 0) * 8}
    print(table(
        f"d) Per-request decode speed (tokens/s) with the sim's batch slowdown 0.15 (floor {floor:g} tokens/s)",
        ["admission", "mean", "p10 (slowest 10%)", "p1", "mean running", "output tokens/s (all)"],
        rows,
    ))
    return out


async def main_async(s: Settings, parts: str, json_path: str | None) -> None:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="flotilla-sched-") as tmp:
        workdir = Path(tmp)
        for part, run in (("a", part_a), ("b", part_b), ("c", part_c), ("d", part_d)):
            if part in parts:
                results[part] = await run(s, workdir)
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2))
        print(f"\nresults: {json_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Small settings: checks the script runs (minutes).")
    parser.add_argument("--parts", default="abcd", help="Which parts to run (default abcd).")
    parser.add_argument("--pin", action="store_true", help="Gateway on core 0; engines and load on core 1.")
    parser.add_argument("--json", help="Write the figures as JSON here.")
    args = parser.parse_args()
    settings = Settings.of(args.quick, args.pin)
    if args.pin:
        os.sched_setaffinity(0, {1})
    print(f"flotilla scheduling quality ({'quick' if args.quick else 'full'}): "
          f"{' '.join(sys.argv[1:]) or '(defaults)'}; {os.cpu_count()} CPUs")
    uvloop.run(main_async(settings, args.parts, args.json))


if __name__ == "__main__":
    main()
