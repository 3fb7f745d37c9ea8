"""LoRA adapters: listed as models, queued and routed with their base model, sent to the engine
under the adapter's name; the spec's rules; the chart's vLLM arguments."""

from __future__ import annotations

import aiohttp
import pytest
from openai import AsyncOpenAI

from flotilla.engines import get_engine
from flotilla.sim.testing import start_sim
from flotilla.spec.engines import SimOptions
from flotilla.spec.loader import SpecError, parse_spec
from flotilla.spec.models import ModelSpec

from .gateway_in_process import STAFF, running_gateway, spec_with

LORAS = [{"name": "sql", "source": "org/sql-lora"}, {"name": "chat-fr", "source": "org/fr-lora", "revision": "v2"}]


async def test_adapters_are_models_served_by_the_base_models_replicas(tmp_path):
    spec = spec_with([{"name": "chat", "engine": "sim", "loras": LORAS}], tmp_path)
    options = SimOptions(ttft_ms=0, itl_ms=0, deterministic=True, output_tokens_mean=4)
    async with start_sim(options, "chat", adapters=("sql", "chat-fr")) as sim, \
            running_gateway(spec, {"chat": [sim.base_url]}) as gw:
        client = AsyncOpenAI(base_url=gw + "/v1", api_key=STAFF, max_retries=0)
        assert [m.id for m in (await client.models.list()).data] == ["chat", "sql", "chat-fr"]
        reply = await client.chat.completions.create(model="sql", messages=[{"role": "user", "content": "q"}])
        assert reply.model == "sql"  # the engine answered as the adapter
        stream = await client.completions.create(model="chat-fr", prompt="bonjour", stream=True)
        assert [c async for c in stream]
        await client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "q"}])
        assert sim.engine.requests_by_name == {"chat": 1, "sql": 1, "chat-fr": 1}
        async with aiohttp.ClientSession() as session, session.get(gw + "/v1/models/sql",
                                                                    headers={"Authorization": f"Bearer {STAFF}"}) as r:
            assert r.status == 200 and (await r.json())["id"] == "sql"


def test_vllm_renders_lora_flags_with_hub_adapters_in_the_cache():
    model = ModelSpec.model_validate({
        "name": "big", "engine": "vllm", "vllm": {"model": "org/base", "maxLoraRank": 64},
        "loras": [*LORAS, {"name": "local", "source": "/adapters/local"}],
    })
    args = get_engine("vllm").server_args(model, 8000)
    at = args.index("--enable-lora")
    assert args[at:at + 6] == ["--enable-lora", "--max-loras", "3", "--max-lora-rank", "64", "--lora-modules"]
    assert args[at + 6:at + 9] == ["sql=/models/loras/sql", "chat-fr=/models/loras/chat-fr", "local=/adapters/local"]


@pytest.mark.parametrize(("loras", "message"), [
    ([{"name": "a", "source": "o/a"}, {"name": "a", "source": "o/b"}], "adapter names must be unique"),
    ([{"name": "Bad Name", "source": "o/a"}], "adapter name 'Bad Name'"),
    ([{"name": "a", "source": "relative/dir/x"}], "neither a Hugging Face repository id"),
    ([{"name": "a", "source": "/p", "revision": "main"}], "revision applies to a Hugging Face source"),
])
def test_bad_adapters_are_refused_with_the_reason(loras, message):
    with pytest.raises(SpecError) as info:
        parse_spec({"models": [{"name": "big", "engine": "vllm", "vllm": {"model": "o/m"}, "loras": loras}]})
    assert any(message in p and p.startswith("models[0]") for p in info.value.problems), info.value.problems


def test_adapters_need_an_engine_that_serves_them_and_names_of_their_own():
    with pytest.raises(SpecError, match="needs an engine that serves LoRA adapters"):
        parse_spec({"models": [{"name": "c", "engine": "llamacpp", "loras": [{"name": "a", "source": "o/a"}]}]})
    with pytest.raises(SpecError, match="has the name of a model"):
        parse_spec({"models": [
            {"name": "a", "engine": "sim"},
            {"name": "b", "engine": "sim", "loras": [{"name": "a", "source": "o/a"}]},
        ]})
