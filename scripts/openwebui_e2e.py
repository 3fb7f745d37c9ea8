"""Open WebUI against Flotilla, in a real browser (not in CI: Open WebUI is ~3 GB with torch).

    .venv/bin/python scripts/openwebui_e2e.py [--screenshot docs/openwebui.png] [--model smollm2]

1. `flotilla up` of a spec with SmolLM2 on llama.cpp (`smollm2`) and the simulator (`sim`).
2. A recording proxy in front of the gateway, so every call Open WebUI makes is listed
   (method, path, status, the body fields that matter for compatibility).
3. Open WebUI (PyPI `open-webui`, in its own venv: --venv, created on first use with
   `pip install torch==2.13.0` first, the CPU wheel on this machine's disk) pointed at the proxy
   with a gateway token, single-user mode, offline.
4. Debian's Chromium (`apt-get install chromium`) driven by Playwright (playwright-core from
   scripts/openwebui/package.json; `npx playwright install` downloads a browser, which this
   machine cannot): pick the model from Open WebUI's list, send a message, watch the answer
   stream in, save a screenshot.
It prints the browser's summary and the table of gateway calls, and exits non-zero on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DRIVER_DIR = REPO / "scripts" / "openwebui"
OPEN_WEBUI = "open-webui==0.12.4"
TOKEN = "openwebui-e2e-token-0001"
# Body fields worth seeing in the call list (never the messages themselves).
FIELDS = ("model", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, ok=lambda body: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200 and ok(resp.read()):
                    return
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready within {timeout:g} s")


@contextlib.contextmanager
def process(argv: list[str], log: Path, env: dict | None = None):
    with open(log, "wb") as out:  # run in the log's folder: Open WebUI writes .webui_secret_key there
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                start_new_session=True, cwd=log.parent)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def ensure_open_webui(venv: Path) -> Path:
    exe = venv / "bin" / "open-webui"
    if not exe.exists():
        print(f"creating {venv} with {OPEN_WEBUI} (~3 GB, several minutes, once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run(pip + ["torch==2.13.0"], check=True)  # the CPU wheel, not a CUDA build
        subprocess.run(pip + [OPEN_WEBUI], check=True)
    return exe


def ensure_chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        print("installing Debian's chromium", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=True)
    return path


def ensure_driver() -> None:
    if not (DRIVER_DIR / "node_modules" / "playwright-core").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=DRIVER_DIR, check=True)


class Recorder:
    """A pass-through proxy that streams answers as they come and notes each call."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.calls: list[dict] = []

    async def handle(self, request):
        import aiohttp
        from aiohttp import web

        body = await request.read()
        call = {"method": request.method, "path": request.path}
        with contextlib.suppress(ValueError):
            payload = json.loads(body) if body else {}
            call.update({k: payload[k] for k in FIELDS if isinstance(payload, dict) and k in payload})
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            async with session.request(request.method, self.upstream + request.path_qs, data=body,
                                       headers=headers) as upstream:
                call["status"] = upstream.status
                call["content_type"] = upstream.headers.get("content-type", "")
                response = web.StreamResponse(status=upstream.status,
                                              headers={"Content-Type": call["content_type"]})
                await response.prepare(request)
                chunks = 0
                async for data in upstream.content.iter_any():
                    chunks += 1
                    await response.write(data)
                call["chunks"] = chunks
                await response.write_eof()
        self.calls.append(call)
        return response

    def serve(self, port: int) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        threading.Thread(target=loop.run_forever, daemon=True).start()


