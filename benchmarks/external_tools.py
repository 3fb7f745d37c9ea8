"""`flotilla bench` beside GuideLLM, a benchmark tool of the field, on the same load.

Starts a sim engine and a gateway in front of it, then, for each target (the gateway, the sim
directly) and each rate, runs `flotilla bench` and `guidellm run` one after the other with the same
load: constant arrivals at RATE req/s, N requests, prompts from flotilla's random-prompt generator
(INPUT_LEN words), max tokens OUTPUT_LEN with ignore_eos, streamed chat completions. It prints a
table of TTFT, TPOT, ITL, E2EL and throughput from both tools with their difference, and writes
it as Markdown (--report).

GuideLLM runs from its own venv (--venv, created on first use: `pip install torch==2.13.0` first,
the CPU wheel on this machine's disk, so guidellm's torch requirement does not pull a CUDA build).

    python benchmarks/external_tools.py                        # defaults: rates 1,4; 100 requests
    python benchmarks/external_tools.py --rates 2 --num-requests 10 --input-len 64 --output-len 32

Metric definitions, so the columns compare like with like:
- TTFT: request sent → first streamed chunk with a token (both tools).
- TPOT (ours, vLLM's): (E2EL − TTFT) / (output tokens − 1). GuideLLM's "ITL" is the same
  quantity (its mean over requests); GuideLLM's own "TPOT" is E2EL / output tokens, which
  includes the TTFT, so it is shown but not compared.
- ITL (ours, vLLM's): the gaps between successive token chunks, over all gaps of all requests.
- Output throughput: output tokens / benchmark duration.
Run it on a quiet machine (nothing else on the cores) for figures to publish.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from flotilla.local.ports import free_port

REPO = Path(__file__).resolve().parents[1]
GUIDELLM = "guidellm==0.8.1"
TOKEN = "bench-external-tools-token"


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@contextlib.contextmanager
def process(argv: list[str], health: str, log: Path):
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(health)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)


def ensure_guidellm(venv: Path) -> Path:
    exe = venv / "bin" / "guidellm"
    if exe.exists():
        return exe
    print(f"creating {venv} with {GUIDELLM} (a few minutes, once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["torch==2.13.0"], check=True)  # CPU wheel from this machine's disk
    subprocess.run(pip + [GUIDELLM], check=True)
    return exe


def write_prompts(path: Path, count: int, input_len: int, output_len: int, seed: int) -> None:
    from flotilla.bench.datasets import RandomText

    samples = RandomText(input_len, output_len).sample(count, random.Random(seed))
    with open(path, "w") as out:
        for s in samples:
            row = {"prompt": s.prompt, "prompt_tokens_count": s.prompt_len, "output_tokens_count": s.output_len}
            out.write(json.dumps(row) + "\n")


def run_flotilla_bench(url: str, rate: float, args, out: Path) -> dict:
    argv = [
        sys.executable, "-m", "flotilla.cli", "bench", "--url", url, "--model", "chat", "--token", TOKEN,
        "--rate", str(rate), "--arrival", "constant", "--num-requests", str(args.num_requests),
        "--input-len", str(args.input_len), "--output-len", str(args.output_len), "--seed", str(args.seed),
        "--json", str(out), "--no-progress",  # the preflight request warms connections, as GuideLLM finds them
    ]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    d = json.loads(out.read_text())
    return {
        "ttft": d["mean_ttft_ms"], "ttft_p50": d["median_ttft_ms"], "tpot": d["mean_tpot_ms"],
        "itl": d["mean_itl_ms"], "e2el": d["mean_e2el_ms"], "out_tps": d["output_throughput"],
        "req_s": d["request_throughput"], "completed": d["completed"], "failed": d["failed"],
    }


def run_guidellm(exe: Path, url: str, rate: float, prompts: Path, args, out: Path) -> dict:
    backend = f"kind=openai_http,target={url},model=chat,api_key={TOKEN}"
    argv = [
        str(exe), "run", "--backend", backend, "--profile", f"kind=constant,rate={rate}",
        "--constraint", f"kind=max_requests,count={args.num_requests}",
        "--data", f"kind=json_file,path={prompts}", "--output", f"kind=json,path={out}",
        "--disable-console",
    ]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    bench = json.loads(out.read_text())["benchmarks"][0]
    m = bench["metrics"]

    def mean(key: str) -> float:
        return m[key]["successful"]["mean"]

    return {
        "ttft": mean("time_to_first_token_ms"), "ttft_p50": m["time_to_first_token_ms"]["successful"]["median"],
        "tpot": mean("inter_token_latency_ms"),  # vLLM's TPOT under GuideLLM's name
        "guidellm_tpot": mean("time_per_output_token_ms"),
        "e2el": mean("request_latency") * 1000, "out_tps": mean("output_tokens_per_second"),
        "req_s": mean("requests_per_second"), "completed": m["request_totals"]["successful"],
        "failed": m["request_totals"]["errored"],
    }


ROWS = (
    ("Mean TTFT (ms)", "ttft"), ("Median TTFT (ms)", "ttft_p50"), ("Mean TPOT (ms)", "tpot"),
    ("Mean E2EL (ms)", "e2el"), ("Output tok/s", "out_tps"), ("Requests/s", "req_s"),
)


def table(target: str, rate: float, ours: dict, theirs: dict, tolerance: float) -> list[str]:
    lines = [f"### {target}, {rate:g} req/s (constant)", "",
             "| metric | flotilla bench | GuideLLM | difference |", "|---|---:|---:|---:|"]
    for label, key in ROWS:
        a, b = ours[key], theirs[key]
        diff = (b - a) / a * 100 if a else float("nan")
        flag = "" if abs(diff) <= tolerance * 100 else " ⚠"
        lines.append(f"| {label} | {a:.2f} | {b:.2f} | {diff:+.1f}%{flag} |")
    lines.append(f"| GuideLLM's own TPOT (E2EL/tokens) | – | {theirs['guidellm_tpot']:.2f} | not comparable |")
    lines.append(f"| completed / failed | {ours['completed']} / {ours['failed']} | "
                 f"{theirs['completed']} / {theirs['failed']} | |")
    return lines + [""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1,4")
    parser.add_argument("--num-requests", type=int, default=100)
    parser.add_argument("--input-len", type=int, default=256)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--ttft-ms", type=float, default=50)
    parser.add_argument("--itl-ms", type=float, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=0.05, help="agreement expected at low load")
    parser.add_argument("--venv", type=Path, default=REPO / ".tools" / "bench-venv")
    parser.add_argument("--report", type=Path, default=REPO / "bench-results" / "external-tools.md")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    exe = ensure_guidellm(args.venv)

    tmp = Path(tempfile.mkdtemp(prefix="flotilla-external-"))
    prompts = tmp / "prompts.jsonl"
    write_prompts(prompts, args.num_requests, args.input_len, args.output_len, args.seed)
    sim_port, gw_port = free_port(), free_port()
    spec = {
        "models": [{"name": "chat", "engine": "sim", "maxConcurrency": 256}],
        "gateway": {"port": gw_port, "database": f"sqlite:///{tmp}/flotilla.db",
                    "tokens": [{"name": "bench", "token": TOKEN, "priority": 1, "threshold": 1000}]},
    }
    (tmp / "spec.yaml").write_text(yaml.safe_dump(spec))
    flotilla = [sys.executable, "-m", "flotilla.cli"]
    sim = flotilla + ["sim", "--port", str(sim_port), "--model", "chat", "--ttft-ms", str(args.ttft_ms),
                      "--itl-ms", str(args.itl_ms), "--max-num-seqs", "256"]
    gw = flotilla + ["gateway", str(tmp / "spec.yaml"), "--endpoint", f"chat=http://127.0.0.1:{sim_port}"]
    command = " ".join(["python", "benchmarks/external_tools.py", *sys.argv[1:]])
    report = [
        "# flotilla bench beside GuideLLM", "",
        f"Command: `{command}`  ", f"GuideLLM: {GUIDELLM}; sim: TTFT {args.ttft_ms:g} ms, ITL {args.itl_ms:g} ms; "
        f"{args.num_requests} requests per run, {args.input_len} prompt words, {args.output_len} output tokens.  ",
        f"A difference over {args.tolerance:.0%} is marked ⚠.", "",
    ]
    with process(sim, f"http://127.0.0.1:{sim_port}/health", tmp / "sim.log"), \
            process(gw, f"http://127.0.0.1:{gw_port}/health/ready", tmp / "gateway.log"):
        for target, url in (("gateway → sim", f"http://127.0.0.1:{gw_port}"), ("sim directly", f"http://127.0.0.1:{sim_port}")):
            for rate in rates:
                print(f"{target}: {rate:g} req/s: flotilla bench, then GuideLLM", flush=True)
                ours = run_flotilla_bench(url, rate, args, tmp / f"flotilla-{rate}.json")
                theirs = run_guidellm(exe, url, rate, prompts, args, tmp / f"guidellm-{rate}.json")
                report += table(target, rate, ours, theirs, args.tolerance)
    text = "\n".join(report)
    print(text)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print(f"report: {args.report}; raw results: {tmp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
