"""What a pipeline costs over calling its LLM alone, and how fast data prep ingests.

Starts a sim engine (no latency, 16 tokens per answer), the onnx embedding engine and a gateway with
two pipelines, then, over one keep-alive connection, sequential requests:
  - chat:      the LLM alone, through the gateway (the baseline);
  - llm-only:  a pipeline whose one node is that LLM: the orchestration's own cost;
  - rag:       embedding >> retriever >> reranker (similarity) >> llm over the ingested documents:
               orchestration plus two embedding calls and a vector search.
It prints p50/p99 of each and the overhead over the baseline. Then data prep: documents of
synthetic text ingested through POST /v1/dataprep/ingest (chunks/s, embedding included), and the
embedding engine alone (texts/s, one request of 32 texts at a time).

Run: .venv/bin/python benchmarks/pipeline_overhead.py [--requests 500] [--documents 200] [--pin] [--json out.json]
--pin puts the gateway on core 0 and the engines and this client on core 1 (taskset), as
benchmarks/gateway_overhead.py does. Measure on a quiet machine; small settings just show it runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from flotilla.local.ports import free_port

TOKEN = "bench-token-000000"
WORDS = ("station glacier drone radio freezer sample battery generator library cafeteria snow wind mast "
         "camera badge dome hut route pole team flight plan weather ice core lab survey report").split()


def wait_ok(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(url, timeout=1).status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def start(argv: list[str], log: Path, core: int | None) -> subprocess.Popen:
    prefix = ["taskset", "-c", str(core)] if core is not None else []
    return subprocess.Popen([*prefix, *argv], stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)


def flotilla(*args: str) -> list[str]:
    return [sys.executable, "-m", "flotilla.cli", *args]


def spec(folder: Path, port: int) -> str:
    return json.dumps({
        "models": [{"name": "chat", "engine": "sim", "maxConcurrency": 64}, {"name": "embed", "engine": "onnx", "maxConcurrency": 8}],
        "pipelines": [
            {"name": "llm-only", "nodes": {"llm": {"kind": "llm", "model": "chat"}}, "flow": ["llm"]},
            {"name": "rag", "nodes": {
                "embedding": {"kind": "embedding", "model": "embed"},
                "retriever": {"kind": "retriever", "store": {"kind": "sqlite", "path": str(folder / "vectors.db")}, "k": 6},
                "reranker": {"kind": "reranker", "model": "embed", "topN": 3},
                "llm": {"kind": "llm", "model": "chat"},
            }, "flow": ["embedding >> retriever >> reranker >> llm"],
             "ingest": {"tokens": ["bench"], "chunkSize": 400, "chunkOverlap": 40, "maxFiles": 64}},
        ],
        "gateway": {"port": port, "database": f"sqlite:///{folder}/flotilla.db", "logLevel": "warning",
                    "tokens": [{"name": "bench", "token": TOKEN, "priority": 10, "threshold": 1000}]},
    })


def synthetic_document(rng: random.Random, paragraphs: int = 6) -> str:
    return "\n\n".join(
        ". ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() for _ in range(4)) + "."
        for _ in range(paragraphs)
    )


def latencies(port: int, model: str, count: int, warmup: int) -> list[float]:
    body = json.dumps({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "How is the drone survey report filed?"}]})
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    took = []
    for i in range(warmup + count):
        started = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body, headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{model}: HTTP {response.status}: {data[:300]!r}")
        if i >= warmup:
            took.append(time.perf_counter() - started)
    conn.close()
    return took


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def multipart(files: dict[str, str], fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, text in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                     f"Content-Type: text/plain\r\n\r\n".encode() + text.encode() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def ingest_rate(port: int, documents: int, seed: int = 0) -> tuple[int, float]:
    rng = random.Random(seed)
    docs = {f"doc-{i:05d}.txt": synthetic_document(rng) for i in range(documents)}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    names = list(docs)
    chunks, started = 0, time.perf_counter()
    for start_at in range(0, len(names), 32):
        body, ctype = multipart({n: docs[n] for n in names[start_at : start_at + 32]}, {"pipeline": "rag"})
        conn.request("POST", "/v1/dataprep/ingest", body, {"Authorization": f"Bearer {TOKEN}", "Content-Type": ctype})
        response = conn.getresponse()
        answer = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"ingest: HTTP {response.status}: {answer}")
        chunks += sum(d["chunks"] for d in answer["documents"])
    return chunks, time.perf_counter() - started


def embedding_rate(port: int, batches: int) -> float:
    rng = random.Random(1)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    texts = [" ".join(rng.choice(WORDS) for _ in range(60)) for _ in range(32)]
    body = json.dumps({"inputs": texts})
    started = time.perf_counter()
    for _ in range(batches):
        conn.request("POST", "/embed", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"/embed: HTTP {response.status}")
    return batches * len(texts) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="Measured requests per target (after warm-up).")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--documents", type=int, default=200, help="Synthetic documents ingested (6 paragraphs each).")
    parser.add_argument("--embed-batches", type=int, default=20, help="Requests of 32 texts for the embedding rate.")
    parser.add_argument("--pin", action="store_true", help="Gateway on core 0; engines and this client on core 1.")
    parser.add_argument("--json", type=Path, help="Write the figures here too.")
    args = parser.parse_args()
    if args.pin and shutil.which("taskset") is None:
        parser.error("--pin needs taskset (util-linux)")
    if args.pin:
        os.sched_setaffinity(0, {1})

    folder = Path(tempfile.mkdtemp(prefix="flotilla-pipeline-bench-"))
    sim_port, embed_port, gw_port = free_port(), free_port(), free_port()
    (folder / "spec.yaml").write_text(spec(folder, gw_port))
    engine_core, gateway_core = (1, 0) if args.pin else (None, None)
    processes = [
        start(flotilla("sim", "--port", str(sim_port), "--model", "chat", "--ttft-ms", "0", "--itl-ms", "0",
                       "--max-num-seqs", "256", "--deterministic"), folder / "sim.log", engine_core),
        start(flotilla("embedder", "--port", str(embed_port), "--served-model-name", "embed"), folder / "embedder.log", engine_core),
    ]
    try:
        wait_ok(f"http://127.0.0.1:{sim_port}/health")
        wait_ok(f"http://127.0.0.1:{embed_port}/health")
        processes.append(start(flotilla("gateway", str(folder / "spec.yaml"), "-e", f"chat=http://127.0.0.1:{sim_port}",
                                        "-e", f"embed=http://127.0.0.1:{embed_port}"), folder / "gateway.log", gateway_core))
        wait_ok(f"http://127.0.0.1:{gw_port}/health/ready")

        chunks, seconds = ingest_rate(gw_port, args.documents)
        embeds_per_s = embedding_rate(embed_port, args.embed_batches)
        results: dict = {"settings": vars(args) | {"json": str(args.json) if args.json else None},
                         "ingest": {"documents": args.documents, "chunks": chunks, "seconds": round(seconds, 3),
                                    "chunks_per_s": round(chunks / seconds, 1)},
                         "embedder": {"texts_per_s": round(embeds_per_s, 1), "batch": 32}}
        print(f"ingest: {args.documents} documents, {chunks} chunks in {seconds:.2f} s: {chunks / seconds:.1f} chunks/s "
              "(extract, chunk, embed, store; through the gateway)")
        print(f"embedder alone: {embeds_per_s:.1f} texts/s (requests of 32 texts of ~60 words, one at a time)")

        print(f"\n1 connection, {args.requests} sequential requests each (after {args.warmup} warm-up):")
        print(f"{'target':<10} {'p50 ms':>9} {'p99 ms':>9} {'+p50 ms':>9} {'+p99 ms':>9}")
        base = None
        results["latency"] = {}
        for model in ("chat", "llm-only", "rag"):
            took = latencies(gw_port, model, args.requests, args.warmup)
            p50, p99 = percentile(took, 50) * 1000, percentile(took, 99) * 1000
            if base is None:
                base = (p50, p99)
            results["latency"][model] = {"p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "mean_ms": round(statistics.mean(took) * 1000, 3),
                                         "overhead_p50_ms": round(p50 - base[0], 3), "overhead_p99_ms": round(p99 - base[1], 3)}
            print(f"{model:<10} {p50:>9.2f} {p99:>9.2f} {p50 - base[0]:>9.2f} {p99 - base[1]:>9.2f}")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\ncommand: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
        return 0
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
