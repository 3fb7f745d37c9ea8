"""The official `openai` client against a real sim server, in both the instant and the timed path."""

import aiohttp
import openai
import pytest

from flotilla.sim.responses import generated_text

from .helpers import MODEL

MESSAGES = [{"role": "user", "content": "Tell me about the flotillas."}]  # 28 chars: 7 prompt tokens


async def test_lists_the_served_model(client):
    page = await client.models.list()
    assert [m.id for m in page.data] == [MODEL]
    assert page.data[0].object == "model"


async def test_chat_completion(client):
    reply = await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5)
    assert reply.object == "chat.completion" and reply.model == MODEL
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == generated_text(5)
    assert reply.choices[0].finish_reason == "length"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (7, 5, 12)


async def test_chat_without_max_tokens_uses_the_mean_and_stops(client):
    reply = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert reply.usage.completion_tokens == 12
    assert reply.choices[0].finish_reason == "stop"


async def test_max_completion_tokens_and_ignore_eos_are_accepted(client):
    reply = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_completion_tokens=3, extra_body={"ignore_eos": True}
    )
    assert reply.usage.completion_tokens == 3


async def test_chat_stream_with_usage(client):
    stream = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=6, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) == 6
    assert "".join(c.choices[0].delta.content for c in content) == generated_text(6)
    assert content[-1].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6
    assert chunks[-1].usage.prompt_tokens == 7
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


async def test_chat_stream_without_usage(client):
    stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.usage is None and c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"


async def test_completion(client):
    reply = await client.completions.create(model=MODEL, prompt="abcdefgh", max_tokens=4)
    assert reply.object == "text_completion"
    assert reply.choices[0].text == generated_text(4)
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (2, 4)


async def test_completion_stream_with_usage(client):
    stream = await client.completions.create(
        model=MODEL, prompt=[1, 2, 3], max_tokens=3, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert "".join(texts) == generated_text(3)
    assert chunks[-1].usage.prompt_tokens == 3 and chunks[-1].usage.total_tokens == 6


async def test_embeddings_float_and_base64(client):
    # The client asks for base64 by default and decodes it.
    default = await client.embeddings.create(model=MODEL, input=["hello", "world"])
    floats = await client.embeddings.create(model=MODEL, input=["hello", "world"], encoding_format="float")
    assert len(default.data) == 2 and len(default.data[0].embedding) == 384
    for a, b in zip(default.data, floats.data):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)
    assert default.data[0].embedding != default.data[1].embedding
    assert default.usage.prompt_tokens == 4
    again = await client.embeddings.create(model=MODEL, input="hello", dimensions=8, encoding_format="float")
    assert len(again.data[0].embedding) == 8


async def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(model="nope", messages=MESSAGES)
    assert caught.value.status_code == 404
    assert caught.value.body["message"] == "The model `nope` does not exist."
    assert caught.value.body["type"] == "NotFoundError"


async def test_prompt_over_the_context_is_400(client):
    with pytest.raises(openai.BadRequestError, match="maximum context length is 4096 tokens"):
        await client.completions.create(model=MODEL, prompt="x" * 20000)


async def test_missing_messages_is_400(client):
    with pytest.raises(openai.BadRequestError, match="messages"):
        await client.chat.completions.create(model=MODEL, messages=[])


async def test_malformed_json_is_400(sim):
    async with aiohttp.ClientSession() as session, session.post(
        sim.openai_base_url + "/chat/completions", data=b'{"model": '
    ) as reply:
        assert reply.status == 400
        body = await reply.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == 400 and "not valid JSON" in body["error"]["message"]


async def test_health(sim):
    async with aiohttp.ClientSession() as session, session.get(sim.base_url + "/health") as reply:
        assert reply.status == 200