def calls_table(calls: list[dict]) -> str:
    lines = ["| # | call | status | body fields | answer |", "|---|---|---|---|---|"]
    for i, c in enumerate(calls, 1):
        fields = ", ".join(f"{k}={json.dumps(c[k])}" for k in FIELDS if k in c)
        answer = f"{c.get('content_type', '').split(';')[0]}, {c.get('chunks', 0)} chunk(s)"
        lines.append(f"| {i} | {c['method']} {c['path']} | {c.get('status')} | {fields} | {answer} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=REPO / ".tools" / "openwebui-venv")
    parser.add_argument("--model", default="smollm2", help="the Flotilla model to pick in Open WebUI")
    parser.add_argument("--message", default="Write one sentence about sailing boats.")
    parser.add_argument("--screenshot", type=Path, default=REPO / "docs" / "openwebui.png")
    parser.add_argument("--calls", type=Path, default=None, help="also write the call table (Markdown) here")
    args = parser.parse_args()

    open_webui = ensure_open_webui(args.venv)
    chromium = ensure_chromium()
    ensure_driver()
    tmp = Path(tempfile.mkdtemp(prefix="flotilla-openwebui-"))
    gw_port, proxy_port, ui_port = free_port(), free_port(), free_port()
    spec = {
        "models": [
            {"name": "smollm2", "engine": "llamacpp", "replicas": 1, "maxConcurrency": 1,
             "llamacpp": {"model": "smollm2", "nCtx": 2048, "nThreads": 1}},
            {"name": "sim", "engine": "sim", "maxConcurrency": 8, "sim": {"ttftMs": 50, "itlMs": 20}},
        ],
        "gateway": {"database": f"sqlite:///{tmp}/flotilla.db",
                    "tokens": [{"name": "openwebui", "token": TOKEN, "priority": 5, "threshold": 20}]},
    }
    (tmp / "spec.yaml").write_text(yaml.safe_dump(spec))
    gateway = f"http://127.0.0.1:{gw_port}"
    up = [sys.executable, "-m", "flotilla.cli", "up", str(tmp / "spec.yaml"), "--run-dir", str(tmp / "run"),
          "--port", str(gw_port)]
    ui_env = {
        "DATA_DIR": str(tmp / "openwebui"), "WEBUI_AUTH": "False", "ENABLE_OLLAMA_API": "False",
        "OPENAI_API_BASE_URL": f"http://127.0.0.1:{proxy_port}/v1", "OPENAI_API_KEY": TOKEN,
        # Offline: no model downloads, no update checks, no telemetry; embeddings (unused here)
        # would go to the gateway rather than a local SentenceTransformer fetched from a hub.
        "OFFLINE_MODE": "True", "HF_HUB_OFFLINE": "1", "ENABLE_VERSION_UPDATE_CHECK": "False",
        "ANONYMIZED_TELEMETRY": "False", "DO_NOT_TRACK": "True", "SCARF_NO_ANALYTICS": "True",
        "RAG_EMBEDDING_ENGINE": "openai", "RAG_OPENAI_API_BASE_URL": f"http://127.0.0.1:{proxy_port}/v1",
        "RAG_OPENAI_API_KEY": TOKEN, "RAG_EMBEDDING_MODEL": "sim",
    }
    recorder = Recorder(gateway)
    (tmp / "openwebui").mkdir()
    with process(up, tmp / "up.log"):
        healthy = lambda body: all(v >= 1 for v in json.loads(body)["healthy_replicas"].values())  # noqa: E731
        wait_http(gateway + "/health/ready", 600, healthy)
        recorder.serve(proxy_port)
        ui = [str(open_webui), "serve", "--host", "127.0.0.1", "--port", str(ui_port)]
        with process(ui, tmp / "openwebui.log", ui_env):
            wait_http(f"http://127.0.0.1:{ui_port}/health", 600)
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            drive = subprocess.run(
                ["node", str(DRIVER_DIR / "drive.mjs"), f"http://127.0.0.1:{ui_port}/", args.model, args.message,
                 str(args.screenshot.resolve())],
                capture_output=True, text=True, env={**os.environ, "CHROMIUM": chromium}, timeout=600,
            )
            time.sleep(5)  # Open WebUI's follow-up tasks (title, tags) run after the answer
    print(drive.stdout or drive.stderr)
    table = calls_table(recorder.calls)
    print("Gateway calls made by Open WebUI:\n" + table)
    if args.calls:
        args.calls.write_text(table + "\n")
    print(f"logs: {tmp}")
    summary = json.loads(drive.stdout) if drive.stdout.strip().startswith("{") else {}
    ok = drive.returncode == 0 and summary.get("answer") and summary.get("growthSteps", 0) > 1
    ok = ok and all(c.get("status") == 200 for c in recorder.calls)
    print("result:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
