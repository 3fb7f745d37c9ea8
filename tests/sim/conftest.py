from collections.abc import AsyncIterator

import openai
import pytest

from flotilla.sim.testing import RunningSim, start_sim
from flotilla.spec.engines import SimOptions

from .helpers import MODEL, client_for


# Every API test runs on both paths: "instant" (ttft = itl = 0, one write, no timers) and "timed".
@pytest.fixture(params=["instant", "timed"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[RunningSim]:
    ttft, itl = (0, 0) if request.param == "instant" else (20, 2)
    options = SimOptions(ttft_ms=ttft, itl_ms=itl, deterministic=True, output_tokens_mean=12)
    async with start_sim(options, MODEL) as running:
        yield running


@pytest.fixture
async def client(sim: RunningSim) -> AsyncIterator[openai.AsyncOpenAI]:
    async with client_for(sim) as c:
        yield c
