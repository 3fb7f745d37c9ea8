"""langchain-openai's ChatOpenAI against the gateway: invoke, stream, batch; errors surface as the
openai SDK's exceptions, which is what LangChain applications catch."""

from __future__ import annotations

import openai
import pytest
from compatkit import TIGHT, TOKEN, WRONG, hold_slot
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_openai import ChatOpenAI


def chat_model(backend, token: str = TOKEN, model: str | None = None, **options) -> ChatOpenAI:
    return ChatOpenAI(
        model=model or backend.model, base_url=backend.base_url, api_key=token, max_retries=0, timeout=300,
        max_tokens=8, **options,
    )


def check_usage(usage: dict) -> None:
    assert usage["input_tokens"] > 0 and 0 < usage["output_tokens"] <= 8
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_invoke(backend):
    reply = chat_model(backend).invoke("Name three colours.")
    assert isinstance(reply, AIMessage) and reply.content.strip()
    assert reply.response_metadata["finish_reason"] in ("stop", "length")
    assert reply.response_metadata["model_name"] == backend.model
    check_usage(reply.usage_metadata)


def test_stream(backend):
    chunks = list(chat_model(backend, stream_usage=True).stream("Name three colours."))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert merged.content.strip()
    assert merged.response_metadata["finish_reason"] in ("stop", "length")
    if backend.stream_usage:
        check_usage(merged.usage_metadata)
    else:  # an engine that sends no usage on streams
        assert merged.usage_metadata is None


def test_batch(backend):
    replies = chat_model(backend).batch(["Say one.", "Say two.", "Say three."])
    assert len(replies) == 3
    for reply in replies:
        assert reply.content.strip()
        check_usage(reply.usage_metadata)


async def test_ainvoke(backend):
    reply = await chat_model(backend).ainvoke("Name a colour.")
    assert reply.content.strip()


def test_errors_are_openai_exceptions(sim_backend):
    with pytest.raises(openai.AuthenticationError):
        chat_model(sim_backend, WRONG).invoke("hello")
    with pytest.raises(openai.NotFoundError):
        chat_model(sim_backend, model="no-such-model").invoke("hello")
    with hold_slot(sim_backend):
        with pytest.raises(openai.RateLimitError) as caught:
            chat_model(sim_backend, TIGHT, model="narrow").invoke("hello")
    assert caught.value.response.headers["retry-after"] == "1"
