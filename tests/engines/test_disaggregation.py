"""Disaggregated prefill/decode through the gateway, on sims playing both roles (vLLM's
NixlConnector proxy protocol): prefill on a prefill replica, then decode with its transfer
parameters; the spec's rules and the vLLM arguments of each role."""

from __future__ import annotations

import orjson
import pytest
from openai import AsyncOpenAI

from flotilla.engines import get_engine
from flotilla.gateway.disagg import decode_body, prefill_body
from flotilla.sim.testing import start_sim
from flotilla.spec.engines import SimOptions
from flotilla.spec.loader import SpecError, parse_spec
from flotilla.spec.models import ModelSpec

from .gateway_in_process import STAFF, running_gateway, spec_with

DISAGG = {"name": "big", "engine": "sim", "roles": {"prefill": {"replicas": 2}, "decode": {"replicas": 1}},
          "routingPolicy": "round-robin"}


async def test_requests_go_to_prefill_then_to_decode_with_the_transfer_parameters(tmp_path):
    options = SimOptions(ttft_ms=5, itl_ms=1, deterministic=True, output_tokens_mean=6, kv_transfer_ms=2)
    spec = spec_with([DISAGG], tmp_path)
    async with start_sim(options, "big", role="prefill") as p1, start_sim(options, "big", role="prefill") as p2, \
            start_sim(options, "big", role="decode") as decode, \
            running_gateway(spec, {"big": [decode.base_url], "big@prefill": [p1.base_url, p2.base_url]}) as gw:
        client = AsyncOpenAI(base_url=gw + "/v1", api_key=STAFF, max_retries=0)
        reply = await client.chat.completions.create(
            model="big", messages=[{"role": "user", "content": "hello"}], max_tokens=5
        )
        assert reply.usage.completion_tokens == 5  # the decode's answer, not the prefill's one token
        stream = await client.completions.create(model="big", prompt="hi", max_tokens=4, stream=True)
        text = "".join([c.choices[0].text async for c in stream if c.choices])
        assert text.strip()
        # Round-robin over the two prefill replicas; every decode came with a prefill's KV cache.
        assert (p1.engine.prefills, p2.engine.prefills) == (1, 1)
        assert decode.engine.kv_transfers == 2 and decode.engine.prefills == 0


async def test_a_prefill_error_reaches_the_client_and_frees_both_slots(tmp_path):
    options = SimOptions(ttft_ms=0, itl_ms=0, max_model_len=64)
    spec = spec_with([{**DISAGG, "roles": {"prefill": {}, "decode": {}}}], tmp_path)
    async with start_sim(options, "big", role="prefill") as prefill, start_sim(options, "big", role="decode") as decode, \
            running_gateway(spec, {"big": [decode.base_url], "big@prefill": [prefill.base_url]}) as gw:
        client = AsyncOpenAI(base_url=gw + "/v1", api_key=STAFF, max_retries=0)
        with pytest.raises(Exception) as info:  # a prompt longer than the context: the prefill says 400
            await client.completions.create(model="big", prompt="x" * 1000)
        assert getattr(info.value, "status_code", None) == 400 and "prefill" in str(info.value)
        ok = await client.completions.create(model="big", prompt="short", max_tokens=2)
        assert ok.choices[0].text
        assert decode.engine.kv_transfers == 1


def test_the_prefill_request_follows_vllms_proxy_protocol():
    payload = {"model": "m", "prompt": "p", "stream": True, "stream_options": {"include_usage": True},
               "max_tokens": 50, "max_completion_tokens": 50, "min_tokens": 3}
    sent = orjson.loads(prefill_body(payload))
    assert sent["stream"] is False and sent["max_tokens"] == 1 and sent["max_completion_tokens"] == 1
    assert "stream_options" not in sent and "min_tokens" not in sent
    assert sent["kv_transfer_params"]["do_remote_decode"] is True
    assert sent["kv_transfer_params"]["do_remote_prefill"] is False
    decode = orjson.loads(decode_body(payload, {"remote_engine_id": "e", "remote_block_ids": [1]}))
    assert decode["stream"] is True and decode["min_tokens"] == 3 and decode["max_tokens"] == 50
    assert decode["kv_transfer_params"] == {"remote_engine_id": "e", "remote_block_ids": [1]}


def test_vllm_roles_both_take_the_nixl_transfer_config_and_their_own_arguments():
    model = ModelSpec.model_validate({
        "name": "big", "engine": "vllm", "vllm": {"model": "org/m"},
        "roles": {"prefill": {"extraArgs": ["--max-num-batched-tokens", "8192"]}, "decode": {}},
    })
    engine = get_engine("vllm")
    prefill, decode = engine.server_args(model, 8000, role="prefill"), engine.server_args(model, 8000, role="decode")
    for args in (prefill, decode):
        assert orjson.loads(args[args.index("--kv-transfer-config") + 1]) == {
            "kv_connector": "NixlConnector", "kv_role": "kv_both"}
    assert prefill[-2:] == ["--max-num-batched-tokens", "8192"] and "--max-num-batched-tokens" not in decode
    assert "--kv-transfer-config" not in engine.server_args(model, 8000)


@pytest.mark.parametrize(("model", "message"), [
    ({"name": "c", "engine": "llamacpp", "roles": {}}, "needs engine vllm"),
    ({"name": "c", "engine": "sim", "routingPolicy": "kv"}, "KV-cache-aware routing"),
    ({"name": "c", "engine": "vllm", "vllm": {"model": "o/m"}, "roles": {}, "parallelism": {"tensor": 8, "nodes": 2}},
     "not supported"),
])
def test_disaggregation_rules(model, message):
    with pytest.raises(SpecError) as info:
        parse_spec({"models": [model]})
    assert any(message in p for p in info.value.problems), info.value.problems
