"""LiteLLM's SDK as a client of the gateway (`openai/` provider with `api_base`): content, usage,
finish reasons, streams, and LiteLLM's own exception types for 401, 404, 400 and 429."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of the price list at import

import litellm  # noqa: E402
import pytest  # noqa: E402
from compatkit import TIGHT, TOKEN, WRONG, hold_slot  # noqa: E402

litellm.telemetry = False
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydantic.*", "ignore::DeprecationWarning:litellm.*")
MESSAGES = [{"role": "user", "content": "Name three colours."}]


def complete(backend, token: str = TOKEN, model: str | None = None, **options):
    return litellm.completion(
        model=f"openai/{model or backend.model}", api_base=backend.base_url, api_key=token, messages=MESSAGES,
        max_tokens=8, num_retries=0, timeout=300, **options,
    )


def check_usage(usage) -> None:
    assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 8
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_completion(backend):
    reply = complete(backend)
    assert reply.choices[0].message.content.strip()
    assert reply.choices[0].finish_reason in ("stop", "length")
    check_usage(reply.usage)


def test_stream(backend):
    chunks = list(complete(backend, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes and finishes[-1] in ("stop", "length")
    usages = [c.usage for c in chunks if getattr(c, "usage", None)]
    if backend.stream_usage:
        assert usages
        check_usage(usages[-1])


async def test_async_completion(backend):
    reply = await litellm.acompletion(
        model=f"openai/{backend.model}", api_base=backend.base_url, api_key=TOKEN, messages=MESSAGES,
        max_tokens=8, num_retries=0,
    )
    assert reply.choices[0].message.content.strip()
    check_usage(reply.usage)


def test_errors_are_litellms_types(sim_backend):
    with pytest.raises(litellm.AuthenticationError) as caught:
        complete(sim_backend, WRONG)
    assert caught.value.status_code == 401
    with pytest.raises(litellm.NotFoundError) as caught:
        complete(sim_backend, model="no-such-model")
    assert caught.value.status_code == 404
    with pytest.raises(litellm.BadRequestError):
        litellm.completion(model="openai/chat", api_base=sim_backend.base_url, api_key=TOKEN, messages=[],
                           num_retries=0)
    with hold_slot(sim_backend):
        with pytest.raises(litellm.RateLimitError) as caught:
            complete(sim_backend, TIGHT, model="narrow")
    assert caught.value.status_code == 429
