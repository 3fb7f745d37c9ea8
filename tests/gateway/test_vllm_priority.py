"""Priority forwarding in vLLM's convention, against a fake vLLM (no GPU here), named as such."""

import asyncio
import threading

import openai
from aiohttp import web
from gwstack import STAFF, STUDENTS, spec_for
from procs import free_port, gateway


class FakeVllmEngine:
    """Stands in for `vllm serve --scheduling-policy priority`: records each body it receives."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.port = free_port()

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        return web.json_response({
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })

    async def health(self, request):
        return web.Response(text="")

    def run(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/health", self.health)
        self.loop = asyncio.new_event_loop()
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.loop.run_forever()

    def __enter__(self):
        threading.Thread(target=self.run, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)


def test_priority_forwarded_as_vllm_expects(tmp_path):
    spec = spec_for({"engine": "vllm", "vllm": {"model": "org/model", "schedulingPolicy": "priority"},
                     "servedModelName": "org/model"})
    with FakeVllmEngine() as engine, gateway(tmp_path, spec, {"chat": [f"http://127.0.0.1:{engine.port}"]}) as gw:
        for key, extra in ((STAFF, {}), (STUDENTS, {}), (STAFF, {"priority": 3})):
            c = openai.OpenAI(base_url=gw + "/v1", api_key=key, max_retries=0)
            c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}], extra_body=extra)
        # vLLM serves lower values first; the body's model is the served name.
        assert [b["priority"] for b in engine.bodies] == [-10, -1, -3]
        assert {b["model"] for b in engine.bodies} == {"org/model"}


def test_priority_not_forwarded_to_fcfs_engines(tmp_path):
    spec = spec_for({"engine": "vllm", "vllm": {"model": "org/model", "schedulingPolicy": "fcfs"}})
    with FakeVllmEngine() as engine, gateway(tmp_path, spec, {"chat": [f"http://127.0.0.1:{engine.port}"]}) as gw:
        c = openai.OpenAI(base_url=gw + "/v1", api_key=STAFF, max_retries=0)
        c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}], extra_body={"priority": 2})
        assert "priority" not in engine.bodies[0]
        assert engine.bodies[0]["model"] == "chat"
