import openai

from flotilla.sim.testing import RunningSim

MODEL = "chat"


def client_for(sim: RunningSim) -> openai.AsyncOpenAI:
    # No retries: a retried 500 would hide what the sim answered.
    return openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="unused", max_retries=0, timeout=60)
