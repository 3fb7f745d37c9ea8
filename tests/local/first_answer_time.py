"""Measure `flotilla up SPEC` to the first answer of a model (a benchmark script, not a test).

    .venv/bin/python tests/local/first_answer_time.py [--spec examples/local.yaml] [--model chat] [--runs 3] [--cold]

--cold drops the kernel's page cache first (root only), so the first run reads the model and
Python's files from disk as on a fresh boot. Each run starts `flotilla up` in a temporary folder,
polls state.json until the stack is ready, then asks the model until it answers, then stops it.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from openai import OpenAI
from up_helpers import REPO, UpProcess, wait_until

from flotilla.local.ports import free_port
from flotilla.spec.loader import load_spec


def drop_page_cache() -> bool:
    subprocess.run(["sync"], check=False)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def one_run(spec: Path, model: str, token: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="flotilla-first-answer-") as tmp:
        started = time.monotonic()
        up = UpProcess(spec, Path(tmp) / "run", free_port(), cwd=Path(tmp))
        try:
            state = up.wait_ready(timeout=900)
            ready = time.monotonic() - started
            client = OpenAI(base_url=state["endpoint"], api_key=token, max_retries=0, timeout=300)

            def answer() -> str | None:
                try:
                    reply = client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": "Hello!"}], max_tokens=16,
                        # Engines may reject request ids that are not UUIDs; a client may send its own.
                        extra_headers={"X-Request-Id": str(uuid.uuid4())},
                    )
                except Exception:  # noqa: BLE001 - not answering yet
                    return None
                return reply.choices[0].message.content or None

            wait_until(answer, 300, f"an answer from {model}", interval=0.05)
            first = time.monotonic() - started
            up.stop(signal.SIGINT)
        finally:
            up.kill_everything()
    return ready, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=REPO / "examples" / "local.yaml")
    parser.add_argument("--model", default="chat")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="drop the page cache before the first run")
    args = parser.parse_args()
    spec = args.spec.resolve()
    loaded = load_spec(spec)
    token = max(loaded.gateway.tokens, key=lambda t: t.priority).token
    for run in range(args.runs):
        label = "warm"
        if run == 0 and args.cold:
            label = "cold" if drop_page_cache() else "warm (could not drop the page cache: not root)"
        ready, first = one_run(spec, args.model, token)
        print(f"run {run + 1} ({label}): ready after {ready:.2f}s, first answer after {first:.2f}s", flush=True)


if __name__ == "__main__":
    main()
