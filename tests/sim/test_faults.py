"""Fault injection: seeded rates, and the x-sim-fault header that forces a fault per request."""

import openai
import pytest

from flotilla.sim.errors import SimError
from flotilla.sim.faults import Fault, FaultInjector
from flotilla.sim.testing import start_sim
from flotilla.spec.engines import SimOptions

from .helpers import MODEL, client_for

MESSAGES = [{"role": "user", "content": "hi"}]
DIE = {"x-sim-fault": "die-mid-stream"}


def test_rates_are_seeded_and_roughly_honoured():
    def decisions(seed: int) -> list:
        injector = FaultInjector(error_rate=0.3, die_mid_stream_rate=0.5, seed=seed)
        return [injector.decide(None, stream=True) for _ in range(4000)]

    first = decisions(11)
    assert first == decisions(11)
    assert first != decisions(12)
    errors = first.count(Fault.ERROR) / len(first)
    dies = first.count(Fault.DIE_MID_STREAM) / len(first)
    assert 0.25 < errors < 0.35
    assert 0.30 < dies < 0.40  # half of the 70% that did not error


def test_streams_only_die_when_streaming_and_zero_rates_never_fire():
    injector = FaultInjector(error_rate=0.0, die_mid_stream_rate=1.0, seed=0)
    assert injector.decide(None, stream=False) is None
    assert injector.decide(None, stream=True) is Fault.DIE_MID_STREAM
    assert FaultInjector(0.0, 0.0, 0).decide(None, stream=True) is None


def test_the_header_overrides_the_rates():
    injector = FaultInjector(error_rate=1.0, die_mid_stream_rate=0.0, seed=0)
    assert injector.decide("none", stream=True) is None
    assert injector.decide("Die-Mid-Stream", stream=False) is Fault.DIE_MID_STREAM
    with pytest.raises(SimError, match="'explode' is not one of error, die-mid-stream, none") as caught:
        injector.decide("explode", stream=True)
    assert caught.value.status == 400


@pytest.mark.parametrize("ttft_ms", [0, 5])
async def test_forced_error_is_an_openai_internal_server_error(ttft_ms):
    async with start_sim(SimOptions(ttft_ms=ttft_ms, itl_ms=0), MODEL) as sim, client_for(sim) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, extra_headers={"x-sim-fault": "error"}
            )
        assert caught.value.status_code == 500
        assert caught.value.body == {
            "message": "Simulated engine failure (fault injection).", "type": "InternalServerError",
            "param": None, "code": 500,
        }
        assert sim.engine is not None and sim.engine.scheduler.running == 0


@pytest.mark.parametrize(("ttft_ms", "itl_ms"), [(0, 0), (5, 1)])
async def test_forced_death_breaks_the_stream_after_half_the_tokens(ttft_ms, itl_ms):
    options = SimOptions(ttft_ms=ttft_ms, itl_ms=itl_ms, deterministic=True)
    async with start_sim(options, MODEL) as sim, client_for(sim) as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=8, stream=True, extra_headers=DIE
        )
        received = []
        with pytest.raises(openai.APIError):
            async for chunk in stream:
                received.append(chunk)
        contents = [c for c in received if c.choices and c.choices[0].delta.content]
        assert len(contents) == 4
        assert all(c.choices[0].finish_reason is None for c in contents)
        # The engine is fine afterwards and counted the stream as aborted.
        reply = await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2)
        assert reply.usage.completion_tokens == 2
        assert sim.engine is not None
        assert sim.engine.metrics.request_success["abort"] == 1
        assert sim.engine.scheduler.running == 0


async def test_forced_death_of_a_non_streamed_request_drops_the_connection():
    async with start_sim(SimOptions(ttft_ms=0, itl_ms=0), MODEL) as sim, client_for(sim) as client:
        with pytest.raises(openai.APIConnectionError):
            await client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=DIE)


async def test_error_rate_one_fails_every_request_unless_told_otherwise():
    async with start_sim(SimOptions(ttft_ms=0, itl_ms=0, error_rate=1.0), MODEL) as sim, client_for(sim) as client:
        for _ in range(3):
            with pytest.raises(openai.InternalServerError):
                await client.completions.create(model=MODEL, prompt="x", max_tokens=1)
        reply = await client.completions.create(
            model=MODEL, prompt="x", max_tokens=1, extra_headers={"x-sim-fault": "none"}
        )
        assert reply.usage.completion_tokens == 1


async def test_die_rate_one_breaks_every_stream():
    options = SimOptions(ttft_ms=0, itl_ms=0, die_mid_stream_rate=1.0)
    async with start_sim(options, MODEL) as sim, client_for(sim) as client:
        for _ in range(3):
            stream = await client.completions.create(model=MODEL, prompt="x", max_tokens=6, stream=True)
            with pytest.raises(openai.APIError):
                async for _chunk in stream:
                    pass
        # Non-streamed requests are unaffected by the stream-death rate.
        reply = await client.completions.create(model=MODEL, prompt="x", max_tokens=6)
        assert reply.usage.completion_tokens == 6
